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
import types
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runeflow.errors import CodecError, LeaseLostError, StoreError
from runeflow.model import events as ev
from runeflow.model.runnable import Runnable
from runeflow.model.workflow import Workflow
from runeflow.runner.info import (
    Checkpoint,
    Hooks,
    InstanceInfo,
    Status,
    every_n,
    failure_info,
    timer_info,
)
from runeflow.runner.telemetry import Telemetry, TelemetryEvent
from runeflow.runner.timers import Clock, Scheduler
from runeflow.runner.waiting import Waiting
from runeflow.stores.base import Store, Timer

if TYPE_CHECKING:
    import random

    from runeflow.runner.executors import Executor
    from runeflow.runner.policies import Policy
    from runeflow.runner.retention import Snapshots

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

_STORABLE_AS_IS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


class WorkerHost(Protocol):
    """What a worker needs from the runner that hosts it (and nothing more)."""

    store: Store
    clock: Clock
    scheduler: Scheduler
    telemetry: Telemetry
    rng: random.Random
    checkpoint_strategy: Checkpoint
    snapshots: Snapshots | None

    @property
    def closed(self) -> bool:
        """True once the host is shutting down."""
        ...

    @property
    def inline(self) -> bool:
        """True when the runner's executor is the inline one."""
        ...

    def plain(self, wf: Workflow) -> bool:
        """True when no policy applies to ``wf`` and the runner limits no concurrency."""
        ...

    def policy_for(self, wf: Workflow, component: str) -> Policy | None:
        """The policy of a component, or ``None`` when no policy does anything."""
        ...

    def executor_for(self, policy: Policy | None) -> Executor:
        """The executor a runnable goes to."""
        ...

    def take_slot(self, worker: Worker) -> bool:
        """Reserve an execution slot; ``False`` queues the worker until one frees."""
        ...

    def release_slot(self) -> None:
        """Give back a slot."""
        ...

    def pump_starved(self) -> None:
        """Let workers that waited for a slot dispatch."""
        ...

    def append(
        self,
        workflow_id: str,
        events: Sequence[ev.Event],
        status: str,
        token: int | None,
        timers: Sequence[Timer],
        done_timers: Sequence[str],
    ) -> int:
        """Checkpoint through the store (fenced by ``token``), with timer changes."""
        ...

    def worker_crashed(self, worker: Worker, exc: Exception) -> None:
        """An internal error: restart the worker from its last checkpoint."""
        ...

    def lost(self, worker: Worker, exc: LeaseLostError) -> None:
        """Another runner owns the instance now: stop the worker, write nothing more."""
        ...

    def reload(self, worker: Worker) -> Worker:
        """Replace the worker by one loaded from the store (after a refused accept)."""
        ...

    def settled(self, worker: Worker) -> None:
        """The instance settled (not ``running``)."""
        ...

    def fired(self, worker: object, timer: Any, now: float) -> None:
        """Bookkeeping when a timer fires."""
        ...


@dataclass(slots=True)
class _Running:
    runnable: Runnable
    executor: Executor
    started: float
    timer: int | None = None


