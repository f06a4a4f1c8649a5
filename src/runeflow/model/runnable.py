"""Runnables: self-contained units of work handed out by ``prepare_for_dispatch``.

A runnable holds everything needed to run one activation (the function, its arguments, the
run-context values) and nothing that ties it to its workflow, so it can be executed in
another thread, process or machine. Executing it (:func:`execute_runnable`) fills in its
result or error; the workflow then folds it back with ``apply_runnable``.

A runnable is picklable when its function is importable by name (a module-level function).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from runeflow.model.events import ErrorInfo

__all__ = ["Runnable", "RunnableStatus", "execute_runnable"]

RunnableStatus = Literal["prepared", "completed", "failed"]
"""``prepared``: not executed yet; ``completed``: ``result`` is set; ``failed``: ``error`` is."""


@dataclass(slots=True, eq=False)
class Runnable:
    """One activation of a component, ready to execute anywhere."""

    id: str
    """Stable id derived from the component's hash and the input facts' ids.

    Use it as an idempotency key in side-effecting steps."""
    component: str
    """The component's name."""
    component_kind: str
    """The component's kind (``step``, ``rule``, ``map``...)."""
    component_hash: str
    """The component's content hash."""
    fn: Callable[..., Any] | None
    """The function to call (``None`` passes the single argument through)."""
    args: tuple[Any, ...]
    """Positional arguments."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments (run-context values)."""
    input_ids: tuple[str, ...] = ()
    """Ids of the facts consumed."""
    is_async: bool = False
    """True when ``fn`` is a coroutine function."""
    attempt: int = 1
    """1 for the first attempt, 2 for the first retry..."""
    status: RunnableStatus = "prepared"
    """Where it is in its life."""
    result: Any = None
    """The function's return value, once completed."""
    error: ErrorInfo | None = None
    """What went wrong, once failed."""
    duration: float = 0.0
    """Seconds spent executing."""
    worker_address: str | None = None
    """Where it executed, when an executor reports it: the address of the Dask or Ray worker
    (carried by its telemetry); ``None`` for local executors."""

    def execute(self) -> Runnable:
        """Run the function, recording its result or error; return ``self``."""
        start = time.perf_counter()
        try:
            fn = self.fn
            if fn is None:
                result = self.args[0]
            else:
                result = fn(*self.args, **self.kwargs)
                if self.is_async:
                    from runeflow._aio import run_coroutine

                    result = run_coroutine(result)
        except Exception as exc:
            self.fail(exc)
        else:
            self.result = result
            self.status = "completed"
        self.duration = time.perf_counter() - start
        return self

    async def execute_async(self) -> Runnable:
        """Like :meth:`execute`, awaiting ``async def`` functions on the running loop."""
        if not self.is_async:
            return self.execute()
        start = time.perf_counter()
        try:
            assert self.fn is not None
            self.result = await self.fn(*self.args, **self.kwargs)
            self.status = "completed"
        except Exception as exc:
            self.fail(exc)
        self.duration = time.perf_counter() - start
        return self

    def fail(self, exc: BaseException) -> Runnable:
        """Record ``exc`` as this runnable's error; return ``self``."""
        self.error = ErrorInfo.from_exception(exc, "".join(traceback.format_exception(exc)))
        self.status = "failed"
        self.result = None
        return self

    def retry(self) -> Runnable:
        """Return a fresh copy for the next attempt."""
        return Runnable(
            id=self.id,
            component=self.component,
            component_kind=self.component_kind,
            component_hash=self.component_hash,
            fn=self.fn,
            args=self.args,
            kwargs=self.kwargs,
            input_ids=self.input_ids,
            is_async=self.is_async,
            attempt=self.attempt + 1,
        )

    def __repr__(self) -> str:
        return f"<Runnable {self.component}#{self.id[:8]} {self.status}>"


def execute_runnable(runnable: Runnable) -> Runnable:
    """Execute ``runnable`` in isolation (no workflow needed) and return it."""
    return runnable.execute()
