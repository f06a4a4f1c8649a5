"""The in-process store: the default, for tests, scripts and single-process runners.

It keeps encoded bytes, not live objects: values go through the codec on ``append`` exactly
as in a durable store, so an unencodable value fails the same way and mutating a value after
appending it cannot change history. One exception, for speed: an append whose events carry
only small immutable scalars (ints, finite floats, booleans, ``None``, short strings, and
``rf.Signal`` values holding only those) or no values at all is kept as the checkpoint's
records and encoded when first read. Such events cannot fail to encode nor change later, so
what a reader gets is the same bytes, decoded the same way. It is thread-safe (one lock) and
lost with the process.

It keeps no checksums (unlike the durable stores, see :mod:`runeflow.stores.integrity`): its
bytes never leave this process's memory, so no disk, copy or other program can damage them,
and the stream still checks that log rows follow each other and decode whole.
"""

from __future__ import annotations

import builtins
import json
import math
import threading
import time
from bisect import bisect_right
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from runeflow.codec import Codec, JsonCodec
from runeflow.errors import LeaseLostError, RuneflowError, StoreError, WorkflowNotFoundError
from runeflow.model import events as ev
from runeflow.model.events import Event
from runeflow.model.facts import Fact, Signal
from runeflow.model.runstate import EventBatch
from runeflow.stores._memory_state import Instance as _Instance
from runeflow.stores._memory_state import Timers as _Timers
from runeflow.stores.base import (
    PRUNABLE,
    Append,
    Capabilities,
    EncodedAppend,
    InstanceMeta,
    LogRow,
    Store,
    Timer,
    check_prune,
    content_key,
    json_text,
)
from runeflow.stores.integrity import compacted_log, snapshot_ahead, snapshot_before_log
from runeflow.stores.listing import (
    InstanceFilter,
    InstancePage,
    PageKey,
    check_page_args,
    page_in_memory,
)

__all__ = ["MemoryStore"]

_BATCH = 256

_VALUE_FREE: frozenset[type] = frozenset(
    {
        ev.WorkflowCreated,
        ev.ComponentAdded,
        ev.ConditionSatisfied,
        ev.ConditionRejected,
        ev.RunnableDispatched,
        ev.RunnableCompleted,
        ev.RunnableFailed,
        ev.TimerScheduled,
        ev.TimerFired,
        ev.TimerCancelled,
        ev.JoinFactReceived,
        ev.JoinCompleted,
        ev.FanOutEmitted,
        ev.FanInCompleted,
        ev.EventAwaited,
        ev.DownstreamSkipped,
    }
)
"""Event kinds whose fields are runeflow's own strings and numbers, never user values."""

_SHORT_STR = 10
"""Strings up to this length encode within :data:`INLINE_VALUE_LIMIT` whatever they hold."""


def _small_scalar(value: Any) -> bool:
    """An immutable value that encodes to a short JSON scalar and cannot fail to encode."""
    cls = type(value)
    if cls is int:
        return bool(-(2**53) <= value <= 2**53)
    if cls is str:
        return len(value) <= _SHORT_STR
    if cls is float:
        return math.isfinite(value)
    return cls is bool or value is None


def _deferrable(batch: EventBatch) -> bool:
    """Whether a batch may be kept as its records and encoded later (see the module doc)."""
    for event in batch.head:
        if type(event) not in _VALUE_FREE:
            return False
    for record in batch.records:
        cls = type(record)
        if cls is tuple:  # a dispatch or completion: runeflow's own strings and numbers
            continue
        if cls is Fact:
            value = record.value
            if not _small_scalar(value) and not (
                type(value) is Signal  # frozen: its event, step and scalar data cannot change
                and _small_scalar(value.payload)
                and _small_scalar(value.input)
                and type(value.event) is str
                and type(value.step) is str
            ):
                return False
            scope = record.scope
            if scope and type(scope[0]) is not str:
                return False
        elif cls not in _VALUE_FREE:
            return False
    return True


def _any_timer(timer: Timer) -> bool:
    return True


def _discard(fact_id: str, value: Any) -> None:
    """A fact sink for deferred rows: their values are kept in the facts table already."""


