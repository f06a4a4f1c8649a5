"""The store interface: event logs, snapshots, facts, timers and leases.

A store keeps, per workflow instance, an append-only event log (event ``i`` has cursor
``i``, counting from 1), the latest snapshot, and the instance's metadata. Stores with the
``fact_store`` capability keep fact values content-addressed: a ``facts`` table maps each
fact id to a content hash and each distinct encoded value is stored once. Every backend runs
the conformance suite in :mod:`runeflow.testing.store_contract`.

Logs are written in *batches*: one ``append`` call is one row (one encoded blob), written
atomically. Streaming decodes rows in order and fails at the first unreadable row with a
:class:`~runeflow.errors.StoreError` naming the workflow and cursor.
"""

from __future__ import annotations

import builtins
import gc
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from types import TracebackType
from typing import Any, ClassVar, Self

from runeflow.codec import Codec, JsonCodec, default_codec
from runeflow.errors import CodecError, StoreError
from runeflow.model.events import Event

__all__ = [
    "INLINE_VALUE_LIMIT",
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


@dataclass(kw_only=True, slots=True)  # not frozen: frozen dataclasses are slow to create
class EncodedAppend:
    """One ``append`` call, encoded before any lock is taken."""

    blob: bytes
    """The events, as one blob."""
    count: int
    """Number of events."""
    fact_ids: tuple[str, ...]
    """Ids of the facts whose values were kept out of the blob."""
    contents: dict[str, bytes]
    """Encoded fact values by content hash (each distinct value once)."""
    fact_hashes: dict[str, str]
    """Content hash of each fact id's value, for values kept in the content table."""
    inline: dict[str, bytes] = field(default_factory=dict)
    """Encoded values no longer than :data:`INLINE_VALUE_LIMIT`, by fact id; stores keep
    them in the fact's own row instead of the content table."""

    @property
    def fact_ids_text(self) -> str | None:
        """The fact ids as stored in a log row (``None`` when there are none)."""
        return json.dumps(self.fact_ids, separators=(",", ":")) if self.fact_ids else None


def json_text(obj: dict[str, Any] | None, what: str) -> str:
    """Return ``obj`` as JSON text for a metadata or payload column.

    Raises:
        CodecError: when ``obj`` is not JSON-compatible.
    """
    try:
        return json.dumps(obj or {}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"{what} must be a JSON-compatible dict: {exc}") from None


def content_hash(data: bytes) -> str:
    """Return the content address of an encoded value (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()


INLINE_VALUE_LIMIT = 64
"""Encoded values up to this many bytes are kept in the fact's own row, not addressed by
content: a content reference (a 64-character hash) would be no shorter than the value, so
deduplicating them cannot save space, and skipping the content row makes a checkpoint one
write cheaper. Longer values are stored once per distinct content."""


def content_key(data: bytes) -> str | None:
    """Return the content hash under which ``data`` is stored, or ``None`` to keep it inline."""
    return None if len(data) <= INLINE_VALUE_LIMIT else content_hash(data)


DECODE_BATCH = 256
"""Log rows decoded together by one JSON parse when streaming."""


def _chunks(
    rows: Iterable[tuple[int, bytes, int]], size: int
) -> Iterator[builtins.list[tuple[int, bytes, int]]]:
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


def _log_chunks(rows: Sequence[Any]) -> Iterator[builtins.list[tuple[int, bytes, int]]]:
    """Split fetched ``(first, blob, fact_ids, last)`` log rows into decode chunks."""
    for start in range(0, len(rows), DECODE_BATCH):
        yield [(r[0], bytes(r[1]), r[3]) for r in rows[start : start + DECODE_BATCH]]


class Store(ABC):
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

    # --- lifecycle --------------------------------------------------------------------------

    def setup(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Create the schema or run pending migrations; safe to call again."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
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
        """

    @abstractmethod
    def list(self, status: str | Collection[str] | None = None) -> list[InstanceMeta]:
        """Return the stored instances, optionally only those with the given status(es)."""

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
    ) -> int:
        """Append ``events`` atomically (all or none) and return the new cursor.

        Args:
            workflow_id: an instance created with :meth:`create`.
            events: the events, in order; may be empty.
            status: when given, the instance status is set in the same transaction.
            token: the writer's fencing token (from :meth:`acquire_lease`, :meth:`claim` or
                a leased :meth:`create`). When given, the store refuses the append, in the
                same transaction, unless the instance's token is still this one.

        Raises:
            LeaseLostError: ``token`` is stale: another owner took the instance over.
            StoreError: the instance does not exist, or the store failed.
            CodecError: an event holds a value the codec cannot encode (nothing is written).
        """

    @abstractmethod
    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """Yield the events with a cursor greater than ``after``, in order, in batches.

        Args:
            workflow_id: the instance.
            after: skip the events up to this cursor (e.g. a snapshot's cursor).
            values: when ``False``, ``FactProduced`` facts come as ``FactRef`` without
                loading their values (stores with the ``fact_store`` capability).

        Raises:
            StoreError: at the first row that cannot be read, naming workflow and cursor.
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
        """Return ``(cursor, snapshot)`` of the latest snapshot, or ``None``."""

    # --- facts ------------------------------------------------------------------------------

    @abstractmethod
    def save_fact(self, fact_id: str, value: Any) -> None:
        """Store a fact value, content-addressed (equal encodings are stored once)."""

    @abstractmethod
    def load_fact(self, fact_id: str) -> Any:
        """Return a stored fact value.

        Raises:
            StoreError: when no value is stored under ``fact_id``.
        """

    def load_facts(self, fact_ids: Sequence[str]) -> dict[str, Any]:
        """Return several stored fact values by id (in few queries where the store can).

        Raises:
            StoreError: when no value is stored under one of the ids.
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

    # --- shared helpers ---------------------------------------------------------------------

    def _encode_append(self, events: Sequence[Event]) -> EncodedAppend:
        """Encode one append: the blob, and the fact values kept apart from it."""
        if not self.capabilities.fact_store:
            blob = self._events_codec.encode_events(events)
            return EncodedAppend(
                blob=blob, count=len(events), fact_ids=(), contents={}, fact_hashes={}
            )
        fact_hashes: dict[str, str] = {}
        contents: dict[str, bytes] = {}
        inline: dict[str, bytes] = {}
        fact_ids: list[str] = []
        encode = self.codec.encode

        def keep(fact_id: str, value: Any) -> None:
            data = encode(value)
            fact_ids.append(fact_id)
            digest = content_key(data)
            if digest is None:
                inline[fact_id] = data
                return
            fact_hashes[fact_id] = digest
            contents[digest] = data

        blob = self._events_codec.encode_events(events, fact_sink=keep)
        return EncodedAppend(
            blob=blob,
            count=len(events),
            fact_ids=tuple(fact_ids),
            contents=contents,
            fact_hashes=fact_hashes,
            inline=inline,
        )

    def _decode_rows(
        self,
        workflow_id: str,
        rows: Iterable[tuple[int, bytes, int]],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterator[Event]:
        """Decode ``(first_cursor, blob, last_cursor)`` rows, skipping events up to ``after``.

        Rows are decoded :data:`DECODE_BATCH` at a time (see :meth:`_decode_chunk`).
        """
        for chunk in _chunks(rows, DECODE_BATCH):
            yield from self._decode_chunk(workflow_id, chunk, after, load_value)

    def _decode_chunk(
        self,
        workflow_id: str,
        chunk: Sequence[tuple[int, bytes, int]],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterable[Event]:
        """Decode a few rows with one JSON parse and return their events after ``after``.

        A chunk that fails is decoded row by row, so the error names the first unreadable
        row. Streams call this directly and ``yield from`` the list, which saves a generator
        layer per event on long replays.
        """
        blobs = [r[1] for r in chunk]
        try:
            with gc_paused():
                events = self._events_codec.decode_event_batch(
                    blobs, [r[2] - r[0] + 1 for r in chunk], load_value=load_value
                )
        except (CodecError, StoreError):
            # lazily, so the rows before the damaged one are still yielded first
            return self._decode_each(workflow_id, chunk, after, load_value)
        first = chunk[0][0]
        if first <= after:
            return events[after - first + 1 :]
        return events

    def _decode_each(
        self,
        workflow_id: str,
        rows: Iterable[tuple[int, bytes, int]],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterator[Event]:
        decode = self._events_codec.decode_events
        for first, blob, _ in rows:
            try:
                events = decode(blob, load_value=load_value)
            except (CodecError, StoreError) as exc:
                raise StoreError(
                    f"cannot read event {first} of workflow {workflow_id!r}: {exc}. The log "
                    "is left as it is; other workflows stay readable",
                    workflow_id=workflow_id,
                    cursor=first,
                ) from exc
            if first <= after:
                events = events[after - first + 1 :]
            yield from events

    def _decode_values(self, found: dict[str, bytes]) -> dict[str, Any]:
        """Decode many stored values (with one JSON parse when the codec allows it)."""
        codec = self.codec
        if isinstance(codec, JsonCodec) and len(found) > 1:
            try:
                with gc_paused():
                    values = codec.decode(b"[" + b",".join(found.values()) + b"]")
            except CodecError:
                values = None  # decode one by one to name the unreadable value
            if type(values) is builtins.list and len(values) == len(found):
                return dict(zip(found, values, strict=True))
        return {fid: self._decode_value(fid, data) for fid, data in found.items()}

    def _decode_value(self, fact_id: str, data: bytes) -> Any:
        """Decode a stored fact value, turning codec errors into a StoreError."""
        try:
            return self.codec.decode(data)
        except CodecError as exc:
            raise StoreError(f"cannot read the value of fact {fact_id!r}: {exc}") from exc
