"""A worker's waits, external events and durable timers (mixed into the worker).

A timer is recorded in the log (``TimerScheduled``) and kept in the store by the same append
(``Store.append(timers=...)``); its outcome (``TimerFired`` or ``TimerCancelled``) and the
removal of the stored timer are written by one append as well (``done_timers=``). So the log
and the store's timers never disagree, even across a crash, and a timer fires at most once:
once its outcome is in the log, a replay knows it fired.

Call everything here with the worker's lock held.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from runeflow.errors import InstanceStateError
from runeflow.model import events as ev
from runeflow.model.hashing import short_id
from runeflow.model.workflow import Wait, Workflow
from runeflow.runner.inbox import encode_refusing
from runeflow.runner.info import Status
from runeflow.stores.base import Timer

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from runeflow.runner.worker import Worker, WorkerHost

__all__ = ["Waiting"]

log = logging.getLogger("runeflow.runner")


class Waiting:
    """Waits, events and timers of one instance (see the module docstring)."""

    if not TYPE_CHECKING:  # the worker's slots hold the state; mypy reads the names below
        __slots__ = ()

    if TYPE_CHECKING:
        runner: WorkerHost
        id: str
        wf: Workflow
        lock: threading.RLock
        status: Status
        driving: bool
        timer_handles: dict[str, int]
        armed_waits: set[str] | tuple[()]
        new_timers: list[Timer] | tuple[()]
        removals: list[str] | tuple[()]

        def checkpoint(self) -> int | None:
            """See :meth:`Worker.checkpoint`."""

        def _guarded_drive(self) -> None: ...

        def accept(self, change: Callable[[], object]) -> Worker:
            """See :meth:`Worker.accept`."""

    def _arm_waits(self) -> None:
        """Arm a durable timer for every open wait that has a timeout and none yet."""
        for wait in self.wf._waits.values():
            if wait.timeout is None or wait.id in self.armed_waits:
                continue
            self._armed(wait.id)
            timer_id = short_id(wait.id, "timeout")
            if timer_id in self.wf._timers:  # armed before a restart
                continue
            fire_at = self.runner.clock.now() + wait.timeout
            self.schedule(timer_id, wait.component, fire_at, wait_id=wait.id)

    def _armed(self, wait_id: str) -> None:
        if not self.armed_waits:
            self.armed_waits = set()
        assert isinstance(self.armed_waits, set)
        self.armed_waits.add(wait_id)

    def _remove_later(self, timer_id: str) -> None:
        """Have the next checkpoint remove the stored timer (its outcome is logged)."""
        self.removals = [*self.removals, timer_id]

    def schedule(self, timer_id: str, step: str, fire_at: float, *, wait_id: str = "") -> None:
        """Record a durable timer in the log, keep it for the next checkpoint (which stores
        it with the event), and arm it here."""
        event = ev.TimerScheduled(timer_id, wait_id, step, fire_at, "timeout")
        self.wf.record(event)
        self.new_timers = [
            *self.new_timers,
            Timer(
                timer_id=timer_id,
                workflow_id=self.id,
                fire_at=fire_at,
                payload={"kind": "timer", "wait_id": wait_id, "step": step},
            ),
        ]
        self.arm(event)

    def arm(self, timer: ev.TimerScheduled) -> None:
        """Have the scheduler fire ``timer`` at its time (idempotent)."""
        if timer.timer_id in self.timer_handles:
            return
        tid = timer.timer_id
        self.timer_handles[tid] = self.runner.scheduler.call_at(
            timer.fire_at, lambda: self.fire_timer(tid)
        )

    def rearm(self) -> None:
        """After loading from the store: arm every pending timer again."""
        for timer in self.wf.pending_timers():
            self.arm(timer)
        for timer in self.wf.pending_timers():
            if timer.wait_id:
                self._armed(timer.wait_id)

    def fire_timer(self, timer_id: str) -> None:
        """A timer is due: deliver its event if its wait is still open (one outcome only).

        The outcome, the event delivered and the stored timer's removal are written by the
        next checkpoint, before anything the event makes ready is dispatched.
        """
        with self.lock:
            self.timer_handles.pop(timer_id, None)
            timer = self.wf._timers.get(timer_id)
            if timer is None or self.status is Status.STOPPED or self.runner.closed:
                return  # an event won the race, or the timer was cancelled
            wait = self._wait_for_timer(timer)
            self.wf.record(ev.TimerFired(timer_id))
            self._remove_later(timer_id)
            if wait is not None:
                self.wf.deliver_event(timer.event, None, wait_id=wait.id, declared_only=False)
                self.status = Status.RUNNING
            else:
                log.info(
                    "timer %s of %r found no open wait on %r", timer_id, self.id, timer.component
                )
            self.runner.fired(self, timer, self.runner.clock.now())
            if self.driving:  # fired from a step of this very instance: write it now
                self.checkpoint()
            else:
                if self.runner.checkpoint_strategy.kind != "every_cycle":
                    self.checkpoint()  # the first cycle would not write it
                self._guarded_drive()

    def _wait_for_timer(self, timer: ev.TimerScheduled) -> Wait | None:
        waits = self.wf._waits
        if timer.wait_id:
            return waits.get(timer.wait_id)
        for wait in waits.values():
            if wait.component == timer.component:
                return wait
        return None

    def deliver(self, event: str, payload: Any, step: str | None) -> Worker:
        """Deliver an external event durably: in the store before this returns.

        Returns:
            The worker now running the instance (see :meth:`Worker.accept`).
        """
        if self.status.is_terminal:
            raise InstanceStateError(
                f"instance {self.id!r} is {self.status.value} and takes no more events",
                workflow_id=self.id,
                status=self.status.value,
            )
        try:
            wait = self.wf.find_wait(event, step)
        except InstanceStateError as exc:
            raise InstanceStateError(
                f"instance {self.id!r} ({self.status.value}): {exc}",
                workflow_id=self.id,
                status=self.status.value,
            ) from None
        encode_refusing(  # refuse unstorable payloads up front
            self.runner.store.codec, payload, f"the payload of event {event!r} for {self.id!r}"
        )
        return self.accept(lambda: self._deliver(wait, event, payload))

    def _deliver(self, wait: Wait, event: str, payload: Any) -> None:
        for timer in list(self.wf._timers.values()):
            if timer.wait_id == wait.id:
                self.wf.record(ev.TimerCancelled(timer.timer_id))
                handle = self.timer_handles.pop(timer.timer_id, None)
                if handle is not None:
                    self.runner.scheduler.cancel(handle)
                self._remove_later(timer.timer_id)
        self.wf.deliver_event(event, payload, wait_id=wait.id)
        self.status = Status.RUNNING

    def cancel_timer(self, timer_id: str) -> bool:
        """Cancel a pending timer; return False if it is not pending."""
        if timer_id not in self.wf._timers:
            return False
        self.wf.record(ev.TimerCancelled(timer_id))
        handle = self.timer_handles.pop(timer_id, None)
        if handle is not None:
            self.runner.scheduler.cancel(handle)
        self._remove_later(timer_id)
        self.checkpoint()
        return True
