"""A worker's attempts: results the store cannot keep, retries, fallbacks and timeouts.

Mixed into :class:`~runeflow.runner.worker.Worker`; call everything here with the worker's
lock held (timers and retries due take it themselves).
"""

from __future__ import annotations

import logging
import threading
import types
from collections import deque
from typing import TYPE_CHECKING, Any

from runeflow.errors import CodecError
from runeflow.model.runnable import Runnable
from runeflow.model.workflow import Workflow
from runeflow.runner.info import Status

if TYPE_CHECKING:
    from runeflow.runner.host import WorkerHost
    from runeflow.runner.policies import Policy
    from runeflow.runner.worker import _Running

__all__ = ["Attempts"]

log = logging.getLogger("runeflow.runner")

STORABLE_AS_IS: frozenset[type] = frozenset({str, int, float, bool, type(None)})
"""Result types every store keeps, so they skip the storability check."""


class Attempts:
    """Retries, fallbacks, timeouts and the storability check (see the module docstring)."""

    if not TYPE_CHECKING:  # the worker's slots hold the state; mypy reads the names below
        __slots__ = ()

    if TYPE_CHECKING:
        runner: WorkerHost
        id: str
        lock: threading.RLock
        status: Status
        driving: bool
        retrying: int
        running: dict[str, _Running]
        ready: deque[Runnable]
        completions: deque[Runnable]
        wf: Workflow

        def _guarded_drive(self, resume: bool = False) -> None: ...

        def _trace_runnable(self, runnable: Runnable, started: float) -> None: ...

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
            if type(value) not in STORABLE_AS_IS:
                self._check_storable(runnable)

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


def _type_name(value: Any) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