class Worker(Waiting):
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

    def _guarded_drive(self) -> None:
        try:
            self._drive()
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

    def _drive(self) -> None:
        self.driving = True
        completions, arrivals = self.completions, self.arrivals
        if self.busy_since is None:
            self.busy_since = time.perf_counter()
        try:
            while True:
                if arrivals:
                    self._take_arrivals()
                applied = 0
                while completions:
                    self._complete(completions.popleft())
                    applied += 1
                if self.status is Status.STOPPED:
                    return
                fresh = self._prepare() if not self.halted else None
                if self.wf._waits:
                    self._arm_waits()
                self._settle()
                if applied or fresh:
                    self.advance_count += 1
                    self.cycles_since_checkpoint += 1
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
        if runnable.status == "completed" and type(runnable.result) not in _STORABLE_AS_IS:
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

    def _check_storable(self, runnable: Runnable) -> None:
        """A result the store cannot encode is a failure of the step that returned it."""
        result = runnable.result
        if type(result) is types.GeneratorType:
            try:
                result = runnable.result = list(result)
            except Exception as exc:
                runnable.fail(exc)
                return
        try:
            self.runner.store.check_value(result)
        except CodecError as exc:
            failure = CodecError(
                f"component {runnable.component!r} returned a value the store cannot keep "
                f"({_type_name(result)}): {exc}",
                type_name=exc.type_name or _type_name(result),
            )
            failure.__cause__ = exc
            runnable.fail(failure)

    def _retry(self, runnable: Runnable, policy: Policy) -> None:
        self.wf.record_failed_attempt(runnable)
        delay = policy.delay(runnable.attempt, self.runner.rng)
        log.info(
            "%s: %s failed (attempt %d of %d), retrying in %.3gs: %s",
            self.id,
            runnable.component,
            runnable.attempt,
            policy.max_retries + 1,
            delay,
            runnable.error,
        )
        nxt = runnable.retry()
        if delay <= 0:
            self.ready.append(nxt)
            return
        self.retrying += 1
        self.runner.scheduler.call_later(delay, lambda: self._retry_due(nxt))

    def _retry_due(self, runnable: Runnable) -> None:
        with self.lock:
            self.retrying -= 1
            if self.status is Status.STOPPED or self.runner.closed:
                return
            self.ready.append(runnable)
            if not self.driving:
                self._guarded_drive()

    def _fallback(self, runnable: Runnable, policy: Policy) -> None:
        assert policy.fallback is not None and runnable.error is not None
        try:
            value = policy.fallback(runnable, runnable.error)
        except Exception as exc:
            runnable.fail(exc)
        else:
            runnable.result = value
            runnable.status = "completed"
            runnable.error = None
            if type(value) not in _STORABLE_AS_IS:
                self._check_storable(runnable)

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

    def _timed_out(self, runnable_id: str, attempt: int, seconds: float) -> None:
        with self.lock:
            entry = self.running.get(runnable_id)
            if entry is None or entry.runnable.attempt != attempt or self.runner.closed:
                return
            del self.running[runnable_id]
            entry.executor.cancel(runnable_id)
            self.runner.release_slot()
            original = entry.runnable
            failed = original.retry()  # a separate object: the abandoned one may still run
            failed.attempt = attempt
            how = "cancelled" if original.is_async else "abandoned"
            failed.fail(
                TimeoutError(
                    f"component {original.component!r} did not finish within {seconds:g}s "
                    f"(attempt {attempt}); it was {how}"
                )
            )
            failed.duration = seconds
            self._trace_runnable(failed, entry.started)
            self.completions.append(failed)
            if not self.driving:
                self._guarded_drive()
        self.runner.pump_starved()

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
        if self.detached is not None:
            return None  # the runner let go of it: whoever owns the instance now writes
        events = self.wf.uncommitted_batch()
        status: str = self.status._value_  # a plain attribute: cheaper than .value
        timers, removals = self.new_timers, self.removals
        if not events and status == self.stored_status and not removals and not timers:
            return None
        token = self.token
        runner = self.runner
        try:
            cursor = runner.append(self.id, events, status, token, timers, removals)
        except LeaseLostError:
            if self.token == token:
                raise
            # the lease was taken back under a new token meanwhile: nothing was written
            cursor = runner.append(self.id, events, status, self.token, timers, removals)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: checkpoint, %d event(s), %s, cursor %d", self.id, len(events), status, cursor
            )
        self.cursor = cursor
        self.stored_status = status
        self.cycles_since_checkpoint = 0
        if timers:
            self.new_timers = ()
        if removals:
            self.removals = ()
        snapshots = runner.snapshots
        if snapshots is not None:  # Runner(snapshot_every=N): see runner/retention.py
            snapshots.checkpointed(self, len(events))
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


def _type_name(value: Any) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
