"""Firing many due timers at once, with one store transaction for all of them.

When several timers fall due together (a burst of timeouts, a clock that jumps), firing them
one by one would cost a store transaction each before their events could move on. Here the
due timers of plain instances (no hooks, policies or concurrency limits) on a pool executor
are fired in batches: each worker delivers its event and plans the cycle it starts, the
cycles' checkpoints are written by one :meth:`~runeflow.stores.base.Store.append_many`, and
only then is anything dispatched, as a checkpoint written on its own would guarantee. A timer
whose instance is busy elsewhere, or that cannot be batched, fires on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runeflow.runner.waiting import TimerFire

if TYPE_CHECKING:
    from runeflow.runner.worker import Worker
    from runeflow.stores.base import Append, Store

__all__ = ["FIRE_BATCH", "fire_many", "run_due"]

log = logging.getLogger("runeflow.runner")

FIRE_BATCH = 256
"""The most timers whose checkpoints share one transaction."""


def run_due(callbacks: Sequence[Callable[[], None]], store: Store, batching: bool) -> None:
    """Run the scheduler's due callbacks: timers of batchable workers together, the rest
    one by one (a failing callback is logged and does not stop the others)."""
    fires: list[TimerFire] = []
    for callback in callbacks:
        if batching and type(callback) is TimerFire and _batchable(callback.worker):
            fires.append(callback)
            continue
        _run(callback)
    if len(fires) == 1:
        _run(fires[0])
    elif fires:
        for start in range(0, len(fires), FIRE_BATCH):
            fire_many(fires[start : start + FIRE_BATCH], store)


def fire_many(fires: Sequence[TimerFire], store: Store) -> None:
    """Fire ``fires`` with one store transaction for the checkpoints they start."""
    held: list[tuple[Worker, Append | None]] = []
    alone: list[TimerFire] = []
    try:
        for fire in fires:
            worker = fire.worker
            if not worker.lock.acquire(blocking=False):
                alone.append(fire)  # busy elsewhere: fired on its own below
                continue
            try:
                held.append((worker, worker.fire_prepare(fire.timer_id)))
            except BaseException:
                worker.lock.release()
                raise
        requests = [request for _, request in held if request is not None]
        results: list[int | Exception] = []
        if requests:
            try:
                results = store.append_many(requests)
            except Exception as exc:  # the transaction failed: every one of them did
                results = [exc] * len(requests)
        outcomes = iter(results)
        for worker, request in held:
            result = next(outcomes) if request is not None else None
            try:
                worker.fire_finish(request, result)
            except Exception:
                log.exception("firing a timer of %r failed", worker.id)
    finally:
        for worker, _ in held:
            worker.lock.release()
    for fire in alone:
        _run(fire)


def _batchable(worker: Worker) -> bool:
    return worker.plain and not worker.inline


def _run(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("scheduled callback failed")
