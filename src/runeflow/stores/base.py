"""The store interface: event logs, snapshots, facts, timers and leases.

A store keeps, per workflow instance, an append-only event log (event ``i`` has cursor
``i``, counting from 1), the latest snapshot, and the instance's metadata. Stores with the
``fact_store`` capability keep fact values content-addressed: a ``facts`` table maps each
fact id to a content hash and each distinct encoded value is stored once. Every backend runs
the conformance suite in :mod:`runeflow.testing.store_contract`.

Logs are written in *batches*: one ``append`` call is one row (one encoded blob), written
atomically. Streaming decodes rows in order and fails at the first unreadable row with a
:class:`~runeflow.errors.StoreError` naming the workflow and cursor.

Store contents are untrusted: the durable stores keep a checksum with every blob and check
it, and that log rows follow each other, on every read (see :mod:`runeflow.stores.integrity`).
Damaged data raises a :class:`~runeflow.errors.StoreError`, never a wrong value.
"""

from __future__ import annotations

import builtins
import gc
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from types import TracebackType
from typing import Any, ClassVar, Self

from runeflow.codec import Codec, JsonCodec, default_codec
from runeflow.errors import CodecError, RuneflowError, StoreError, StoreUnavailableError
from runeflow.model.events import Event
from runeflow.stores.batching import Append
from runeflow.stores.encoding import (
    INLINE_VALUE_LIMIT,
    AppendEncoding,
    EncodedAppend,
    content_hash,
    content_key,
)
from runeflow.stores.integrity import (
    as_bytes,
    checksum,
    corrupt_log,
    row_checksum_mismatch,
    verified_values,
)
from runeflow.stores.listing import (
    InstanceFilter,
    InstancePage,
    PageKey,
    check_count_args,
    check_page_args,
    page_in_memory,
)

