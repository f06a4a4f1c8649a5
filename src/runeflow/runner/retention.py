"""Bounded stores for a runner: snapshots every N events (compacting the log), and retention
of finished instances.

**Snapshots and compaction** (``Runner(snapshot_every=N, compact=True)``). After a
checkpoint whose events cross a multiple of N in the instance's log, the worker writes a
snapshot of the instance at that cursor (fenced by its lease's token, like an append); with
``compact=True`` it then has the store delete the log rows the snapshot covers
(:meth:`~runeflow.stores.base.Store.compact`), strictly after the snapshot is durable. A
log therefore keeps fewer than N events plus one checkpoint's after a snapshot, and a
runner that loads the instance reads the snapshot and that tail. Without ``snapshot_every``
a checkpoint pays one attribute test for all this. A snapshot that fails (the store is down,
the lease was just lost) is logged and skipped: the log stays whole, and the next multiple
of N tries again.

**Retention** (``runner.prune(older_than=...)``, ``Runner(retention=timedelta(days=7))``,
``runeflow prune``). Finished instances (``idle``, ``failed``, ``stopped``) last updated
before the threshold are deleted with their log, snapshot and the fact values only they
referred to, in batches of :data:`PRUNE_BATCH` (one short transaction each); instances that
are running or waiting, held by a live runner, or have a pending timer or command are never
touched. A serving runner with ``retention=`` prunes in the background of its polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from runeflow.errors import LeaseLostError, RuneflowError, UsageError
from runeflow.recovery import save_snapshot
from runeflow.stores.base import PRUNABLE, Store, check_prune

if TYPE_CHECKING:
    from runeflow.runner.worker import Worker

__all__ = [
    "PRUNE_BATCH",
    "Retaining",
    "Retention",
    "Snapshots",
    "as_seconds",
    "prune_store",
]

log = logging.getLogger("runeflow.runner")

PRUNE_BATCH = 100
"""Instances deleted per transaction: a batch holds the SQLite write lock (or the rows' locks
on PostgreSQL) for a few milliseconds, so appends from running instances barely wait."""

RETENTION_INTERVAL = 60.0
"""Seconds between two background prunes of a serving runner (sooner for a short
retention, at once again while batches come back full)."""


def as_seconds(value: timedelta | float, what: str = "older_than") -> float:
    """``value`` (a timedelta or a number of seconds) in seconds.

    Raises:
        UsageError: it is neither, negative, or not finite.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise UsageError(
            f"{what} must be a number of seconds or a datetime.timedelta, not {value!r}"
        )
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise UsageError(f"{what} must be 0 or more seconds, not {value!r}")
    return float(seconds)


def prune_store(
    store: Store,
    updated_before: float,
    statuses: Collection[str] = PRUNABLE,
    *,
    limit: int | None = None,
    batch: int = PRUNE_BATCH,
) -> list[str]:
    """Delete finished instances last updated before ``updated_before`` (epoch seconds), a
    batch at a time (see :meth:`Store.prune`); return their ids.

    Args:
        store: the store.
        updated_before: the threshold, epoch seconds.
        statuses: which finished instances (``idle``, ``failed``, ``stopped``).
        limit: the most to delete (``None``: every one that qualifies).
        batch: instances per transaction.

    Raises:
        UsageError: a status that is not a finished one, or a limit below 1.
    """
    check_prune(statuses, 1 if limit is None else limit, False)
    pruned: list[str] = []
    while limit is None or len(pruned) < limit:
        size = batch if limit is None else min(batch, limit - len(pruned))
        ids = store.prune(updated_before, statuses, limit=size)
        pruned += ids
        if len(ids) < size:
            break
    return pruned


