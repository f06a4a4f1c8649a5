"""The services a runner gives its workers: policies, executors, slots and fenced appends.

Mixed into :class:`~runeflow.runner.runner.Runner`; a worker sees them only through
:class:`~runeflow.runner.worker.WorkerHost`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runeflow.model.components import Component
from runeflow.model.events import Event
from runeflow.model.workflow import Workflow
from runeflow.runner.executors import Executor, InlineExecutor, make_executor
from runeflow.runner.policies import DEFAULT_POLICY, Policies, Policy, resolve_policy
from runeflow.runner.telemetry import Telemetry, TelemetryEvent
from runeflow.runner.worker import Worker
from runeflow.stores.base import Store, Timer

__all__ = ["Hosting"]

_MISSING: Any = object()


class Hosting:
    """Policies, executors, execution slots and appends for workers."""

    if TYPE_CHECKING:
        store: Store
        policies: Policies
        telemetry: Telemetry
        _trivial_policies: bool
        _policy_cache: dict[tuple[Component, Policies | None], Policy | None]
        _executor: Executor
        _executors: dict[str, Executor]
        _executor_lock: threading.Lock
        _max_workers: int | None
        _max_concurrency: int | None
        _slots: int
        _slot_lock: threading.Lock
        _starved: deque[Worker]

    @property
    def inline(self) -> bool:
        """True when the runner's executor is the inline one."""
        return isinstance(self._executor, InlineExecutor)

    def plain(self, wf: Workflow) -> bool:
        """True when no policy applies to ``wf`` and the runner limits no concurrency."""
        if self._max_concurrency is not None or not self._trivial_policies:
            return False
        graph = wf._g
        return bool(graph.policy_free or graph.is_policy_free())

    def policy_for(self, wf: Workflow, component: str) -> Policy | None:
        """The policy of a component, or ``None`` when no policy does anything."""
        graph = wf._g
        if self._trivial_policies and (graph.policy_free or graph.is_policy_free()):
            return None
        comp = graph.components[component]
        key = (comp, graph.policies)
        hit = self._policy_cache.get(key, _MISSING)
        if hit is _MISSING:
            hit = resolve_policy(self.policies, graph.policies, comp)
            if hit == DEFAULT_POLICY:
                hit = None
            self._policy_cache[key] = hit
        return hit  # type: ignore[no-any-return]

    def executor_for(self, policy: Policy | None) -> Executor:
        """The executor a runnable goes to."""
        if policy is None or policy.executor is None:
            return self._executor
        spec = policy.executor
        if isinstance(spec, str):
            name = spec
        elif spec is self._executor:
            name = spec.name
        else:  # its own entry: two executors of one kind (two Dask clusters) stay apart
            name = f"{spec.name}@{id(spec):x}"
        with self._executor_lock:
            executor = self._executors.get(name)
            if executor is None:
                executor = make_executor(spec, self._max_workers)
                self._executors[name] = executor
        return executor

    def take_slot(self, worker: Worker) -> bool:
        """Reserve a runner-wide execution slot (always granted without a limit)."""
        if self._max_concurrency is None:
            return True
        with self._slot_lock:
            if self._slots < self._max_concurrency:
                self._slots += 1
                return True
            if worker not in self._starved:
                self._starved.append(worker)
            return False

    def release_slot(self) -> None:
        """Give back a slot taken with :meth:`take_slot`."""
        if self._max_concurrency is None:
            return
        with self._slot_lock:
            self._slots -= 1

    def pump_starved(self) -> None:
        """Let instances that waited for a slot dispatch (called outside worker locks)."""
        if self._max_concurrency is None:
            return
        while True:
            with self._slot_lock:
                if not self._starved or self._slots >= self._max_concurrency:
                    return
                worker = self._starved.popleft()
            worker.kick()

    def append(
        self,
        workflow_id: str,
        events: Sequence[Event],
        status: str,
        token: int | None = None,
        timers: Sequence[Timer] = (),
        done_timers: Sequence[str] = (),
    ) -> int:
        """Checkpoint through the store (fenced by ``token``), with telemetry."""
        if not self.telemetry.active:
            return self._append(workflow_id, events, status, token, timers, done_timers)
        start = time.perf_counter()
        try:
            cursor = self._append(workflow_id, events, status, token, timers, done_timers)
        except Exception as exc:
            self._emit(
                "store", "exception", "append", workflow_id, time.perf_counter() - start, str(exc)
            )
            raise
        self._emit(
            "store",
            "stop",
            "append",
            workflow_id,
            time.perf_counter() - start,
            attributes={"events": len(events), "cursor": cursor},
        )
        return cursor

    def _append(
        self,
        workflow_id: str,
        events: Sequence[Event],
        status: str,
        token: int | None,
        timers: Sequence[Timer],
        done_timers: Sequence[str],
    ) -> int:
        if timers or done_timers:
            return self.store.append(
                workflow_id,
                events,
                status=status,
                token=token,
                timers=timers,
                done_timers=done_timers,
            )
        # without timer changes, the arguments every store has always taken
        return self.store.append(workflow_id, events, status=status, token=token)

    def _emit(
        self,
        subject: str,
        phase: str,
        name: str,
        workflow_id: str | None,
        duration: float | None = None,
        error: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        if self.telemetry.active:
            self.telemetry.emit(
                TelemetryEvent(
                    subject=subject,  # type: ignore[arg-type]
                    phase=phase,  # type: ignore[arg-type]
                    name=name,
                    workflow_id=workflow_id,
                    duration=duration,
                    error=error,
                    attributes=attributes or {},
                )
            )