__all__ = [
    "INLINE_VALUE_LIMIT",
    "Append",
    "Capabilities",
    "EncodedAppend",
    "InstanceMeta",
    "Store",
    "Timer",
    "content_hash",
    "content_key",
    "json_text",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """What a store can do beyond the event log; declared, never probed."""

    snapshots: bool = True
    """``save_snapshot``/``load_snapshot`` keep snapshots."""
    fact_store: bool = True
    """Fact values are stored apart from events (content-addressed, except values no longer
    than their hash: see :data:`INLINE_VALUE_LIMIT`); ``stream(values=False)`` yields
    ``FactRef`` facts."""
    timers: bool = True
    """Durable timers are kept (``schedule_timer``, ``due_timers``...)."""
    leases: bool = True
    """Leases let several runners share the store without running one instance twice."""
    durable: bool = False
    """Data survives the end of the process."""
    multi_process: bool = False
    """Several processes may use the same store at once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InstanceMeta:
    """What a store knows about a workflow instance besides its log."""

    workflow_id: str
    """The instance's id."""
    definition_name: str
    """The workflow's name, the key under which runners find its definition."""
    definition_hash: str
    """The content hash of the definition the instance was started with."""
    status: str
    """The instance status (``running``, ``waiting``, ``idle``, ``failed``, ``stopped``)."""
    created_at: float
    """Creation time, epoch seconds."""
    updated_at: float
    """Last append or status change, epoch seconds."""
    cursor: int
    """Number of events in its log."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON-compatible extra data, e.g. the import path of the definition."""
    owner: str | None = None
    """The runner holding an unexpired lease on the instance, if any."""
    epoch: int = 0
    """The fencing token: grows by one with every new owner (0: never owned)."""
    error: str | None = None
    """Why a runner could not load the instance (left as it is), if one reported it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Timer:
    """A durable timer: at ``fire_at`` the runner delivers its payload to the workflow."""

    timer_id: str
    """Unique id of the timer."""
    workflow_id: str
    """The instance it belongs to."""
    fire_at: float
    """When it is due, epoch seconds (or the runner clock's seconds)."""
    payload: dict[str, Any] = field(default_factory=dict)
    """JSON-compatible data for the runner, e.g. ``wait_id``, ``component``, ``event``."""


def json_text(obj: dict[str, Any] | None, what: str) -> str:
    """Return ``obj`` as JSON text for a metadata or payload column.

    Raises:
        CodecError: when ``obj`` is not JSON-compatible.
    """
    try:
        return json.dumps(obj or {}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"{what} must be a JSON-compatible dict: {exc}") from None


DECODE_BATCH = 256
"""Log rows decoded together by one JSON parse when streaming."""

LogRow = tuple[int, bytes, Any, int, int | None]
"""A log row as fetched and decoded: ``(first_cursor, blob, fact_ids, last_cursor,
checksum)``. ``fact_ids`` is the store's own (unused here); the checksum is ``None`` for
stores that keep none and for rows written before they were kept. A typeless database may
return other types in any field: the checks say so."""


def _chunks(rows: Iterable[LogRow], size: int) -> Iterator[builtins.list[LogRow]]:
    it = iter(rows)
    while chunk := builtins.list(islice(it, size)):
        yield chunk


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while decoding a batch of stored data.

    Decoding allocates thousands of small containers that cannot form cycles; left on, the
    collector keeps scanning them (and, once they are promoted, the whole heap): measured on
    a 40k-event SQLite replay, that added half again to the time of streaming the log. The
    pause is process-wide but short (one chunk), and is skipped when the collector is
    already off, so a caller that turned it off keeps it off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _log_chunks(rows: Sequence[Any]) -> Iterator[Sequence[LogRow]]:
    """Split fetched :data:`LogRow` rows into decode chunks (slices: no copy per row)."""
    for start in range(0, len(rows), DECODE_BATCH):
        yield rows[start : start + DECODE_BATCH]


def _checksums_match(blobs: builtins.list[bytes], chunk: Sequence[LogRow]) -> bool:
    """Whether every blob of ``chunk`` (``blobs``, in order) matches its row's checksum; rows
    written before checksums were kept (``None``) are not checked. The CRCs are computed and
    compared in C (``map``), which keeps the check to a few percent of a replay."""
    stored = builtins.list(map(_CHECKSUM, chunk))
    if None not in stored:
        return builtins.list(map(zlib.crc32, blobs)) == stored
    crc32 = zlib.crc32
    return all(s is None or crc32(b) == s for b, s in zip(blobs, stored, strict=True))


_BLOB = itemgetter(1)
_CHECKSUM = itemgetter(4)


class Store(AppendEncoding, ABC):
    """Where workflow instances are persisted. Subclasses implement the abstract methods.

    Args:
        codec: encodes fact values and event payloads; :data:`runeflow.codec.default_codec`
            when ``None``. Event blobs need a :class:`~runeflow.codec.JsonCodec`; another
            codec (e.g. ``PickleCodec``) is used for fact values and snapshots' facts only.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()
    """What this store supports."""

    def __init__(self, *, codec: Codec | None = None) -> None:
        self.codec: Codec = codec if codec is not None else default_codec
        self._events_codec = codec if isinstance(codec, JsonCodec) else default_codec
        self._build_blobs: dict[int, tuple[tuple[Event, ...], bytes]] = {}
        self._checked: dict[int, tuple[Any, bytes]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the schema or run pending migrations; safe to call again."""

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- instances --------------------------------------------------------------------------

    @abstractmethod
    def create(
        self,
        workflow_id: str,
        *,
        definition_name: str,
        definition_hash: str,
        status: str = "running",
        metadata: dict[str, Any] | None = None,
        events: Sequence[Event] = (),
        timers: Sequence[Timer] = (),
        owner: str | None = None,
        ttl: float = 0.0,
    ) -> bool:
        """Register a new instance, with its first log row, timers and owner, atomically.

        Args:
            workflow_id: the new instance's id.
            definition_name: the workflow's name.
            definition_hash: the content hash of its definition (``""`` when unknown).
            status: its first status.
            metadata: JSON-compatible extra data.
            events: the first events of its log (build events, the first input...).
            timers: timers (and commands: timers due at 0) to keep with it.
            owner: when given, the instance is created leased to ``owner`` for ``ttl``
                seconds, with fencing token 1.
            ttl: the lease's time to live, with ``owner``.

        Returns:
            ``False`` (and changes nothing) if an instance with that id already exists.

        Raises:
            CodecError: an event or the metadata cannot be encoded (nothing is written).
        """

    @abstractmethod
    def exists(self, workflow_id: str) -> bool:
        """Whether an instance with that id is stored."""

    @abstractmethod
    def get(self, workflow_id: str) -> InstanceMeta:
        """Return the instance's metadata.

        Raises:
            WorkflowNotFoundError: when no instance has that id.
            StoreError: the instance's row cannot be read (unreadable metadata, an unknown
                status, a timestamp that is not a number...), naming the instance and what
                is wrong; :meth:`list` shows such a row flagged instead.
        """

    @abstractmethod
    def list(self, status: str | Collection[str] | None = None) -> list[InstanceMeta]:
        """Return the stored instances, optionally only those with the given status(es).

        A row that cannot be read whole does not fail the listing: it is returned with what
        could be read (``metadata={}`` when the metadata is unreadable, ``0.0`` for a
        timestamp that is not a number...) and :attr:`InstanceMeta.error` saying what is
        wrong (``"unreadable metadata: ..."``), before any error a runner recorded.
        """

    @abstractmethod
    def set_status(self, workflow_id: str, status: str) -> None:
        """Change an instance's status.

        Raises:
            WorkflowNotFoundError: when no instance has that id.
        """

    @abstractmethod
    def set_error(self, workflow_id: str, error: str | None) -> None:
        """Record (or, with ``None``, clear) why the instance cannot be loaded; see
        :attr:`InstanceMeta.error`. Nothing else of the instance changes.

        Raises:
            WorkflowNotFoundError: when no instance has that id.
        """

    @abstractmethod
    def delete(self, workflow_id: str) -> None:
        """Remove an instance: its log, snapshots, timers, lease and metadata.

        Fact values are kept, since other instances may share their content.
        """

    # --- the log ----------------------------------------------------------------------------

    @abstractmethod
    def append(
        self,
        workflow_id: str,
        events: Sequence[Event],
        *,
        status: str | None = None,
        token: int | None = None,
        timers: Sequence[Timer] = (),
        done_timers: Sequence[str] = (),
    ) -> int:
        """Append ``events`` atomically (all or none) and return the new cursor.

        Durable stores share one transaction between the appends that several threads make
        at once (group commit, see :mod:`runeflow.stores.batching`); each append is still
        atomic and refused on its own.

        Args:
            workflow_id: an instance created with :meth:`create`.
            events: the events, in order; may be empty.
            status: when given, the instance status is set in the same transaction.
            token: the writer's fencing token (from :meth:`acquire_lease`, :meth:`claim` or
                a leased :meth:`create`). When given, the store refuses the append, in the
                same transaction, unless the instance's token is still this one.
            timers: timers to keep (replacing any with the same id) in the same
                transaction, e.g. the one a ``TimerScheduled`` event among ``events`` arms.
            done_timers: ids of timers to remove in the same transaction, e.g. those whose
                ``TimerFired``/``TimerCancelled`` is among ``events`` or already logged.

        Raises:
            LeaseLostError: ``token`` is stale: another owner took the instance over
                (nothing is written).
            StoreError: the instance does not exist, or the store failed.
            CodecError: an event holds a value the codec cannot encode (nothing is written).
        """

    def append_many(self, appends: Sequence[Append]) -> builtins.list[int | Exception]:
        """Write several appends, in one transaction where the store can, and return each
        one's new cursor, or the error that refused it.

        Each append is atomic and checked on its own, as :meth:`append` does: a stale token
        (:class:`~runeflow.errors.LeaseLostError`), an unknown instance
        (:class:`~runeflow.errors.StoreError`) or a value that cannot be encoded
        (:class:`~runeflow.errors.CodecError`) refuses that append only, and is returned in
        its place. Appends to one instance are applied in the order given.

        Raises:
            StoreError: the store failed as a whole; none of the appends was written (by
                stores that write them in one transaction, as the built-in ones do).
        """
        results: builtins.list[int | Exception] = []
        for a in appends:
            try:
                results.append(
                    self.append(
                        a.workflow_id,
                        a.events,
                        status=a.status,
                        token=a.token,
                        timers=a.timers,
                        done_timers=a.done_timers,
                    )
                )
            except StoreUnavailableError:
                raise
            except RuneflowError as exc:
                results.append(exc)
        return results

    @abstractmethod
    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """Yield the events with a cursor greater than ``after``, in order, in batches.

        Args:
            workflow_id: the instance.
            after: skip the events up to this cursor (e.g. a snapshot's cursor).
            values: when ``False``, ``FactProduced`` facts come as ``FactRef`` without
                loading their values (stores with the ``fact_store`` capability).

        Raises:
            StoreError: at the first row that cannot be read (corrupt, missing, or not
                decodable, or a fact value it needs is), naming workflow and cursor; the
                events before it are yielded first.
        """

    @abstractmethod
    def cursor(self, workflow_id: str) -> int:
        """Return the number of events in the instance's log (0 for an unknown one)."""

    # --- snapshots --------------------------------------------------------------------------

    @abstractmethod
    def save_snapshot(self, workflow_id: str, cursor: int, snapshot: bytes) -> None:
        """Keep ``snapshot`` as the instance's state after event ``cursor``; latest wins."""

    @abstractmethod
    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """Return ``(cursor, snapshot)`` of the latest snapshot, or ``None``.

        Raises:
            StoreError: the stored snapshot is corrupt (naming the workflow and cursor).
        """

    # --- facts ------------------------------------------------------------------------------

    @abstractmethod
    def save_fact(self, fact_id: str, value: Any) -> None:
        """Store a fact value, content-addressed (equal encodings are stored once)."""

    @abstractmethod
    def load_fact(self, fact_id: str) -> Any:
        """Return a stored fact value.

        Raises:
            StoreError: when no value is stored under ``fact_id``, or it is corrupt or
                cannot be decoded (naming the fact).
        """

    def load_facts(self, fact_ids: Sequence[str]) -> dict[str, Any]:
        """Return several stored fact values by id (in few queries where the store can).

        Raises:
            StoreError: when no value is stored under one of the ids, or one is corrupt or
                cannot be decoded (naming the fact).
        """
        return {fact_id: self.load_fact(fact_id) for fact_id in fact_ids}

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Return counts: ``instances``, ``events``, ``facts`` and ``contents``."""

    # --- timers -----------------------------------------------------------------------------

    @abstractmethod
    def schedule_timer(self, timer: Timer) -> None:
        """Store a timer (replacing one with the same id)."""

    @abstractmethod
    def due_timers(
        self, now: float, limit: int = 100, *, owner: str | None = None
    ) -> builtins.list[Timer]:
        """Return up to ``limit`` timers with ``fire_at <= now``, earliest first (then by id).

        With ``owner``: only timers of instances whose unexpired lease ``owner`` holds.
        """

    @abstractmethod
    def cancel_timer(self, timer_id: str) -> bool:
        """Remove a pending timer; ``True`` only for the one caller that removed it.

        A runner fires a due timer only after winning this call, so each timer fires at
        most once across processes.
        """

    @abstractmethod
    def timers(self, workflow_id: str) -> builtins.list[Timer]:
        """Return the instance's pending timers, earliest first."""

    @abstractmethod
    def next_timer_at(self) -> float | None:
        """Return the earliest ``fire_at`` of all pending timers, or ``None``."""

    # --- leases -----------------------------------------------------------------------------

    @abstractmethod
    def acquire_lease(
        self, workflow_id: str, owner: str, ttl: float, *, expect: int | None = None
    ) -> int | None:
        """Take the instance's lease for ``ttl`` seconds; return the fencing token, or ``None``.

        It is granted when the lease is free, expired or already ``owner``'s. A live lease
        already held by ``owner`` keeps its token; any other grant increments the token, so
        writes stating an older one are refused (see :meth:`append`). With ``expect``, it is
        granted only while the token is still ``expect`` (an owner taking back its own expired
        lease, provided nobody took the instance in between). ``None`` also for an unknown
        instance.
        """

    @abstractmethod
    def renew_lease(self, workflow_id: str, owner: str, ttl: float) -> bool:
        """Extend our lease by ``ttl`` seconds from now; ``False`` if we no longer hold it."""

    @abstractmethod
    def renew_leases(self, owner: str, ttl: float) -> dict[str, int]:
        """Extend every unexpired lease ``owner`` holds by ``ttl`` seconds from now, at once.

        Returns:
            ``{workflow_id: token}`` of the leases renewed.
        """

    @abstractmethod
    def release_lease(self, workflow_id: str, owner: str) -> None:
        """Give up the lease if ``owner`` holds it (its token stays as it is)."""

    def release_leases(self, owner: str, workflow_ids: Collection[str]) -> None:
        """Give up the leases ``owner`` holds on ``workflow_ids`` (a runner shutting down);
        stores that can do it in one statement do."""
        for workflow_id in workflow_ids:
            self.release_lease(workflow_id, owner)

    @abstractmethod
    def lease_owner(self, workflow_id: str) -> str | None:
        """Return the owner of an unexpired lease, or ``None``."""

    @abstractmethod
    def live_owners(self) -> builtins.list[str]:
        """Return the distinct owners holding an unexpired lease on some instance."""

    @abstractmethod
    def claim(
        self,
        owner: str,
        ttl: float,
        *,
        limit: int,
        timers_due: float,
        dead_owners: Collection[str] = (),
        exclude: Collection[str] = (),
    ) -> builtins.list[tuple[str, int]]:
        """Lease up to ``limit`` instances that have work and no live owner; return
        ``[(workflow_id, token), ...]``.

        An instance has work when its status is ``running`` or it has a timer (or command)
        with ``fire_at <= timers_due``; it has no live owner when its lease is free, expired,
        or held by one of ``dead_owners``. Ids in ``exclude`` are skipped. Concurrent
        callers get disjoint sets, and each grant increments the token as
        :meth:`acquire_lease` does.
        """

    # --- listing (see runeflow.stores.listing) ----------------------------------------------

    def list_page(
        self,
        where: InstanceFilter | None = None,
        *,
        after: PageKey | None = None,
        before: PageKey | None = None,
        limit: int = 50,
    ) -> InstancePage:
        """Return one page of the instances ``where`` selects, newest first (by id when it
        gives an id prefix), with the keys of the pages around it.

        The durable stores answer from indexes, reading about ``limit`` rows whatever the
        store holds; this default filters :meth:`list` (every instance) in Python.

        Args:
            where: statuses, workflow and id prefix to keep (everything by default).
            after: a page's ``next`` key: the page that follows it.
            before: a page's ``previous`` key: the page that precedes it.
            limit: instances per page, 1 to :data:`~runeflow.stores.listing.MAX_PAGE`.

        Raises:
            UsageError: both ``after`` and ``before``, a malformed key or limit.
        """
        where = where if where is not None else InstanceFilter()
        check_page_args(where, after, before, limit, numeric_keys=True)  # list() gives numbers
        metas, following, previous = page_in_memory(
            self.list(where.statuses or None),
            where,
            after=after,
            before=before,
            limit=limit,
            key_of=lambda m: (m.created_at, m.workflow_id),
            matches=where.matches,
        )
        return InstancePage(instances=metas, next=following, previous=previous)

    def count_instances(
        self, *, status: str | None = None, workflow: str | None = None, cap: int = 10_000
    ) -> int:
        """Count the instances with ``status`` and of ``workflow`` (all when ``None``), up
        to ``cap``: a result equal to ``cap`` means "at least ``cap``". The durable stores
        read at most ``cap`` index entries; this default reads :meth:`list`.

        Raises:
            UsageError: a status or workflow that is not text, a cap below 1.
        """
        check_count_args(status, workflow, cap)
        metas = self.list(status)
        return min(cap, sum(workflow is None or m.definition_name == workflow for m in metas))

    def workflow_names(self, limit: int = 200) -> builtins.list[str]:
        """The distinct workflow (definition) names of the stored instances, sorted, at most
        ``limit`` of them. The durable stores read one index entry per name."""
        return sorted({m.definition_name for m in self.list()})[:limit]

    # --- shared helpers ---------------------------------------------------------------------

    def _decode_rows(
        self,
        workflow_id: str,
        rows: Iterable[LogRow],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterator[Event]:
        """Decode the log rows after position ``after``, in order, skipping events up to it.

        Rows are decoded :data:`DECODE_BATCH` at a time (see :meth:`_decode_chunk`).
        """
        position = after
        for chunk in _chunks(rows, DECODE_BATCH):
            yield from self._decode_chunk(workflow_id, chunk, position, load_value)
            position = chunk[-1][3]

    def _decode_chunk(
        self,
        workflow_id: str,
        chunk: Sequence[LogRow],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterable[Event]:
        """Decode a few rows with one JSON parse and return their events after ``after``.

        ``chunk`` holds the next rows of the log after position ``after`` (the events read
        so far, or skipped). Rows are checked (checksums, and that they follow each other
        from ``after + 1`` on); a chunk that fails a check or the batch decode is decoded
        row by row, so the error names the first bad row. Streams call this directly and
        ``yield from`` the list, which saves a generator layer per event on long replays.
        """
        blobs = builtins.list(map(_BLOB, chunk))
        first = chunk[0][0]
        events: builtins.list[Event] | None = None
        try:
            with gc_paused():  # checks included: their garbage would trigger collections
                counts = [r[3] - r[0] + 1 for r in chunk]
                if first <= after + 1 and _checksums_match(blobs, chunk):
                    events = self._events_codec.decode_event_batch(
                        blobs, counts, load_value=load_value
                    )
        except (CodecError, StoreError, TypeError):  # TypeError: a position not a number
            pass
        if events is None:
            # lazily, so the rows before the damaged one are still yielded first
            return self._decode_each(workflow_id, chunk, after, load_value)
        # Each blob holds as many events as its row's positions say (decode_event_batch
        # checks it), so this finds a row missing, or two overlapping, within the chunk.
        if len(events) != chunk[-1][3] - first + 1:
            return self._decode_each(workflow_id, chunk, after, load_value)
        if first <= after:
            return events[after - first + 1 :]
        return events

    def _decode_each(
        self,
        workflow_id: str,
        rows: Iterable[LogRow],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterator[Event]:
        """Check and decode rows one by one; raise at the first bad one, naming it."""
        decode = self._events_codec.decode_events
        expected, start = after + 1, True
        for first, stored, _, last, crc in rows:
            blob = as_bytes(stored)
            if type(first) is not int or type(last) is not int or last < first:
                why = f"a row holds the positions {first!r} to {last!r}"
                raise corrupt_log(workflow_id, expected, why)
            if first > expected:
                why = f"events {expected}-{first - 1} are missing before the row of {first}-{last}"
                raise corrupt_log(workflow_id, expected, why)
            if first < expected and not start:
                why = f"the row of events {first}-{last} overlaps the row before it"
                raise corrupt_log(workflow_id, first, why)
            if crc is not None and checksum(blob) != crc:
                raise row_checksum_mismatch(workflow_id, first, last)
            try:
                events = decode(blob, load_value=load_value)
            except (CodecError, StoreError) as exc:
                raise StoreError(
                    f"cannot read event {first} of workflow {workflow_id!r}: {exc}. The log "
                    "is left as it is; other workflows stay readable",
                    workflow_id=workflow_id,
                    cursor=first,
                ) from exc
            if len(events) != last - first + 1:
                why = f"the row said to hold events {first}-{last} holds {len(events)}"
                raise corrupt_log(workflow_id, first, why)
            if first <= after:
                events = events[after - first + 1 :]
            yield from events
            expected, start = last + 1, False

    def _value_loader(self, rows: builtins.list[Any]) -> Callable[[str], Any]:
        """Return a loader of the values a stream batch needs, fetched as ``(fact_id, value,
        check)`` rows (see :func:`~runeflow.stores.integrity.verified_values`).

        The values are checked and decoded now; one that fails raises its error only when
        the stream asks for it, so that the error names the event that needs it. A fact not
        fetched (appended as a ``FactRef``: its value was saved apart) is loaded alone.
        """
        with gc_paused():
            found, errors = verified_values(rows)
            values = self._decode_values(found, errors)

        def load(fact_id: str) -> Any:
            if fact_id in values:
                return values.pop(fact_id)
            if fact_id in errors:
                raise errors[fact_id]
            return self.load_fact(fact_id)

        return load

    def _checked_values(self, rows: builtins.list[Any], fact_ids: Sequence[str]) -> dict[str, Any]:
        """Check and decode the values of ``fact_ids`` from fetched ``(fact_id, value,
        check)`` rows (see :func:`~runeflow.stores.integrity.verified_values`).

        Raises:
            StoreError: a value is missing, corrupt or cannot be decoded (naming the fact).
        """
        found, errors = verified_values(rows)
        for fact_id in fact_ids:
            if fact_id in errors:
                raise errors[fact_id]
        missing = [fid for fid in fact_ids if fid not in found]
        if len(missing) == 1 and len(fact_ids) == 1:
            raise StoreError(f"no value is stored for fact {missing[0]!r}")
        if missing:
            raise StoreError(f"no value is stored for fact {missing[0]!r} ({len(missing)} missing)")
        return self._decode_values({fid: found[fid] for fid in fact_ids})

    def _decode_values(
        self, found: dict[str, bytes], errors: dict[str, StoreError] | None = None
    ) -> dict[str, Any]:
        """Decode many stored values (with one JSON parse when the codec allows it).

        With ``errors``, a value that cannot be decoded is left out and its error put there
        instead of raised.
        """
        codec = self.codec
        if isinstance(codec, JsonCodec) and len(found) > 1:
            try:
                with gc_paused():
                    values = codec.decode(b"[" + b",".join(found.values()) + b"]")
            except CodecError:
                values = None  # decode one by one to name the unreadable value
            if type(values) is builtins.list and len(values) == len(found):
                return dict(zip(found, values, strict=True))
        decoded: dict[str, Any] = {}
        for fact_id, data in found.items():
            try:
                decoded[fact_id] = self._decode_value(fact_id, data)
            except StoreError as exc:
                if errors is None:
                    raise
                errors[fact_id] = exc
        return decoded

    def _decode_value(self, fact_id: str, data: bytes) -> Any:
        """Decode a stored fact value, turning codec errors into a StoreError."""
        try:
            return self.codec.decode(data)
        except CodecError as exc:
            raise StoreError(f"cannot read the value of fact {fact_id!r}: {exc}") from exc
