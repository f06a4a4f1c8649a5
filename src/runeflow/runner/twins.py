"""The ``async`` twins of the runner's blocking methods (each runs in a thread)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from runeflow.runner.worker import InstanceInfo

if TYPE_CHECKING:
    from runeflow.recovery import Rehydration

__all__ = ["AsyncTwins"]


class AsyncTwins:
    """``arun``, ``astart_workflow``, ``await_``...: mixed into the Runner."""

    if TYPE_CHECKING:  # what the Runner provides

        def start_workflow(  # noqa: D102
            self,
            workflow_id: str,
            workflow: Any,
            *,
            hooks: Any = ...,
            max_concurrency: int | None = ...,
            definition: str | None = ...,
        ) -> str: ...
        def start_instance(  # noqa: D102
            self, definition: Any, context: Any, id: str | None = None
        ) -> str: ...
        def run(self, workflow_id: str, input: Any, run_context: Any = None) -> None: ...  # noqa: D102
        def wait(self, workflow_id: str, timeout: float | None = None) -> InstanceInfo: ...  # noqa: D102
        def get_results(self, workflow_id: str, *args: Any, **kwargs: Any) -> Any: ...  # noqa: D102
        def info(self, workflow_id: str) -> InstanceInfo: ...  # noqa: D102
        def stop(self, workflow_id: str, persist: bool = True) -> None: ...  # noqa: D102
        def recover(  # noqa: D102
            self, workflow_id: str, rehydration: Rehydration = "full", *, migrate: bool = False
        ) -> InstanceInfo: ...
        def resume(  # noqa: D102
            self, workflow_id: str, event: str, payload: Any = None, step: str | None = None
        ) -> None: ...
        def schedule_resume(self, workflow_id: str, step: str, delay: float) -> str: ...  # noqa: D102
        def checkpoint(self, workflow_id: str) -> int | None: ...  # noqa: D102

    async def astart_workflow(self, workflow_id: str, workflow: Any, **options: Any) -> str:
        """Async twin of :meth:`start_workflow`."""
        return await asyncio.to_thread(self.start_workflow, workflow_id, workflow, **options)

    async def astart_instance(self, definition: Any, context: Any, id: str | None = None) -> str:
        """Async twin of :meth:`start_instance`."""
        return await asyncio.to_thread(self.start_instance, definition, context, id)

    async def arun(self, workflow_id: str, input: Any, run_context: Any = None) -> None:
        """Async twin of :meth:`run`."""
        await asyncio.to_thread(self.run, workflow_id, input, run_context)

    async def await_(self, workflow_id: str, timeout: float | None = None) -> InstanceInfo:
        """Async twin of :meth:`wait` (``await`` is a keyword, hence the underscore)."""
        return await asyncio.to_thread(self.wait, workflow_id, timeout)

    async def aget_results(self, workflow_id: str, *args: Any, **kwargs: Any) -> Any:
        """Async twin of :meth:`get_results`."""
        return await asyncio.to_thread(self.get_results, workflow_id, *args, **kwargs)

    async def ainfo(self, workflow_id: str) -> InstanceInfo:
        """Async twin of :meth:`info`."""
        return await asyncio.to_thread(self.info, workflow_id)

    async def astop(self, workflow_id: str, persist: bool = True) -> None:
        """Async twin of :meth:`stop`."""
        await asyncio.to_thread(self.stop, workflow_id, persist)

    async def arecover(self, workflow_id: str, rehydration: Rehydration = "full") -> InstanceInfo:
        """Async twin of :meth:`recover`."""
        return await asyncio.to_thread(self.recover, workflow_id, rehydration)

    async def aresume(
        self, workflow_id: str, event: str, payload: Any = None, step: str | None = None
    ) -> None:
        """Async twin of :meth:`resume`."""
        await asyncio.to_thread(self.resume, workflow_id, event, payload, step)

    async def aschedule_resume(self, workflow_id: str, step: str, delay: float) -> str:
        """Async twin of :meth:`schedule_resume`."""
        return await asyncio.to_thread(self.schedule_resume, workflow_id, step, delay)

    async def acheckpoint(self, workflow_id: str) -> int | None:
        """Async twin of :meth:`checkpoint`."""
        return await asyncio.to_thread(self.checkpoint, workflow_id)
