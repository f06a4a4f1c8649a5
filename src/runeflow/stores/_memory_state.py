"""The state :class:`~runeflow.stores.memory.MemoryStore` keeps: one record per instance
(its log rows, snapshot, lease) and the pending timers with a heap of the due ones."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from runeflow.model.runstate import EventBatch
from runeflow.stores.base import InstanceMeta, Timer

__all__ = ["Instance", "Timers"]


@dataclass(kw_only=True, slots=True)
class Instance:
    """One instance's state (mutable, guarded by the store's lock)."""

    workflow_id: str
    """Its id."""
    definition_name: str
    """Its workflow's name."""
    definition_hash: str
    """Its definition's hash."""
    created_at: float
    """When it was created."""
    metadata: dict[str, Any]
    """Its metadata (a private copy)."""
    meta: InstanceMeta | None = None
    """Its metadata as last built by :meth:`current` (the fields above are newer)."""
    status: str
    """Its status."""
    cursor: int = 0
    """The log's last position."""
    compacted: int = 0
    """Where the compacted log starts (see :attr:`InstanceMeta.compacted`)."""
    updated_at: float = 0.0
    """When the log or the status last changed."""

    owner: str | None = None
    """The lease holder (see :attr:`expires`)."""
    expires: float = 0.0
    """When the lease ends, epoch seconds."""
    epoch: int = 0
    """The fencing token."""
    error: str | None = None
    """Why a runner could not load it."""

    def current(self) -> InstanceMeta:
        """Return the metadata with the current status, cursor, update time and lease."""
        meta = self.meta
        owner = self.live_owner(time.time())
        if meta is None:
            meta = self.meta = InstanceMeta(
                workflow_id=self.workflow_id,
                definition_name=self.definition_name,
                definition_hash=self.definition_hash,
                status=self.status,
                created_at=self.created_at,
                updated_at=self.updated_at,
                cursor=self.cursor,
                metadata=self.metadata,
                owner=owner,
                epoch=self.epoch,
                error=self.error,
                compacted=self.compacted,
            )
        elif (
            meta.status,
            meta.cursor,
            meta.updated_at,
            meta.owner,
            meta.epoch,
            meta.error,
            meta.compacted,
        ) != (
            self.status,
            self.cursor,
            self.updated_at,
            owner,
            self.epoch,
            self.error,
            self.compacted,
        ):
            meta = self.meta = replace(
                meta,
                status=self.status,
                cursor=self.cursor,
                updated_at=self.updated_at,
                owner=owner,
                epoch=self.epoch,
                error=self.error,
                compacted=self.compacted,
            )
        return meta

    def live_owner(self, now: float) -> str | None:
        """The lease holder if the lease has not expired."""
        return self.owner if self.owner is not None and self.expires > now else None

    def grant(self, owner: str, ttl: float, now: float, expect: int | None) -> int | None:
        """Take the lease (see :meth:`Store.acquire_lease`); return the token or ``None``."""
        holder = self.live_owner(now)
        if expect is not None and self.epoch != expect:
            return None
        if holder is not None and holder != owner:
            return None
        if holder != owner or expect is not None:
            self.epoch += 1
        self.owner, self.expires = owner, now + ttl
        return self.epoch

    rows: list[tuple[int, bytes | EventBatch]] = field(default_factory=list)
    """The log: one ``(first_cursor, encoded_events)`` row per append (the events
    themselves for a deferred append, until first read)."""
    lasts: list[int] = field(default_factory=list)
    """Last cursor of each row (sorted; used to find where a stream starts)."""
    snapshot: tuple[int, bytes] | None = None
    """The latest snapshot."""
    snapshot_facts: frozenset[str] | None = None
    """The facts the snapshot refers to, when it said so."""
    timer_ids: set[str] | None = None
    """Ids of its pending timers."""


class Timers:
    """Pending timers by id, with a heap of ``(fire_at, timer_id)`` for the due ones.

    The heap is lazy: removing or rescheduling a timer leaves its old entry, skipped (and
    dropped) when met; it is rebuilt when stale entries outnumber live ones. So scheduling,
    removing and finding the next due timers cost O(log n) each, not a scan of all timers.
    """

    def __init__(self) -> None:
        self.by_id: dict[str, Timer] = {}
        self._heap: list[tuple[float, str]] = []

    def put(self, timer: Timer) -> None:
        self.by_id[timer.timer_id] = timer
        heapq.heappush(self._heap, (timer.fire_at, timer.timer_id))
        if len(self._heap) > 2 * len(self.by_id) + 1024:
            self._heap = [(t.fire_at, t.timer_id) for t in self.by_id.values()]
            heapq.heapify(self._heap)

    def pop(self, timer_id: str) -> Timer | None:
        return self.by_id.pop(timer_id, None)

    def due(self, now: float, keep: Callable[[Timer], bool], limit: int) -> list[Timer]:
        """Up to ``limit`` timers due by ``now`` that ``keep`` accepts, earliest first."""
        heap, by_id = self._heap, self.by_id
        found: list[Timer] = []
        seen: dict[str, float] = {}
        while heap and heap[0][0] <= now and len(found) < limit:
            fire_at, timer_id = heapq.heappop(heap)
            timer = by_id.get(timer_id)
            if timer is None or timer.fire_at != fire_at or timer_id in seen:
                continue  # removed, rescheduled, or a duplicate entry: drop it
            seen[timer_id] = fire_at
            if keep(timer):
                found.append(timer)
        for timer_id, fire_at in seen.items():
            heapq.heappush(heap, (fire_at, timer_id))
        return found

    def next_at(self) -> float | None:
        heap, by_id = self._heap, self.by_id
        while heap:
            fire_at, timer_id = heap[0]
            timer = by_id.get(timer_id)
            if timer is not None and timer.fire_at == fire_at:
                return fire_at
            heapq.heappop(heap)
        return None
