"""What a runner tells about an instance: its status, its info, hooks and checkpoint timing.

Statuses (``runner.info(id).status``; the same strings are stored and shown by
``runeflow list``):

===========  =====================================================  ====================
status       meaning                                                takes input/events
===========  =====================================================  ====================
``running``  work is pending or executing                           yes
``waiting``  nothing can run until an event or a timer arrives      yes
``idle``     nothing left to do, no unhandled failure               yes (more input)
``failed``   settled with a failure no retry or fallback handled,   no
             halted by one (``on_failure="halt"``), or given up
             after repeated internal errors
``stopped``  stopped with ``stop()``                                no
===========  =====================================================  ====================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runeflow.errors import UsageError
from runeflow.model import events as ev
from runeflow.model.runnable import Runnable

__all__ = [
    "Checkpoint",
    "Hooks",
    "InstanceInfo",
    "Status",
    "every_n",
    "failure_info",
    "timer_info",
]


class Status(StrEnum):
    """An instance's status."""

    RUNNING = "running"
    """Work is pending or executing."""
    WAITING = "waiting"
    """Nothing can run until an external event or a timer arrives."""
    IDLE = "idle"
    """Nothing left to do; more input may still be fed with ``run``."""
    FAILED = "failed"
    """Settled with a failure no retry or fallback handled (see ``info().failures``), halted
    by one (``on_failure="halt"``), or given up after repeated internal errors. It takes no
    more input or events."""
    STOPPED = "stopped"
    """Stopped with ``stop()``; it takes no more input."""

    @property
    def is_terminal(self) -> bool:
        """True for ``failed`` and ``stopped``."""
        return self in (Status.FAILED, Status.STOPPED)

    @property
    def is_settled(self) -> bool:
        """True when the instance is not ``running``."""
        return self is not Status.RUNNING


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """When the runner appends an instance's new events to its store."""

    kind: str
    """``every_cycle``, ``every_n``, ``on_complete`` or ``manual``."""
    n: int = 1
    """For ``every_n``: cycles between checkpoints."""

    @classmethod
    def parse(cls, spec: str | Checkpoint) -> Checkpoint:
        """Accept a strategy name or a Checkpoint."""
        if isinstance(spec, Checkpoint):
            return spec
        if spec in ("every_cycle", "on_complete", "manual"):
            return cls(spec)
        raise UsageError(
            f"unknown checkpoint strategy {spec!r}: use 'every_cycle', 'on_complete', "
            "'manual' or rf.every_n(n)"
        )


def every_n(n: int) -> Checkpoint:
    """Checkpoint every ``n`` cycles, and whenever the instance settles (idle, waiting...)."""
    if n < 1:
        raise UsageError("every_n needs n >= 1")
    return Checkpoint("every_n", n)


@dataclass(frozen=True, kw_only=True, slots=True)
class Hooks:
    """Callbacks on an instance's life. Each gets the instance id and the runnable or info."""

    on_dispatch: Callable[[str, Runnable], None] | None = None
    """A runnable was sent to its executor."""
    on_complete: Callable[[str, Runnable], None] | None = None
    """A runnable's result was applied."""
    on_failed: Callable[[str, Runnable], None] | None = None
    """A runnable failed for good (after its retries)."""
    on_idle: Callable[[str, InstanceInfo], None] | None = None
    """The instance settled (idle, waiting or failed)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InstanceInfo:
    """A snapshot of an instance's state."""

    workflow_id: str
    """The instance's id."""
    name: str
    """Its workflow's name."""
    status: Status
    """See :class:`Status`."""
    step_count: int = 0
    """Runnables completed or failed for good (and waits resumed)."""
    advance_count: int = 0
    """Cycles run."""
    waiting_since: float | None = None
    """Clock time at which it started waiting, while ``waiting``."""
    open_waits: list[dict[str, Any]] = field(default_factory=list)
    """``{"wait_id", "step", "events", "timeout"}`` per open wait."""
    pending_timers: list[dict[str, Any]] = field(default_factory=list)
    """``{"timer_id", "step", "fire_at", "event"}`` per armed timer."""
    in_flight: int = 0
    """Runnables dispatched and not yet applied."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Per failure no retry or fallback handled: ``{"component", "error_type", "message",
    "traceback", "attempt", "error"}`` (``error`` is ``"Type: message"``)."""
    error: str | None = None
    """Why the instance failed, or why it could not be loaded."""
    loaded: bool = True
    """False when the info comes from the store only."""
    updated_at: float | None = None
    """Store time of the last change, when known."""


def failure_info(failure: ev.RunnableFailed) -> dict[str, Any]:
    """The ``InstanceInfo.failures`` entry for a final failure."""
    err = failure.error
    return {
        "component": failure.component,
        "error_type": err.type,
        "message": err.message,
        "traceback": err.traceback,
        "attempt": failure.attempt,
        "error": str(err),
    }


def timer_info(timer: ev.TimerScheduled) -> dict[str, Any]:
    """The ``InstanceInfo.pending_timers`` entry for an armed timer."""
    return {
        "timer_id": timer.timer_id,
        "step": timer.component,
        "fire_at": timer.fire_at,
        "event": timer.event,
        "wait_id": timer.wait_id,
    }