class Snapshots:
    """Snapshots every ``every`` events, and compaction (see the module docstring).

    Args:
        store: the runner's store.
        every: events between two snapshots of an instance.
        compact: delete the log rows each snapshot covers.
    """

    def __init__(self, store: Store, every: int, compact: bool) -> None:
        self.store = store
        self.every = every
        self.compact = compact

    @classmethod
    def make(cls, store: Store, every: int | None, compact: bool) -> Snapshots | None:
        """The runner's snapshot policy, or ``None`` without ``snapshot_every``.

        Raises:
            UsageError: ``every`` is not a whole number of events, 1 or more; or ``compact``
                without ``every`` (compaction removes what a snapshot covers).
        """
        if every is None:
            if compact:
                raise UsageError(
                    "compact=True needs snapshot_every=N: compaction deletes the events a "
                    "snapshot covers (e.g. Runner(snapshot_every=1000, compact=True))"
                )
            return None
        if type(every) is not int or every < 1:
            raise UsageError(f"snapshot_every must be a whole number of events, not {every!r}")
        return cls(store, every, compact)

    def checkpointed(self, worker: Worker, appended: int) -> None:
        """After ``worker``'s checkpoint of ``appended`` events (under its lock): snapshot the
        instance when those events crossed a multiple of :attr:`every`."""
        cursor, every = worker.cursor, self.every
        if appended and cursor // every != (cursor - appended) // every:
            self.snapshot(worker)

    def snapshot(self, worker: Worker) -> int:
        """Snapshot the instance at its cursor and, with :attr:`compact`, compact its log;
        return the events removed. A failure is logged, never raised (the log stays whole)."""
        wid, token = worker.id, worker.token
        try:
            cursor = save_snapshot(self.store, wid, worker.wf, token=token, cursor=worker.cursor)
            removed = self.store.compact(wid, token=token) if self.compact else 0
        except LeaseLostError as exc:
            log.info("%s: no snapshot, another runner owns the instance now: %s", wid, exc)
            return 0
        except RuneflowError as exc:
            log.warning("%s: snapshot failed, the log is kept whole: %s", wid, exc)
            return 0
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: snapshot at cursor %d, %d event(s) compacted", wid, cursor, removed)
        return removed


class Retention:
    """The background retention of a serving runner (``Runner(retention=...)``).

    Args:
        store: the runner's store.
        older_than: finished instances last updated this long ago are pruned.
    """

    def __init__(self, store: Store, older_than: float) -> None:
        self.store = store
        self.older_than = older_than
        self.interval = min(RETENTION_INTERVAL, max(older_than / 2, 0.05))
        self._next = 0.0

    @classmethod
    def make(cls, store: Store, retention: timedelta | float | None) -> Retention | None:
        """The runner's retention, or ``None`` without one.

        Raises:
            UsageError: ``retention`` is not a timedelta nor a number of seconds, or negative.
        """
        if retention is None:
            return None
        return cls(store, as_seconds(retention, "retention"))

    def tick(self) -> int:
        """Prune one batch when due (called by each poll); return how many were deleted. A
        full batch keeps it due, so the next poll goes on at once."""
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + self.interval
        try:
            ids = self.store.prune(time.time() - self.older_than, limit=PRUNE_BATCH)
        except RuneflowError as exc:  # the store is down: the next poll after the interval
            log.warning("retention: pruning failed (retrying in %gs): %s", self.interval, exc)
            return 0
        if len(ids) == PRUNE_BATCH:
            self._next = now
        if ids:
            log.info("retention: pruned %d finished instance(s)", len(ids))
        return len(ids)


class Retaining:
    """``prune`` and ``aprune``, mixed into :class:`~runeflow.runner.runner.Runner`."""

    if TYPE_CHECKING:
        store: Store
        _workers: dict[str, Worker]

        def _detach(self, worker: Worker, why: str) -> None: ...

    def prune(
        self,
        older_than: timedelta | float,
        statuses: Collection[str] = PRUNABLE,
        limit: int | None = None,
    ) -> int:
        """Delete finished instances last updated more than ``older_than`` ago; return how
        many.

        Deleted with each: its log, snapshot and metadata, and the fact values only it
        referred to. Instances that are running or waiting, held by a live runner, or have
        a pending timer or command are never deleted; finished instances this runner holds
        are let go first. Works in batches of :data:`PRUNE_BATCH`, one short transaction
        each.

        Args:
            older_than: a ``datetime.timedelta`` or seconds (0: every finished instance).
            statuses: among ``"idle"``, ``"failed"``, ``"stopped"``.
            limit: the most to delete (default: all that qualify).

        Raises:
            UsageError: a bad ``older_than``, a status that is not a finished one, or a
                limit below 1.
        """
        before = time.time() - as_seconds(older_than)
        wanted = check_prune(statuses, 1 if limit is None else limit, False)
        self._let_go_finished(before, set(wanted))
        return len(prune_store(self.store, before, wanted, limit=limit))

    async def aprune(
        self,
        older_than: timedelta | float,
        statuses: Collection[str] = PRUNABLE,
        limit: int | None = None,
    ) -> int:
        """Async twin of :meth:`prune`."""
        return await asyncio.to_thread(self.prune, older_than, statuses, limit)

    def _let_go_finished(self, before: float, statuses: set[str]) -> None:
        """Unload the instances held here that are finished (in ``statuses``) and were last
        updated before ``before``, giving their leases back, so that they can be pruned."""
        for worker in list(self._workers.values()):
            if worker.status.value not in statuses:
                continue
            with worker.lock:
                if worker.status.value not in statuses or worker.running or worker.retrying:
                    continue
                with contextlib.suppress(RuneflowError):
                    worker.checkpoint()
                    if self.store.get(worker.id).updated_at < before:
                        self._detach(worker, "released")
