"""Clocks and the runner's scheduler thread.

Time is injected through a :class:`Clock`, so tests move it with :class:`FakeClock` instead
of sleeping. The :class:`Scheduler` runs callbacks at clock times on one background thread:
retries after backoff, timeouts, and durable timers all go through it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "Scheduler", "SystemClock"]

log = logging.getLogger("runeflow.runner")


@runtime_checkable
class Clock(Protocol):
    """Where the runner reads the time (seconds since the epoch, or any fixed origin)."""

    def now(self) -> float:
        """The current time in seconds."""
        ...

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Register ``callback`` to run when time jumps (fake clocks); may do nothing."""
        ...


class SystemClock:
    """The wall clock (``time.time()``)."""

    def now(self) -> float:
        """The current time in seconds since the epoch."""
        return time.time()

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Real time does not jump; nothing to register."""


class FakeClock:
    """A clock that moves only when told to, for tests.

    Example:
        clock = rf.FakeClock()
        runner = rf.Runner(clock=clock)
        ...
        clock.advance(3600)  # timers due within the hour fire now
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """The fake current time."""
        return self._now

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after every :meth:`advance`."""
        self._listeners.append(callback)

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds``, run what became due, and return the time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
        for listener in list(self._listeners):
            listener()
        return self._now

    def set(self, when: float) -> None:
        """Jump to ``when`` (not earlier than now)."""
        self.advance(max(0.0, when - self._now))


class Scheduler:
    """Runs callbacks at clock times on a background thread."""

    def __init__(self, clock: Clock, name: str = "runeflow-scheduler") -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self.run_batch: Callable[[list[Callable[[], None]]], None] | None = None
        """Runs each set of callbacks due together, when set (a runner batches its timers);
        otherwise they run one by one."""
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        clock.on_advance(self.run_due)

    def call_at(self, when: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` once the clock reaches ``when``; return a handle for cancel()."""
        handle = next(self._seq)
        with self._cond:
            heapq.heappush(self._heap, (when, handle, callback))
            self._cond.notify()
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` after ``delay`` seconds of clock time."""
        return self.call_at(self.clock.now() + max(delay, 0.0), callback)

    def cancel(self, handle: int) -> None:
        """Forget a scheduled callback (no effect once it ran)."""
        with self._cond:
            self._cancelled.add(handle)

    def wake(self) -> None:
        """Make the thread re-check the time now."""
        with self._cond:
            self._cond.notify()

    def run_due(self) -> None:
        """Run every due callback in the calling thread.

        A fake clock calls this when it advances, so that once ``advance()`` returns, what
        was due has run; tests need no sleeping or polling.
        """
        with self._cond:
            due = self._pop_due(self.clock.now())
        self._run(due)

    def _run(self, due: list[Callable[[], None]]) -> None:
        if self.run_batch is not None and len(due) > 1:
            try:
                self.run_batch(due)
            except Exception:
                log.exception("scheduled callbacks failed")
            return
        for callback in due:
            try:
                callback()
            except Exception:  # a failing callback must not stop the others
                log.exception("scheduled callback failed")

    def _pop_due(self, now: float) -> list[Callable[[], None]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, handle, callback = heapq.heappop(self._heap)
            if handle in self._cancelled:
                self._cancelled.discard(handle)
            else:
                due.append(callback)
        return due

    def close(self) -> None:
        """Stop the thread; pending callbacks are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def pending(self) -> int:
        """Callbacks scheduled and not yet run or cancelled."""
        with self._cond:
            return len(self._heap) - len(self._cancelled)

    def _loop(self) -> None:
        while True:
            with self._cond:
                due = self._take_due()
                if due is None:
                    return
            self._run(due)

    def _take_due(self) -> list[Callable[[], None]] | None:
        while not self._closed:
            now = self.clock.now()
            due = self._pop_due(now)
            if due:
                return due
            if self._heap and isinstance(self.clock, SystemClock):
                self._cond.wait(timeout=max(self._heap[0][0] - now, 0.0005))
            elif self._heap:
                self._cond.wait(timeout=0.05)  # clocks of other kinds: also poll
            else:
                self._cond.wait()
        return None
