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

Stores are bounded by two primitives (see :mod:`runeflow.runner.retention`): :meth:`Store.compact`
deletes the log rows the latest snapshot covers (the log then starts after them, the cursor
stays), and :meth:`Store.prune` deletes finished instances in short batches. Both, like
:meth:`Store.delete`, collect the fact values no instance refers to any more.
"""

from __future__ import annotations

import builtins
import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from runeflow.codec import Codec, JsonCodec, default_codec
from runeflow.errors import (
    CodecError,
    RuneflowError,
    StoreUnavailableError,
    UsageError,
)
from runeflow.model.events import Event
from runeflow.stores.batching import Append
from runeflow.stores.decoding import DECODE_BATCH, LogDecoding, LogRow, gc_paused
from runeflow.stores.encoding import (
    INLINE_VALUE_LIMIT,
    AppendEncoding,
    EncodedAppend,
    content_hash,
    content_key,
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
    "DECODE_BATCH",
    "INLINE_VALUE_LIMIT",
    "PRUNABLE",
    "Append",
    "Capabilities",
    "EncodedAppend",
    "InstanceMeta",
    "LogRow",
    "Store",
    "Timer",
    "check_prune",
    "content_hash",
    "content_key",
    "gc_paused",
    "json_text",
]

PRUNABLE = ("idle", "failed", "stopped")
"""The statuses of finished instances, the only ones :meth:`Store.prune` deletes."""


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
    compacted: int = 0
    """Events up to this position were removed by :meth:`Store.compact` (the instance's
    snapshot holds their state): its log starts at the next event. 0 when never compacted."""


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


def check_prune(statuses: Collection[str], limit: int | None, dry_run: bool) -> builtins.list[str]:
    """Check the arguments of :meth:`Store.prune`; return the statuses as a list.

    Raises:
        UsageError: a status is not one of :data:`PRUNABLE` (``running`` and ``waiting``
            instances are never pruned) or none is given; ``limit`` is below 1, or ``None``
            without ``dry_run``.
    """
    wanted = [statuses] if isinstance(statuses, str) else builtins.list(statuses)
    wrong = [s for s in wanted if s not in PRUNABLE]
    if wrong or not wanted:
        raise UsageError(
            f"prune deletes finished instances only: give statuses among {PRUNABLE}, not "
            f"{wrong or wanted!r} (running and waiting instances are never pruned)"
        )
    if limit is None and not dry_run:
        raise UsageError("prune deletes in batches: give limit=N (a dry run may list them all)")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise UsageError(f"limit must be a whole number of instances, 1 or more, not {limit!r}")
    return builtins.list(dict.fromkeys(wanted))


class Store(AppendEncoding, LogDecoding, ABC):
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
        """Remove an instance: its log, snapshots, timers, lease and metadata, and the fact
        values only it referred to (a value another instance's facts share is kept).

        Nothing happens for an unknown instance.
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
                events before it are yielded first. At once when ``after`` is before the
                start of a compacted log (:attr:`InstanceMeta.compacted`): those events are
                gone, their state is in the snapshot.
        """

    @abstractmethod
    def cursor(self, workflow_id: str) -> int:
        """Return the position of the instance's last event (the number of events ever
        appended: compaction does not lower it).

        Raises:
            WorkflowNotFoundError: when no instance has that id.
        """

    # --- snapshots --------------------------------------------------------------------------

    @abstractmethod
    def save_snapshot(
        self,
        workflow_id: str,
        cursor: int,
        snapshot: bytes,
        *,
        token: int | None = None,
        fact_ids: Sequence[str] | None = None,
    ) -> None:
        """Keep ``snapshot`` as the instance's state after event ``cursor``; latest wins.

        Args:
            workflow_id: the instance.
            cursor: the position of the last event the snapshot covers.
            snapshot: the encoded snapshot.
            token: the writer's fencing token, checked as :meth:`append` does.
            fact_ids: the facts whose values the snapshot refers to by id: they stay while
                the snapshot does. ``None`` (unknown) makes :meth:`compact` keep every fact
                of the rows it removes.

        Raises:
            WorkflowNotFoundError: when no instance has that id.
            LeaseLostError: ``token`` is stale (nothing is written).
            StoreError: ``cursor`` is before the start of the compacted log: the events
                between them are gone, so that snapshot could never be completed.
        """

    @abstractmethod
    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """Return ``(cursor, snapshot)`` of the latest snapshot, or ``None``.

        Raises:
            StoreError: the stored snapshot is corrupt (naming the workflow and cursor).
        """

    # --- bounded stores ---------------------------------------------------------------------

    @abstractmethod
    def compact(self, workflow_id: str, *, token: int | None = None) -> int:
        """Delete the log rows the latest snapshot covers, in one transaction; return how
        many events were removed (0 without a snapshot, or when nothing is left to remove).

        A row is removed when its last event is at or before the snapshot's cursor. The
        log then starts after the last removed row (:attr:`InstanceMeta.compacted`);
        :meth:`cursor`, :meth:`get` and ``stream(after=snapshot cursor)`` are unchanged, and
        :meth:`stats` counts the events kept. Facts only the removed rows referred to (not
        the snapshot, see ``save_snapshot(fact_ids=)``, nor another instance) are deleted,
        with the values no fact refers to any more.

        Raises:
            WorkflowNotFoundError: when no instance has that id.
            LeaseLostError: ``token`` is stale (nothing is removed).
            StoreError: the snapshot is ahead of the log (nothing is removed).
        """

    @abstractmethod
    def prune(
        self,
        updated_before: float,
        statuses: Collection[str] = PRUNABLE,
        *,
        limit: int | None = 100,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """Delete up to ``limit`` finished instances, in one short transaction; return their
        ids.

        An instance is deleted only if its status is one of ``statuses`` (finished ones:
        see :func:`check_prune`), it was last updated (:attr:`InstanceMeta.updated_at`)
        before ``updated_before`` (epoch seconds), no unexpired lease is held on it, and it
        has no pending timer or command. It goes as :meth:`delete` removes it: log,
        snapshot, metadata, and the fact values only it referred to. Call it again for
        the next batch (``runeflow.runner.retention.prune_store`` does); concurrent callers
        never delete an instance twice.

        Args:
            updated_before: the threshold, epoch seconds.
            statuses: which finished instances.
            limit: the batch size; ``None`` only with ``dry_run`` (all of them).
            dry_run: change nothing; return the ids that would be deleted.

        Raises:
            UsageError: a status that is not a finished one, or a limit below 1.
        """

    # --- facts ------------------------------------------------------------------------------

    @abstractmethod
    def save_fact(self, fact_id: str, value: Any) -> None:
        """Store a fact value, content-addressed (equal encodings are stored once).

        No instance owns a value saved this way: it is kept until the store is emptied
        (collection deletes only the facts of instances' logs and snapshots).
        """

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
        """Return counts: ``instances``, ``events`` (kept in the logs: compaction lowers it),
        ``snapshots``, ``facts`` and ``contents`` (distinct values kept by hash)."""

    # --- timers -----------------------------------------------------------------------------

    @abstractmethod
    def schedule_timer(self, timer: Timer) -> None:
        """Store a timer (replacing one with the same id) of an instance that exists, checked
        in the same transaction: a timer is never left behind by an instance deleted or
        pruned meanwhile.

        Raises:
            WorkflowNotFoundError: no such instance (nothing is stored).
        """

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
