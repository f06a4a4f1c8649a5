"""One instance's worker: apply → plan → prepare → checkpoint → dispatch, as results arrive.

A worker is not a thread. Whichever thread brings news (the caller feeding input, an
executor reporting a result, the scheduler firing a retry) takes the worker's lock and runs
cycles until nothing is left to apply. Results are applied one by one as they arrive, so a
fast step's successors start while slow siblings still run; with the inline executor the
same loop runs the whole workflow on the caller's thread without recursion.

Each cycle checkpoints before it dispatches: a step's successors never start before the
step's result is in the store (with the default ``every_cycle`` strategy).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runeflow.errors import CodecError, LeaseLostError, StoreError
from runeflow.model.runnable import Runnable
from runeflow.model.workflow import Workflow
from runeflow.runner.attempts import STORABLE_AS_IS, Attempts
from runeflow.runner.host import WorkerHost
from runeflow.runner.info import (
    Checkpoint,
    Hooks,
    InstanceInfo,
    Status,
    every_n,
    failure_info,
    timer_info,
)
from runeflow.runner.telemetry import TelemetryEvent
from runeflow.runner.waiting import Waiting
from runeflow.stores.base import Append, Timer

if TYPE_CHECKING:
    from runeflow.runner.executors import Executor

__all__ = [
    "Checkpoint",
    "Hooks",
    "InstanceInfo",
    "Status",
    "Worker",
    "WorkerHost",
    "every_n",
    "failure_info",
]

log = logging.getLogger("runeflow.runner")


@dataclass(slots=True)
class _Running:
    runnable: Runnable
    executor: Executor
    started: float
    timer: int | None = None


class Worker(Attempts, Waiting):
    """Drives one workflow instance (see the module docstring)."""

    __slots__ = (
        "_settled",
        "advance_count",
        "armed_waits",
        "arrivals",
        "busy_since",
        "completions",
        "cursor",
        "cycles_since_checkpoint",
        "detached",
        "driving",
        "error",
        "gate",
        "halted",
        "hooks",
        "id",
        "inline",
        "lock",
        "max_concurrency",
        "new_timers",
        "plain",
        "ready",
        "removals",
        "restarts",
        "retrying",
        "runner",
        "running",
        "status",
        "stored_error",
        "stored_status",
        "timer_handles",
        "token",
        "waiting_since",
        "wf",
    )

    def __init__(
        self,
        runner: WorkerHost,
        workflow_id: str,
        wf: Workflow,
        *,
        hooks: Hooks | None = None,
        max_concurrency: int | None = None,
        token: int | None = None,
        cursor: int = 0,
    ) -> None:
        self.runner = runner
        self.id = workflow_id
        self.token = token
        """The fencing token every append of this worker states (see ``ownership``)."""
        self.cursor = cursor
        """The store cursor after this worker's last append (or at load)."""
        self.wf = wf
        self.hooks = hooks
        self.max_concurrency = max_concurrency
        self.lock = threading.RLock()
        self._settled: threading.Condition | None = None
        self.status = Status.RUNNING
        self.stored_status: str | None = None
        self.running: dict[str, _Running] = {}
        self.ready: deque[Runnable] = deque()
        self.completions: deque[Runnable] = deque()
        """Executed runnables ready to apply."""
        self.arrivals: deque[Runnable] = deque()
        """Runnables executors handed back, not yet checked (see :meth:`on_done`)."""
        self.gate = threading.Lock()
        """Held by the thread driving what executors hand back (see :meth:`on_done`)."""
        self.retrying = 0
        self.driving = False
        self.halted = False
        self.error: str | None = None
        self.stored_error: str | None = None
        """The error last written to the store's instance row (for ``runeflow list``)."""
        self.advance_count = 0
        self.cycles_since_checkpoint = 0
        self.waiting_since: float | None = None
        self.busy_since: float | None = None
        """``perf_counter()`` when the instance began its current run of work (telemetry)."""
        # Rarely used containers start as empty tuples (a list or set is one more object
        # for the garbage collector to visit, for every instance a runner holds).
        self.restarts: list[float] | tuple[()] = ()
        self.timer_handles: dict[str, int] = {}
        self.armed_waits: set[str] | tuple[()] = ()
        self.new_timers: list[Timer] | tuple[()] = ()
        """Timers scheduled since the last checkpoint (stored by it, with their events)."""
        self.removals: list[str] | tuple[()] = ()
        """Timers whose outcome is logged since the last checkpoint (removed by it)."""
        self.detached: str | None = None
        """Why the runner let go of this worker (``released``, ``lost``, ...), or ``None``."""
        self.plain = hooks is None and max_concurrency is None and runner.plain(wf)
        """No hooks, policies or concurrency limits: runnables take the short path."""
        self.inline = self.plain and runner.inline
        """Runnables execute right here, in the cycle that dispatches them."""

    @property
    def settled(self) -> threading.Condition:
        """The condition notified when the instance settles; hold :attr:`lock` to use it.

        Made on first use: most instances are never waited on one by one, and a condition
        is several objects that the garbage collector would otherwise keep visiting.
        """
        if self._settled is None:
            self._settled = threading.Condition(self.lock)
        return self._settled

    def notify_settled(self) -> None:
        """Wake whoever waits for the instance to settle (hold :attr:`lock`)."""
        if self._settled is not None:
            self._settled.notify_all()

    # --- entry points (any thread) ------------------------------------------------------

    def kick(self) -> None:
        """Run cycles after the workflow changed (input fed, event delivered)."""
        with self.lock:
            if not self.driving:
                self._guarded_drive()

    def on_done(self, runnable: Runnable) -> None:
        """Executor callback (any thread): hand the executed runnable in and drive.

        It never waits for another thread that is driving this instance: the result goes
        into :attr:`arrivals`, and whichever thread holds :attr:`gate` drives whatever
        arrived (it looks again after letting go, so nothing is left behind).
        """
        if self.runner.closed:
            return  # the runner shut down: the store may be closed; recovery redoes it
        arrivals = self.arrivals
        arrivals.append(runnable)
        gate = self.gate
        while arrivals:
            if not gate.acquire(blocking=False):
                break  # the thread holding the gate drives what arrived
            try:
                with self.lock:
                    if self.driving:  # this very thread drives (an inline executor)
                        break
                    self._guarded_drive()
            finally:
                gate.release()
        if not self.plain:
            self.runner.pump_starved()

    def _take_arrivals(self) -> None:
        """Move executed runnables into :attr:`completions`, dropping any that were
        abandoned (timed out, or the instance stopped). Hold :attr:`lock`."""
        arrivals, running, completions = self.arrivals, self.running, self.completions
        runner = self.runner
        while arrivals:
            runnable = arrivals.popleft()
            entry = running.pop(runnable.id, None)
            if entry is None or entry.runnable.attempt != runnable.attempt:
                if entry is not None:  # another attempt of it runs: keep waiting for that
                    running[runnable.id] = entry
                continue
            completions.append(runnable)
            if not self.plain:
                if entry.timer is not None:
                    runner.scheduler.cancel(entry.timer)
                runner.release_slot()
            if entry.started:
                self._trace_runnable(runnable, entry.started)

    # --- the cycle ----------------------------------------------------------------------

    def _guarded_drive(self, resume: bool = False) -> None:
        try:
            self._drive(resume)
        except LeaseLostError as exc:
            self.driving = False
            self.runner.lost(self, exc)
        except Exception as exc:  # an internal error: restart from the last checkpoint
            self.driving = False
            self.runner.worker_crashed(self, exc)

    def accept(self, change: Callable[[], object]) -> Worker:
        """Apply ``change`` (input fed, event delivered) and make it durable before returning.

        The change is run, then cycles are driven and, unless checkpoints are ``manual``,
        whatever they left unwritten is checkpointed. Hold :attr:`lock`.

        Returns:
            This worker, or the one reloaded from the store when the store failed but the
            change turned out to be committed.

        Raises:
            StoreError: the change could not be written; the instance is reloaded from the
                store (so nothing half-done remains) when the store can be read.
            LeaseLostError: another runner owns the instance now (nothing was written).
        """
        before = self.cursor
        try:
            change()
            if not self.driving:
                self._drive()
            if self.runner.checkpoint_strategy.kind != "manual" and (
                self.wf.has_uncommitted() or self.status._value_ != self.stored_status
            ):
                self.checkpoint()
        except LeaseLostError as exc:
            self.driving = False
            self.runner.lost(self, exc)
            raise
        except (StoreError, CodecError):
            self.driving = False
            reloaded = self.runner.reload(self)  # raises when the store cannot be read
            if reloaded.cursor > before:  # the first append, holding the change, committed
                return reloaded
            raise
        except Exception as exc:
            self.driving = False
            self.runner.worker_crashed(self, exc)
        return self

    def _drive(self, resume: bool = False) -> None:
        """Run cycles until nothing is left to apply. With ``resume``, the current cycle was
        already planned and checkpointed (a batch of timers): start with its dispatch."""
        self.driving = True
        completions, arrivals = self.completions, self.arrivals
        if self.busy_since is None:
            self.busy_since = time.perf_counter()
        try:
            while True:
                if resume:
                    resume = False
                else:
                    if self._plan_cycle():
                        return  # stopped
                    self._maybe_checkpoint()
                if self.inline and not self.runner.telemetry.active:
                    self._execute_ready()
                else:
                    self._dispatch_ready()
                if not completions and not arrivals:
                    break
            if self.status is not Status.RUNNING:
                self._on_settled()
        finally:
            self.driving = False

    def _plan_cycle(self) -> bool:
        """Apply what executed, prepare what is ready, settle the status; ``True`` when the
        instance is stopped (nothing more to do)."""
        completions = self.completions
        if self.arrivals:
            self._take_arrivals()
        applied = 0
        while completions:
            self._complete(completions.popleft())
            applied += 1
        if self.status is Status.STOPPED:
            return True
        fresh = self._prepare() if not self.halted else None
        if self.wf._waits:
            self._arm_waits()
        self._settle()
        if applied or fresh:
            self.advance_count += 1
            self.cycles_since_checkpoint += 1
        return False

    def _execute_ready(self) -> None:
        """Execute the ready runnables here, one after the other (the inline executor's
        short path: no hand-off, nothing to track while they run)."""
        ready, completions = self.ready, self.completions
        while ready and self.status is not Status.STOPPED:
            runnable = ready.popleft()
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s: dispatch %s (attempt %d) to inline",
                    self.id,
                    runnable.component,
                    runnable.attempt,
                )
            completions.append(runnable.execute())

    def _prepare(self) -> list[Runnable]:
        wf = self.wf
        if not wf.is_runnable():
            return []
        runnables = wf.prepare_for_dispatch()
        self.ready.extend(runnables)
        return runnables

    def _complete(self, runnable: Runnable) -> None:
        if runnable.status == "completed" and type(runnable.result) not in STORABLE_AS_IS:
            self._check_storable(runnable)
        policy = None if self.plain else self.runner.policy_for(self.wf, runnable.component)
        if runnable.status == "failed" and policy is not None:
            if runnable.attempt <= policy.max_retries:
                self._retry(runnable, policy)
                return
            if policy.fallback is not None:
                self._fallback(runnable, policy)
        self.wf.apply_runnable(runnable)
        hooks = self.hooks
        if runnable.status == "failed":
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s: %s failed for good (attempt %d): %s",
                    self.id,
                    runnable.component,
                    runnable.attempt,
                    runnable.error,
                )
            if policy is not None and policy.on_failure == "halt":
                self.halted = True
                self.error = f"component {runnable.component!r} failed: {runnable.error}"
            if hooks and hooks.on_failed:
                hooks.on_failed(self.id, runnable)
        else:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: %s completed", self.id, runnable.component)
            if hooks and hooks.on_complete:
                hooks.on_complete(self.id, runnable)

    def _dispatch_ready(self) -> None:
        runner = self.runner
        ready = self.ready
        if self.plain:
            running = self.running
            executor = runner.executor_for(None)
            on_done = self.on_done
            trace = runner.telemetry.active or log.isEnabledFor(logging.DEBUG)
            while ready and self.status is not Status.STOPPED:
                runnable = ready.popleft()
                if trace:
                    self._submit(runnable)
                    continue
                running[runnable.id] = _Running(runnable, executor, 0.0)
                executor.submit(runnable, on_done)
            return
        while ready and self.status is not Status.STOPPED:
            if self.max_concurrency is not None and len(self.running) >= self.max_concurrency:
                return
            if not runner.take_slot(self):
                return
            self._submit(ready.popleft())

    def _submit(self, runnable: Runnable) -> None:
        runner = self.runner
        policy = runner.policy_for(self.wf, runnable.component)
        executor = runner.executor_for(policy)
        telemetry = runner.telemetry.active
        entry = _Running(runnable, executor, time.perf_counter() if telemetry else 0.0)
        if policy is not None and policy.timeout is not None:
            rid, attempt, seconds = runnable.id, runnable.attempt, policy.timeout
            entry.timer = runner.scheduler.call_later(
                seconds, lambda: self._timed_out(rid, attempt, seconds)
            )
        self.running[runnable.id] = entry
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: dispatch %s (attempt %d) to %s",
                self.id,
                runnable.component,
                runnable.attempt,
                executor.name,
            )
        if self.hooks and self.hooks.on_dispatch:
            self.hooks.on_dispatch(self.id, runnable)
        if telemetry:
            runner.telemetry.emit(
                TelemetryEvent(
                    subject="runnable",
                    phase="start",
                    name=runnable.component,
                    workflow_id=self.id,
                    attributes={
                        "runnable_id": runnable.id,
                        "attempt": runnable.attempt,
                        "executor": executor.name,
                    },
                )
            )
        executor.submit(runnable, self.on_done)

    # --- status and checkpoints ---------------------------------------------------------

    def _settle(self) -> None:
        if self.status is Status.STOPPED:
            return
        busy = self.running or self.ready or self.completions or self.retrying
        if busy or (self.wf.is_runnable() and not self.halted):
            status = Status.RUNNING
        elif self.halted:
            status = Status.FAILED
        elif self.wf._waits or self.wf._timers:
            status = Status.WAITING
        elif self.wf._failures:
            status = Status.FAILED
            if self.error is None:
                self.error = failure_summary(self.wf)
        else:
            status = Status.IDLE
        if status is Status.WAITING and self.status is not Status.WAITING:
            self.waiting_since = self.runner.clock.now()
        elif status is not Status.WAITING:
            self.waiting_since = None
        self.status = status

    def _maybe_checkpoint(self) -> None:
        strategy = self.runner.checkpoint_strategy
        kind = strategy.kind
        if kind == "every_cycle":
            due = True
        elif kind == "every_n":
            due = self.cycles_since_checkpoint >= strategy.n or self.status.is_settled
        elif kind == "on_complete":
            due = self.status.is_settled
        else:
            due = False
        if due:
            self.checkpoint()

    def checkpoint(self) -> int | None:
        """Append new events (and the status, and timer changes) to the store; return the
        new cursor."""
        request = self.checkpoint_request()
        if request is None:
            return None
        try:
            cursor = self.runner.append(
                self.id,
                request.events,
                request.status or "",
                request.token,
                request.timers,
                request.done_timers,
            )
        except LeaseLostError as exc:
            if self.token == request.token:
                raise
            return self.checkpointed(request, exc)  # written again under the new token
        return self.checkpointed(request, cursor)

    def checkpoint_request(self) -> Append | None:
        """What a checkpoint would write now (the workflow's new events are taken), or
        ``None`` when there is nothing to write."""
        if self.detached is not None:
            return None  # the runner let go of it: whoever owns the instance now writes
        events = self.wf.uncommitted_batch()
        status: str = self.status._value_  # a plain attribute: cheaper than .value
        timers, removals = self.new_timers, self.removals
        if (
            not events.records
            and not events.head
            and status == self.stored_status
            and not removals
            and not timers
        ):
            return None
        return Append(
            workflow_id=self.id,
            events=events,
            status=status,
            token=self.token,
            timers=timers,
            done_timers=removals,
        )

    def checkpointed(self, request: Append, result: int | Exception) -> int:
        """Take note of a written checkpoint (``result``: its cursor, or what refused it).

        Raises:
            LeaseLostError: another runner owns the instance now.
            StoreError: the store failed.
        """
        if isinstance(result, LeaseLostError) and self.token != request.token:
            request.token = self.token  # taken back under a new token meanwhile: again
            result = self.runner.append(
                self.id,
                request.events,
                request.status or "",
                request.token,
                request.timers,
                request.done_timers,
            )
        if isinstance(result, Exception):
            raise result
        cursor = result
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: checkpoint, %d event(s), %s, cursor %d",
                self.id,
                len(request.events),
                request.status,
                cursor,
            )
        self.cursor = cursor
        self.stored_status = request.status
        self.cycles_since_checkpoint = 0
        if request.timers:
            self.new_timers = ()
        if request.done_timers:
            self.removals = ()
        snapshots = self.runner.snapshots
        if snapshots is not None:  # Runner(snapshot_every=N): see runner/retention.py
            snapshots.checkpointed(self, len(request.events))
        return cursor

    def _on_settled(self) -> None:
        self.notify_settled()
        self.runner.settled(self)
        if self.hooks and self.hooks.on_idle:
            self.hooks.on_idle(self.id, self.info())
        busy_since, self.busy_since = self.busy_since, None
        if self.runner.telemetry.active:
            self.runner.telemetry.emit(
                TelemetryEvent(
                    subject="workflow",
                    phase="exception" if self.status is Status.FAILED else "stop",
                    name=self.wf.name,
                    workflow_id=self.id,
                    duration=None if busy_since is None else time.perf_counter() - busy_since,
                    error=self.error,
                    attributes={"status": self.status.value, "steps": self.wf.step_count},
                )
            )

    def _trace_runnable(self, runnable: Runnable, started: float) -> None:
        telemetry = self.runner.telemetry
        if not telemetry.active:
            return
        failed = runnable.status == "failed"
        attributes: dict[str, Any] = {"runnable_id": runnable.id, "attempt": runnable.attempt}
        if runnable.worker_address is not None:  # executed on a Dask or Ray worker
            attributes["worker_address"] = runnable.worker_address
        telemetry.emit(
            TelemetryEvent(
                subject="runnable",
                phase="exception" if failed else "stop",
                name=runnable.component,
                workflow_id=self.id,
                duration=time.perf_counter() - started,
                error=str(runnable.error) if failed else None,
                attributes=attributes,
            )
        )

    # --- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop: abandon running work, cancel retries, take no more input."""
        for rid, entry in list(self.running.items()):
            entry.executor.cancel(rid)
            if entry.timer is not None:
                self.runner.scheduler.cancel(entry.timer)
            self.runner.release_slot()
        self.running.clear()
        self.ready.clear()
        self.completions.clear()
        self.arrivals.clear()
        for handle in self.timer_handles.values():
            self.runner.scheduler.cancel(handle)
        self.timer_handles.clear()
        self.status = Status.STOPPED
        self.notify_settled()

    def detach(self, why: str) -> None:
        """The runner let go of this worker: cancel its timers here and wake waiters."""
        with self.lock:
            for handle in self.timer_handles.values():
                self.runner.scheduler.cancel(handle)
            self.timer_handles.clear()
            self.detached = why
            self.notify_settled()

    # --- reading --------------------------------------------------------------------

    def info(self) -> InstanceInfo:
        """Describe the instance now."""
        wf = self.wf
        return InstanceInfo(
            workflow_id=self.id,
            name=wf.name,
            status=self.status,
            step_count=wf.step_count,
            advance_count=self.advance_count,
            waiting_since=self.waiting_since,
            open_waits=[
                {
                    "wait_id": w.id,
                    "step": w.component,
                    "events": list(w.events),
                    "timeout": w.timeout,
                }
                for w in wf.open_waits()
            ],
            pending_timers=[timer_info(t) for t in wf.pending_timers()],
            in_flight=len(self.running) + len(self.ready) + self.retrying,
            failures=[failure_info(f) for f in wf.failures()],
            error=self.error,
        )


def failure_summary(wf: Workflow) -> str:
    failures = wf.failures()
    first = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"component {first.component!r} failed: {first.error}{more}"
