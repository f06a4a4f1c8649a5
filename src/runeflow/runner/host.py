"""What a worker needs from the runner that hosts it: :class:`WorkerHost`.

The worker depends on this small interface, never on the whole
:class:`~runeflow.runner.runner.Runner`, so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from runeflow.errors import LeaseLostError
from runeflow.model import events as ev
from runeflow.model.workflow import Workflow
from runeflow.runner.info import Checkpoint
from runeflow.runner.telemetry import Telemetry
from runeflow.runner.timers import Clock, Scheduler
from runeflow.stores.base import Store, Timer

if TYPE_CHECKING:
    import random

    from runeflow.runner.executors import Executor
    from runeflow.runner.policies import Policy
    from runeflow.runner.retention import Snapshots
    from runeflow.runner.worker import Worker

__all__ = ["WorkerHost"]


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
