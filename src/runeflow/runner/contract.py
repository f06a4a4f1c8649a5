"""The runner contract: what any runner of runeflow workflows offers.

:class:`~runeflow.runner.runner.Runner` implements it. An alternative runner (a job queue,
a cluster scheduler) that implements these three methods can be used wherever code depends
only on the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from runeflow.model.workflow import Workflow

__all__ = ["RunnerProtocol"]


@runtime_checkable
class RunnerProtocol(Protocol):
    """Start instances, deliver events to them, and schedule delayed resumes."""

    def start_instance(
        self,
        definition: Workflow | Callable[[], Workflow] | str,
        context: Any,
        id: str | None = None,
    ) -> str:
        """Create an instance of ``definition``, feed it ``context``, return its id.

        The instance is persisted before this returns and runs in the background.
        """
        ...

    def resume(
        self, workflow_id: str, event: str, payload: Any = None, step: str | None = None
    ) -> None:
        """Deliver ``event`` to the instance's waiting step (durably).

        Raises ``WorkflowNotFoundError`` for an unknown id and ``InstanceStateError`` when
        the instance cannot take the event; nothing changes then.
        """
        ...

    def schedule_resume(self, workflow_id: str, step: str, delay: float) -> str:
        """Deliver ``timeout`` to ``step`` after ``delay`` seconds; return a timer id.

        The timer is durable: it survives a restart of the runner and fires at most once.
        """
        ...
