"""Appends as data, and group commit: many threads' appends share one transaction.

A durable store's append costs one transaction, and a transaction costs a commit: a write
to the SQLite WAL, a WAL flush (an ``fdatasync``) on PostgreSQL. When many instances
checkpoint at once (a runner with a thread pool, several timers firing), their appends are
written together by :class:`GroupCommit`, so that they share one commit:

* the first thread to append becomes the *leader* and writes its own append at once, in a
  transaction of its own: a lone append waits for nothing;
* appends arriving while a transaction is being written queue up; when it is done, the
  leader hands over to the oldest of them, which writes all of them (up to ``max_batch``) in
  the next transaction, and so on.

So no append waits for more than the transaction in progress when it arrived plus its own,
and the more appends arrive at once, the fewer commits they cost. A store whose server runs
several connections' transactions at once (PostgreSQL) lets a few leaders write at the same
time (``max_writers``): appends queue, and share transactions, only while all of them are
busy, so the client's own work for one append overlaps another's round trip.

Each append stays atomic and is refused on its own (a stale fencing token, an unknown
instance) without failing the others; when the transaction itself fails, every append in it
fails with that error and none was written.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from runeflow.errors import StoreError

if TYPE_CHECKING:
    from runeflow.model.events import Event
    from runeflow.stores.base import Timer

__all__ = ["Append", "GroupCommit", "outcome"]

T = TypeVar("T")


@dataclass(kw_only=True, slots=True)
class Append:
    """One instance's append, as :meth:`~runeflow.stores.base.Store.append_many` takes it.

    The fields are :meth:`~runeflow.stores.base.Store.append`'s arguments.
    """

    workflow_id: str
    """The instance (created with ``create``)."""
    events: Sequence[Event] = ()
    """The events, in order; may be empty."""
    status: str | None = None
    """When given, the instance's status is set in the same transaction."""
    token: int | None = None
    """The writer's fencing token: a stale one refuses the append (``LeaseLostError``)."""
    timers: Sequence[Timer] = ()
    """Timers to keep (replacing any with the same id), in the same transaction."""
    done_timers: Sequence[str] = ()
    """Ids of timers to remove in the same transaction: their outcome is in the log."""


def outcome(result: int | Exception) -> int:
    """An append's cursor, or raise the error that refused it."""
    if isinstance(result, Exception):
        raise result
    return result


class _Waiter(Generic[T]):
    """A queued item: woken when its result is in, or when it is to lead the next batch."""

    __slots__ = ("failure", "gate", "item", "lead", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: int | Exception = 0
        self.failure: BaseException | None = None
        self.lead = False
        self.gate = threading.Lock()
        self.gate.acquire()


class GroupCommit(Generic[T]):
    """Writes the items that several threads submit at once in shared batches (see the
    module docstring).

    Args:
        write: writes a batch in one transaction and returns each item's result (a cursor,
            or the exception refusing that item); raising fails the whole batch.
        max_batch: the most items one batch holds.
        write_one: writes one item alone (a batch of one, the usual case when appends do
            not overlap), when the store has a shorter path for it; ``write`` otherwise.
        max_writers: batches written at the same time, each by its own leader; ``write``
            must then cope with two batches appending to the same instance at once.
    """

    def __init__(
        self,
        write: Callable[[list[T]], list[int | Exception]],
        max_batch: int = 256,
        write_one: Callable[[T], int | Exception] | None = None,
        max_writers: int = 1,
    ) -> None:
        if max_writers < 1:
            raise ValueError(f"max_writers must be at least 1, not {max_writers}")
        self._write = write
        self._write_one = write_one
        self.max_writers = max_writers
        self.max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: deque[_Waiter[T]] = deque()
        self._writers = 0  # batches being written
        self.batches = 0
        """Transactions written so far (for tests and benchmarks)."""
        self.items = 0
        """Items written in them."""

    def submit(self, item: T) -> int | Exception:
        """Write ``item``, alone or with whatever else is queued; return its result.

        Raises:
            Exception: whatever writing its batch raised (then nothing of the batch was
                written).
        """
        with self._mutex:
            if self._writers < self.max_writers:
                self._writers += 1
                waiter = None
            else:
                waiter = _Waiter(item)
                self._queue.append(waiter)
        if waiter is None:
            return self._lead(item)
        waiter.gate.acquire()  # released with the result, or to lead the next batch
        if waiter.lead:
            return self._lead(item)
        if waiter.failure is not None:
            raise waiter.failure
        return waiter.result

    def _lead(self, item: T) -> int | Exception:
        """Write ``item`` with the queued ones, hand over to the next, deliver results."""
        queue = self._queue
        if not queue and self._write_one is not None:  # alone: the usual case
            try:
                return self._write_one(item)
            finally:
                self._hand_over(1)
        others: list[_Waiter[T]] = []
        if queue:
            with self._mutex:
                for _ in range(min(len(queue), self.max_batch - 1)):
                    others.append(queue.popleft())
        items = [item, *[w.item for w in others]]
        failure: BaseException | None = None
        try:
            results = self._write(items)
        except BaseException as exc:
            failure = exc
        self._hand_over(len(items))
        if failure is not None:
            shared = failure
            if not isinstance(failure, Exception):  # interrupted: the others learn it so
                shared = StoreError(f"a shared store transaction was interrupted ({failure!r})")
            for waiter in others:
                waiter.failure = shared
                waiter.gate.release()
            raise failure
        for waiter, result in zip(others, results[1:], strict=True):
            waiter.result = result
            waiter.gate.release()
        return results[0]

    def _hand_over(self, written: int) -> None:
        """Count a written batch; wake the oldest queued item to lead the next one."""
        with self._mutex:
            self.batches += 1
            self.items += written
            if self._queue:
                nxt = self._queue.popleft()
                nxt.lead = True
                nxt.gate.release()
            else:
                self._writers -= 1