def _json_copy(obj: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """Return a private copy of ``obj`` as a durable store would give it back."""
    if not obj:
        return {}
    if all(type(k) is str and type(v) in _FLAT for k, v in obj.items()):
        return dict(obj)  # flat strings, ints and booleans: JSON gives back equal values
    copy: dict[str, Any] = json.loads(json_text(obj, what))
    return copy


_FLAT = frozenset({str, int, bool, type(None)})


class MemoryStore(Store):
    """A thread-safe store held in this process's memory.

    It keeps no checksums: nothing outside this process can change its data (see the
    module docstring).

    Args:
        codec: the codec for values (default: :data:`runeflow.codec.default_codec`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(durable=False, multi_process=False)

    def __init__(self, *, codec: Codec | None = None) -> None:
        super().__init__(codec=codec)
        self._lock = threading.Lock()  # no method takes it twice
        self._instances: dict[str, _Instance] = {}
        self._facts: dict[str, str | bytes] = {}  # a content hash, or an inline value
        self._scalars: dict[str, Any] = {}  # values of deferred appends (not encoded yet)
        self._owners: dict[str, str | None] = {}  # the one instance that wrote a fact, if one
        self._defer = isinstance(self.codec, JsonCodec)
        self._contents: dict[str, bytes] = {}
        self._uses: dict[str, int] = {}  # facts per content hash
        self._timers = _Timers()

    # --- instances --------------------------------------------------------------------------

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
        """See :meth:`Store.create`."""
        encoded = self._encoded(events)
        copies = [self._timer_copy(t) for t in timers] if timers else ()
        copy = _json_copy(metadata, "metadata")
        now = time.time()
        with self._lock:
            if workflow_id in self._instances:
                return False
            inst = self._instances[workflow_id] = _Instance(
                workflow_id=workflow_id,
                definition_name=definition_name,
                definition_hash=definition_hash,
                created_at=now,
                metadata=copy,
                status=status,
                updated_at=now,
            )
            if owner is not None:
                inst.grant(owner, ttl, now, None)
            if encoded is not None:
                self._write(inst, encoded)
            for timer in copies:
                self._put_timer(timer)
            return True

    def exists(self, workflow_id: str) -> bool:
        """See :meth:`Store.exists`."""
        with self._lock:
            return workflow_id in self._instances

    def get(self, workflow_id: str) -> InstanceMeta:
        """See :meth:`Store.get`."""
        with self._lock:
            return self._instance(workflow_id).current()

    def list(self, status: str | Collection[str] | None = None) -> builtins.list[InstanceMeta]:
        """See :meth:`Store.list`."""
        wanted = {status} if isinstance(status, str) else set(status or ())
        with self._lock:
            metas = [i.current() for i in self._instances.values()]
        metas = [m for m in metas if status is None or m.status in wanted]
        return sorted(metas, key=lambda m: (m.created_at, m.workflow_id))

    def set_status(self, workflow_id: str, status: str) -> None:
        """See :meth:`Store.set_status`."""
        with self._lock:
            inst = self._instance(workflow_id)
            inst.status, inst.updated_at = status, time.time()

    def set_error(self, workflow_id: str, error: str | None) -> None:
        """See :meth:`Store.set_error`."""
        with self._lock:
            self._instance(workflow_id).error = error

    def delete(self, workflow_id: str) -> None:
        """See :meth:`Store.delete`."""
        with self._lock:
            inst = self._instances.get(workflow_id)
            if inst is not None:
                self._remove(inst)

    def _remove(self, inst: _Instance) -> None:
        """Delete an instance with the facts only it refers to (hold the lock)."""
        del self._instances[inst.workflow_id]
        for timer_id in inst.timer_ids or ():
            self._timers.pop(timer_id)
        facts = self._row_facts(inst.rows)
        if inst.snapshot_facts is not None:
            facts.update(inst.snapshot_facts)
        self._collect(inst.workflow_id, facts)

    def _row_facts(self, rows: builtins.list[tuple[int, bytes | EventBatch]]) -> set[str]:
        """The ids of the facts log rows hold."""
        ids: set[str] = set()
        for _, row in rows:
            if type(row) is EventBatch:
                ids.update(r.id for r in row.records if type(r) is Fact)
                continue
            assert isinstance(row, bytes)
            for event in self._events_codec.decode_events(row):
                if type(event) is ev.FactProduced:
                    ids.add(event.fact.id)
        return ids

    def _collect(self, workflow_id: str, fact_ids: set[str]) -> None:
        """Delete the facts of ``fact_ids`` that only ``workflow_id`` wrote, then the contents
        no fact uses any more (hold the lock)."""
        owners, facts = self._owners, self._facts
        for fact_id in fact_ids:
            if owners.get(fact_id, "") != workflow_id:
                continue
            del owners[fact_id]
            self._scalars.pop(fact_id, None)
            ref = facts.pop(fact_id, None)
            if type(ref) is str:
                self._unuse(ref)

    def _unuse(self, digest: str) -> None:
        left = self._uses.get(digest, 1) - 1
        if left > 0:
            self._uses[digest] = left
        else:
            self._uses.pop(digest, None)
            self._contents.pop(digest, None)

    def _keep_fact(self, fact_id: str, ref: str | bytes, owner: str | None) -> None:
        """Point ``fact_id`` at a content hash or an inline value (hold the lock)."""
        old = self._facts.get(fact_id)
        if old != ref:
            if type(old) is str:
                self._unuse(old)
            if type(ref) is str:
                self._uses[ref] = self._uses.get(ref, 0) + 1
        self._facts[fact_id] = ref
        if self._owners.setdefault(fact_id, owner) != owner:
            self._owners[fact_id] = None

    def list_page(
        self,
        where: InstanceFilter | None = None,
        *,
        after: PageKey | None = None,
        before: PageKey | None = None,
        limit: int = 50,
    ) -> InstancePage:
        """See :meth:`Store.list_page`: one pass over the instances (no index), building
        the metadata of the page's instances only."""
        where = where if where is not None else InstanceFilter()
        check_page_args(where, after, before, limit, numeric_keys=True)
        statuses, name, prefix = where.statuses, where.workflow, where.id_prefix

        def matches(inst: _Instance) -> bool:
            return (
                (not statuses or inst.status in statuses)
                and (name is None or inst.definition_name == name)
                and inst.workflow_id.startswith(prefix)
            )

        with self._lock:
            page, following, previous = page_in_memory(
                builtins.list(self._instances.values()),
                where,
                after=after,
                before=before,
                limit=limit,
                key_of=lambda i: (i.created_at, i.workflow_id),
                matches=matches,
            )
            metas = [inst.current() for inst in page]
        return InstancePage(instances=metas, next=following, previous=previous)

    # --- the log ----------------------------------------------------------------------------

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
        """See :meth:`Store.append`."""
        encoded = self._encoded(events)
        copies = [self._timer_copy(t) for t in timers] if timers else ()
        with self._lock:
            return self._apply(workflow_id, encoded, status, token, copies, done_timers)

    def append_many(self, appends: Sequence[Append]) -> builtins.list[int | Exception]:
        """See :meth:`Store.append_many` (under one lock: all at once)."""
        prepared: builtins.list[Any] = []
        for a in appends:
            try:
                copies = [self._timer_copy(t) for t in a.timers]
                prepared.append((a, self._encoded(a.events), copies))
            except RuneflowError as exc:
                prepared.append(exc)
        results: builtins.list[int | Exception] = []
        with self._lock:
            for item in prepared:
                if isinstance(item, Exception):
                    results.append(item)
                    continue
                a, encoded, copies = item
                try:
                    cursor = self._apply(
                        a.workflow_id, encoded, a.status, a.token, copies, a.done_timers
                    )
                except RuneflowError as exc:
                    results.append(exc)
                else:
                    results.append(cursor)
        return results

    def _apply(
        self,
        workflow_id: str,
        encoded: EncodedAppend | EventBatch | None,
        status: str | None,
        token: int | None,
        timers: Sequence[Timer],
        done_timers: Sequence[str],
    ) -> int:
        """Apply one append (hold the lock); raise what refuses it, changing nothing."""
        inst = self._instances.get(workflow_id)
        if inst is None:
            raise StoreError(
                f"cannot append to unknown workflow {workflow_id!r}: create() it first",
                workflow_id=workflow_id,
            )
        if token is not None and token != inst.epoch:
            raise LeaseLostError(workflow_id, token, f"; it is at {inst.epoch}")
        if encoded is not None:
            self._write(inst, encoded)
        inst.updated_at = time.time()
        if status is not None:
            inst.status = status
        for timer in timers:
            self._put_timer(timer)
        for timer_id in done_timers:
            self._drop_timer(timer_id)
        return inst.cursor

    def _encoded(self, events: Sequence[Event]) -> EncodedAppend | EventBatch | None:
        """The append encoded, or the batch itself when it may be encoded later."""
        if not events:
            return None
        if self._defer and type(events) is EventBatch and _deferrable(events):
            return events
        return self._encode_append(events)

    def _write(self, inst: _Instance, encoded: EncodedAppend | EventBatch) -> None:
        """Add one append to ``inst``'s log (hold the lock)."""
        wid = inst.workflow_id
        if type(encoded) is EventBatch:
            scalars, owners = self._scalars, self._owners
            for record in encoded.records:
                if type(record) is Fact:
                    fid = record.id
                    scalars[fid] = record.value
                    if owners.setdefault(fid, wid) != wid:
                        owners[fid] = None
            inst.rows.append((inst.cursor + 1, encoded))
            inst.cursor += len(encoded)
            inst.lasts.append(inst.cursor)
            return
        assert isinstance(encoded, EncodedAppend)
        if encoded.contents:
            self._contents.update(encoded.contents)
            for fid, digest in encoded.fact_hashes.items():
                self._keep_fact(fid, digest, wid)
        for fid, data in encoded.inline.items():
            self._keep_fact(fid, data, wid)
        inst.rows.append((inst.cursor + 1, encoded.blob))
        inst.cursor += encoded.count
        inst.lasts.append(inst.cursor)

    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """See :meth:`Store.stream`."""
        with self._lock:
            start = self._instance(workflow_id).compacted
        if after < start:
            raise compacted_log(workflow_id, after, start)
        load = self._load_value if values else None
        return self._decode_rows(workflow_id, self._rows(workflow_id, after), after, load)

    def _rows(self, workflow_id: str, after: int) -> Iterator[LogRow]:
        position = after
        while True:
            with self._lock:
                inst = self._instances.get(workflow_id)
                if inst is None:
                    return
                start = bisect_right(inst.lasts, position)
                batch = inst.rows[start : start + _BATCH]
                lasts = inst.lasts[start : start + _BATCH]
                if batch:
                    position = lasts[-1]
            if not batch:
                return
            for (first, row), last in zip(batch, lasts, strict=True):
                blob = (
                    self._events_codec.encode_events(row, fact_sink=_discard)
                    if isinstance(row, EventBatch)
                    else row
                )
                yield first, blob, None, last, None

    def cursor(self, workflow_id: str) -> int:
        """See :meth:`Store.cursor`."""
        with self._lock:
            return self._instance(workflow_id).cursor

    # --- snapshots --------------------------------------------------------------------------

    def save_snapshot(
        self,
        workflow_id: str,
        cursor: int,
        snapshot: bytes,
        *,
        token: int | None = None,
        fact_ids: Sequence[str] | None = None,
    ) -> None:
        """See :meth:`Store.save_snapshot`."""
        data, refs = bytes(snapshot), None if fact_ids is None else frozenset(fact_ids)
        with self._lock:
            inst = self._fenced(workflow_id, token)
            if cursor < inst.compacted:
                raise snapshot_before_log(workflow_id, cursor, inst.compacted)
            inst.snapshot, inst.snapshot_facts = (cursor, data), refs

    def _fenced(self, workflow_id: str, token: int | None) -> _Instance:
        """The instance, if ``token`` is still its fencing token (hold the lock)."""
        inst = self._instance(workflow_id)
        if token is not None and token != inst.epoch:
            raise LeaseLostError(workflow_id, token, f"; it is at {inst.epoch}")
        return inst

    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """See :meth:`Store.load_snapshot`."""
        with self._lock:
            inst = self._instances.get(workflow_id)
            return inst.snapshot if inst is not None else None

    # --- bounded stores ---------------------------------------------------------------------

    def compact(self, workflow_id: str, *, token: int | None = None) -> int:
        """See :meth:`Store.compact`."""
        with self._lock:
            inst = self._fenced(workflow_id, token)
            if inst.snapshot is None:
                return 0
            upto = inst.snapshot[0]
            covered = bisect_right(inst.lasts, upto)
            if not covered:
                return 0
            if upto > inst.cursor:
                raise snapshot_ahead(workflow_id, upto, inst.cursor)
            removed, last = inst.rows[:covered], inst.lasts[covered - 1]
            del inst.rows[:covered], inst.lasts[:covered]
            count, inst.compacted = last - inst.compacted, last
            if inst.snapshot_facts is not None:
                self._collect(workflow_id, self._row_facts(removed) - inst.snapshot_facts)
            return count

    def prune(
        self,
        updated_before: float,
        statuses: Collection[str] = PRUNABLE,
        *,
        limit: int | None = 100,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """See :meth:`Store.prune` (a scan of the instances, under the store's lock)."""
        wanted = set(check_prune(statuses, limit, dry_run))
        now = time.time()
        with self._lock:
            found = [
                inst
                for inst in self._instances.values()
                if inst.status in wanted
                and inst.updated_at < updated_before
                and inst.live_owner(now) is None
                and not inst.timer_ids
            ]
            found.sort(key=lambda i: (i.updated_at, i.workflow_id))
            found = found[:limit]
            if not dry_run:
                for inst in found:
                    self._remove(inst)
        return [inst.workflow_id for inst in found]

    # --- facts ------------------------------------------------------------------------------

    def save_fact(self, fact_id: str, value: Any) -> None:
        """See :meth:`Store.save_fact`."""
        data = self.codec.encode(value)
        digest = content_key(data)
        with self._lock:
            if digest is not None:
                self._contents.setdefault(digest, data)
            self._keep_fact(fact_id, data if digest is None else digest, None)

    def load_fact(self, fact_id: str) -> Any:
        """See :meth:`Store.load_fact`."""
        return self._load_value(fact_id)

    def _load_value(self, fact_id: str) -> Any:
        with self._lock:
            ref = self._facts.get(fact_id)
            if ref is None and fact_id in self._scalars:
                return self._scalars[fact_id]
            data = self._contents.get(ref) if isinstance(ref, str) else ref
        if data is None:
            raise StoreError(f"no value is stored for fact {fact_id!r}")
        return self._decode_value(fact_id, data)

    def stats(self) -> dict[str, int]:
        """See :meth:`Store.stats`."""
        with self._lock:
            return {
                "instances": len(self._instances),
                "events": sum(i.cursor - i.compacted for i in self._instances.values()),
                "snapshots": sum(i.snapshot is not None for i in self._instances.values()),
                "facts": len(self._facts.keys() | self._scalars.keys()),
                "contents": len(self._contents),
            }

    # --- timers -----------------------------------------------------------------------------

    def schedule_timer(self, timer: Timer) -> None:
        """See :meth:`Store.schedule_timer`."""
        copy = self._timer_copy(timer)
        with self._lock:
            self._instance(timer.workflow_id)  # raises for an unknown one
            self._put_timer(copy)

    @staticmethod
    def _timer_copy(timer: Timer) -> Timer:
        return replace(timer, payload=_json_copy(timer.payload, "a timer payload"))

    def _put_timer(self, timer: Timer) -> None:
        """Keep a timer (hold the lock); one of an unknown instance is kept as well."""
        old = self._timers.by_id.get(timer.timer_id)
        if old is not None and old.workflow_id != timer.workflow_id:
            self._drop_timer(timer.timer_id)
        self._timers.put(timer)
        inst = self._instances.get(timer.workflow_id)
        if inst is not None:
            if inst.timer_ids is None:
                inst.timer_ids = set()
            inst.timer_ids.add(timer.timer_id)

    def _drop_timer(self, timer_id: str) -> bool:
        """Remove a timer (hold the lock); ``False`` if it was not pending."""
        timer = self._timers.pop(timer_id)
        if timer is None:
            return False
        inst = self._instances.get(timer.workflow_id)
        if inst is not None and inst.timer_ids:
            inst.timer_ids.discard(timer_id)
        return True

    def due_timers(
        self, now: float, limit: int = 100, *, owner: str | None = None
    ) -> builtins.list[Timer]:
        """See :meth:`Store.due_timers`."""
        wall = time.time()
        with self._lock:
            if owner is None:
                return self._timers.due(now, _any_timer, limit)
            return self._timers.due(
                now, lambda t: self._owned_by(t.workflow_id, owner, wall), limit
            )

    def _owned_by(self, workflow_id: str, owner: str, now: float) -> bool:
        inst = self._instances.get(workflow_id)
        return inst is not None and inst.live_owner(now) == owner

    def cancel_timer(self, timer_id: str) -> bool:
        """See :meth:`Store.cancel_timer`."""
        with self._lock:
            return self._drop_timer(timer_id)

    def timers(self, workflow_id: str) -> builtins.list[Timer]:
        """See :meth:`Store.timers`."""
        with self._lock:
            inst = self._instances.get(workflow_id)
            ids = inst.timer_ids or () if inst is not None else ()
            mine = [self._timers.by_id[timer_id] for timer_id in ids]
        return sorted(mine, key=lambda t: (t.fire_at, t.timer_id))

    def next_timer_at(self) -> float | None:
        """See :meth:`Store.next_timer_at`."""
        with self._lock:
            return self._timers.next_at()

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(
        self, workflow_id: str, owner: str, ttl: float, *, expect: int | None = None
    ) -> int | None:
        """See :meth:`Store.acquire_lease`."""
        with self._lock:
            inst = self._instances.get(workflow_id)
            return None if inst is None else inst.grant(owner, ttl, time.time(), expect)

    def renew_lease(self, workflow_id: str, owner: str, ttl: float) -> bool:
        """See :meth:`Store.renew_lease`."""
        now = time.time()
        with self._lock:
            inst = self._instances.get(workflow_id)
            if inst is None or inst.live_owner(now) != owner:
                return False
            inst.expires = now + ttl
            return True

    def renew_leases(self, owner: str, ttl: float) -> dict[str, int]:
        """See :meth:`Store.renew_leases`."""
        now = time.time()
        renewed: dict[str, int] = {}
        with self._lock:
            for wid, inst in self._instances.items():
                if inst.live_owner(now) == owner:
                    inst.expires = now + ttl
                    renewed[wid] = inst.epoch
        return renewed

    def release_lease(self, workflow_id: str, owner: str) -> None:
        """See :meth:`Store.release_lease`."""
        with self._lock:
            inst = self._instances.get(workflow_id)
            if inst is not None and inst.owner == owner:
                inst.owner, inst.expires = None, 0.0

    def release_leases(self, owner: str, workflow_ids: Collection[str]) -> None:
        """See :meth:`Store.release_leases` (under one lock)."""
        with self._lock:
            for workflow_id in workflow_ids:
                inst = self._instances.get(workflow_id)
                if inst is not None and inst.owner == owner:
                    inst.owner, inst.expires = None, 0.0

    def lease_owner(self, workflow_id: str) -> str | None:
        """See :meth:`Store.lease_owner`."""
        with self._lock:
            inst = self._instances.get(workflow_id)
            return None if inst is None else inst.live_owner(time.time())

    def live_owners(self) -> builtins.list[str]:
        """See :meth:`Store.live_owners`."""
        now = time.time()
        with self._lock:
            owners = {i.live_owner(now) for i in self._instances.values()}
        return sorted(o for o in owners if o is not None)

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
        """See :meth:`Store.claim`."""
        now = time.time()
        dead = set(dead_owners)
        with self._lock:
            due = {
                t.workflow_id
                for t in self._timers.due(timers_due, _any_timer, len(self._timers.by_id))
            }
            candidates = sorted(
                (
                    inst
                    for wid, inst in self._instances.items()
                    if wid not in exclude and (inst.status == "running" or wid in due)
                ),
                key=lambda i: i.updated_at,
            )
            claimed: list[tuple[str, int]] = []
            for inst in candidates:
                if len(claimed) >= limit:
                    break
                holder = inst.live_owner(now)
                if holder is not None and holder not in dead:
                    continue
                inst.owner, inst.expires = None, 0.0
                token = inst.grant(owner, ttl, now, None)
                assert token is not None
                claimed.append((inst.workflow_id, token))
            return claimed

    # --- test hooks -------------------------------------------------------------------------

    def corrupt_event(self, workflow_id: str, cursor: int) -> None:
        """Damage the stored row holding event ``cursor`` (for tests of unreadable logs)."""
        with self._lock:
            inst = self._instance(workflow_id)
            row = bisect_right(inst.lasts, cursor - 1)
            first, blob = inst.rows[row]
            if isinstance(blob, EventBatch):
                blob = self._events_codec.encode_events(blob, fact_sink=_discard)
            inst.rows[row] = (first, blob[: len(blob) // 2])

    def _instance(self, workflow_id: str) -> _Instance:
        inst = self._instances.get(workflow_id)
        if inst is None:
            raise WorkflowNotFoundError(workflow_id)
        return inst
