"""What a serving runner does besides running instances: claims, commands, faults.

A runner serves when it polls (``poll_interval=``, :meth:`serve`, ``runeflow worker``). At
each poll it releases instances that have nothing left to do, claims instances that have
work and no live owner (failover, new submissions), and applies the commands (input, events,
stop) and timers due for the instances it owns. Its lease keeper renews every lease at once
and stops, at once, an instance another runner took over. A worker whose store failed is
restarted from the store, waiting out the outage with capped, jittered backoff.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from runeflow.errors import (
    InstanceStateError,
    LeaseLostError,
    RuneflowError,
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
)
from runeflow.runner.inbox import Command, read_command
from runeflow.runner.ownership import OwnedElsewhereError, Ownership
from runeflow.runner.retention import Retention
from runeflow.runner.timers import Clock
from runeflow.runner.worker import Status, Worker
from runeflow.stores.base import Store

if TYPE_CHECKING:
    from runeflow.recovery import Rehydration

__all__ = ["Serving"]

log = logging.getLogger("runeflow.runner")

_RESTART_LIMIT = 3
_RESTART_WINDOW = 60.0
_MAX_BACKOFF = 5.0
_CLAIM_BATCH = 32


class Serving:
    """Serving and fault handling, mixed into :class:`~runeflow.runner.runner.Runner`."""

    if TYPE_CHECKING:
        store: Store
        clock: Clock
        ownership: Ownership
        owner: str
        lease_ttl: float
        _workers: dict[str, Worker]
        _registry_lock: threading.RLock
        _unrecoverable: dict[str, str]
        _closed: bool
        _poll_interval: float | None
        _poller: threading.Thread | None
        _stop_polling: threading.Event
        _wakeup: threading.Event
        _max_instances: int
        _retention: Retention | None

        def _load(
            self,
            workflow_id: str,
            *,
            rehydration: Rehydration = "full",
            migrate: bool = False,
            token: int | None = None,
        ) -> Worker: ...

        def _check_accepts(self, worker: Worker, what: str) -> None: ...

        def _report_unloadable(self, workflow_id: str, exc: Exception) -> None: ...

        def _emit(
            self,
            subject: str,
            phase: str,
            name: str,
            workflow_id: str | None,
            duration: float | None = None,
            error: str | None = None,
            attributes: dict[str, Any] | None = None,
        ) -> None: ...

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set: claim instances with work and no live owner (failover),
        apply commands recorded by other processes, fire due timers, release instances that
        settled, renew leases. Call :meth:`shutdown` afterwards."""
        if self._poller is None:
            self._start_poller(self._poll_interval or 0.2)
        (stop or threading.Event()).wait()

    def _start_poller(self, interval: float) -> None:
        self._poll_interval = interval
        self._poller = threading.Thread(
            target=self._poll_loop, args=(interval,), name="runeflow-poller", daemon=True
        )
        self._poller.start()

    def _poll_loop(self, interval: float) -> None:
        failing = False
        while not self._stop_polling.is_set():
            try:
                busy = self.poll_store() > 0
            except Exception as exc:
                if not failing:
                    log.warning("polling the store failed (retrying every %gs): %s", interval, exc)
                failing, busy = True, False
            else:
                if failing:
                    log.warning("polling the store works again")
                failing = False
            if not busy:
                self._wakeup.wait(interval)
            self._wakeup.clear()

    def _keep_leases(self) -> None:
        """Renew this runner's leases every third of their time to live (real time).

        A lease that expired with nobody taking the instance is taken back under a new
        token; an instance that another runner took is stopped here at once.
        """
        failing = False
        while not self._stop_polling.wait(self.lease_ttl / 3):
            try:
                renewed = self.ownership.renew()
            except Exception as exc:
                if not failing:
                    log.warning("renewing leases failed (retrying): %s", exc)
                failing = True
                continue
            failing = False
            for wid, worker in list(self._workers.items()):
                if worker.status is Status.STOPPED or worker.detached:
                    continue
                token = worker.token
                if token is None or renewed.get(wid) == token:
                    continue
                try:
                    taken = None if wid in renewed else self.ownership.take_back(wid, token)
                except RuneflowError:
                    continue
                if taken is None:
                    self.lost(worker, LeaseLostError(wid, token, "; its lease was taken over"))
                else:
                    worker.token = taken
                    log.info("lease on %r had expired; taken back (token %d)", wid, taken)

    def poll_store(self) -> int:
        """Serve once: release settled instances (serving runners), claim instances with work
        and no live owner, apply due commands and timers, prune finished instances when
        ``retention`` is set. Return how much was done."""
        if self._poll_interval is not None:
            self._release_settled()
        handled = self._claim()
        now = self.clock.now()
        for timer in self.store.due_timers(now, limit=500, owner=self.owner):
            worker = self._workers.get(timer.workflow_id)
            if worker is None:
                continue
            try:
                command = read_command(timer, self.store.codec)
            except RuneflowError as exc:
                log.warning("dropping an unreadable command for %r: %s", timer.workflow_id, exc)
                self.store.cancel_timer(timer.timer_id)
                continue
            if command is not None:
                self._apply_command(worker, command)
            else:
                with worker.lock:
                    if timer.timer_id in worker.wf._timers:
                        worker.arm(worker.wf._timers[timer.timer_id])
                    else:
                        self.store.cancel_timer(timer.timer_id)  # its outcome is in the log
            handled += 1
        if self._retention is not None and self._poll_interval is not None:
            handled += self._retention.tick()
        return handled

    def _claim(self) -> int:
        free = self._max_instances - len(self._workers)
        if free <= 0 or self._closed:
            return 0
        exclude = set(self._workers) | set(self._unrecoverable)
        claimed = self.ownership.claim(min(free, _CLAIM_BATCH), self.clock.now(), exclude)
        for workflow_id, token in claimed:
            try:
                self._load(workflow_id, token=token)
            except OwnedElsewhereError:
                continue
            except RuneflowError as exc:
                self._report_unloadable(workflow_id, exc)
        return len(claimed)

    def _apply_command(self, worker: Worker, command: Command) -> None:
        """Apply a command to an instance loaded here, then remove it from the store."""
        with worker.lock:
            try:
                if command.kind == "input":
                    self._check_accepts(worker, "input")

                    def feed() -> None:
                        worker.status = Status.RUNNING
                        worker.wf.plan_eagerly(command.value, key=command.id)

                    worker.accept(feed)
                elif command.kind == "event":
                    worker.deliver(command.event or "", command.value, command.step)
                else:
                    worker.stop()
                    worker.checkpoint()
            except LeaseLostError:
                return  # not ours any more: the new owner applies it
            except (StoreError, OwnedElsewhereError) as exc:
                log.info("command %s for %r not applied yet: %s", command.id, worker.id, exc)
                return  # left in the store: applied on a later poll
            except InstanceStateError as exc:
                log.warning("command %s for %r dropped: %s", command.id, worker.id, exc)
        self.store.cancel_timer(command.id)
        if command.kind == "stop":
            self._detach(worker, "stopped")

    def _release_settled(self) -> None:
        """Unload instances with nothing left to do, giving their leases back."""
        for worker in list(self._workers.values()):
            status = worker.status
            if status is Status.RUNNING or (status is Status.WAITING and worker.wf._timers):
                continue
            with worker.lock:
                if worker.status is Status.RUNNING or worker.running or worker.retrying:
                    continue
                try:
                    worker.checkpoint()
                except RuneflowError:
                    continue
                self._detach(worker, "released")

    def _detach(self, worker: Worker, why: str) -> None:
        """Unload a settled worker and give its lease back."""
        with self._registry_lock:
            if self._workers.get(worker.id) is worker:
                del self._workers[worker.id]
        worker.detach(why)
        with contextlib.suppress(RuneflowError):
            self.ownership.release(worker.id)

    def lost(self, worker: Worker, exc: LeaseLostError) -> None:
        """Another runner owns the instance now: stop it here at once, write nothing more.

        Results still executing are dropped (the new owner runs those steps again).
        """
        with worker.lock:
            if worker.detached:
                return
            worker.stop()
            worker.error = str(exc)
            worker.detach("lost")
        with self._registry_lock:
            if self._workers.get(worker.id) is worker:
                del self._workers[worker.id]
        log.warning("instance %r stopped here: %s", worker.id, exc)
        self._emit("workflow", "exception", worker.wf.name, worker.id, error=f"lease lost: {exc}")

    def reload(self, worker: Worker) -> Worker:
        """Replace ``worker`` by the instance as the store has it (after a failed accept).

        Raises:
            StoreError: the store cannot be read now; a background restart keeps trying.
        """
        with worker.lock:
            worker.stop()
            worker.detach("reloaded")
        with self._registry_lock:
            if self._workers.get(worker.id) is worker:
                del self._workers[worker.id]
        try:
            return self._load(worker.id)
        except StoreError:
            self._spawn_restart(worker.id, worker.restarts)
            raise

    def worker_crashed(self, worker: Worker, exc: Exception) -> None:
        """Restart a worker from its last checkpoint, within a restart-intensity limit.

        Store errors do not count toward the limit: a worker never gives an instance up
        because the store was down; it retries with capped, jittered backoff.
        """
        if self._closed:
            log.debug("instance %r stopped by shutdown: %r", worker.id, exc)
            return
        if worker.detached:
            return
        now = time.monotonic()
        recent = [t for t in worker.restarts if now - t < _RESTART_WINDOW]
        if not isinstance(exc, StoreError):
            recent.append(now)
            log.error("instance %r hit an internal error: %r", worker.id, exc, exc_info=exc)
        else:
            log.warning("instance %r: the store failed (%s); restarting from it", worker.id, exc)
        worker.restarts = recent
        if len(recent) > _RESTART_LIMIT:
            worker.stop()
            worker.status = Status.FAILED
            worker.error = (
                f"internal error, {len(recent)} restarts within {_RESTART_WINDOW:g}s: {exc!r}"
            )
            try:
                worker.checkpoint()
            except RuneflowError:
                log.exception("could not record the failure of %r", worker.id)
            worker.notify_settled()
            return
        with self._registry_lock:
            if self._workers.get(worker.id) is worker:
                del self._workers[worker.id]
        worker.stop()
        worker.detach("restarting")
        self._spawn_restart(worker.id, recent)

    def _spawn_restart(self, workflow_id: str, restarts: list[float] | tuple[()]) -> None:
        threading.Thread(
            target=self._restart,
            args=(workflow_id, restarts),
            daemon=True,
            name=f"runeflow-restart-{workflow_id}",
        ).start()

    def _restart(self, workflow_id: str, restarts: list[float] | tuple[()]) -> None:
        """Load the instance again, waiting out a store outage (capped, jittered backoff)."""
        attempt = 0
        while not self._closed:
            try:
                worker = self._load(workflow_id)
            except (StoreUnavailableError, LeaseLostError) as exc:
                delay = min(_MAX_BACKOFF, 0.05 * 2**attempt) * (0.5 + random.random() / 2)
                log.info("reloading %r failed (%s); again in %.2fs", workflow_id, exc, delay)
                attempt += 1
                self._stop_polling.wait(delay)
            except (OwnedElsewhereError, WorkflowNotFoundError) as exc:
                log.info("instance %r not restarted here: %s", workflow_id, exc)
                return
            except RuneflowError as exc:
                self._report_unloadable(workflow_id, exc)
                return
            else:
                worker.restarts = restarts
                return
