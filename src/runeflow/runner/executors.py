"""Executors: where runnables execute.

An executor takes a prepared :class:`~runeflow.model.runnable.Runnable`, executes it
somewhere and hands it back, executed, to a callback. The runner applies results as they
arrive, so an executor never blocks the runner.

Implement :class:`Executor` to run work anywhere else (a cluster, a queue): ``submit`` must
return at once and call ``done`` exactly once, from any thread, with the executed runnable
(``runnable.execute()`` records errors itself).

The names ``"dask"`` and ``"ray"`` (and ``"dask://HOST:PORT"``, ``"ray://HOST:PORT"``) make
a :class:`~runeflow.runner.dask_executor.DaskExecutor` or
:class:`~runeflow.runner.ray_executor.RayExecutor`, imported only then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import os
import pickle
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from runeflow.errors import DispatchError, UsageError
from runeflow.model.runnable import Runnable

__all__ = [
    "EXECUTOR_NAMES",
    "AsyncioExecutor",
    "Done",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "ThreadExecutor",
    "check_executor",
    "make_executor",
]

log = logging.getLogger("runeflow.runner")

Done = Callable[[Runnable], None]
"""Called once with the executed runnable."""


@runtime_checkable
class Executor(Protocol):
    """Runs runnables and reports each one back through a callback."""

    name: str
    """Short name used in logs and telemetry."""

    def submit(self, runnable: Runnable, done: Done) -> None:
        """Start executing ``runnable``; call ``done(runnable)`` when it has executed."""
        ...

    def cancel(self, runnable_id: str) -> bool:
        """Try to stop a running runnable (asyncio tasks); return True if it was cancelled."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Release the executor's resources."""
        ...


class InlineExecutor:
    """Executes on the calling thread, at once (no parallelism; least overhead)."""

    name = "inline"

    def submit(self, runnable: Runnable, done: Done) -> None:
        """Execute now and report."""
        done(runnable.execute())

    def cancel(self, runnable_id: str) -> bool:
        """Inline work cannot be cancelled."""
        return False

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""


class ThreadExecutor:
    """Executes on a pool of threads (the default; right for I/O-bound steps).

    The pool is a queue and up to ``max_workers`` threads, started as work needs them: a
    submit costs one queue put, with no future to make. When a pool thread, reporting a
    result, causes the next runnable to be submitted (a chain), that runnable is kept for
    the same thread to execute next rather than queued: the thread is free anyway, and a
    hand-off to another thread costs more than most steps. Only one runnable is kept per
    thread; any others submitted meanwhile (a fan-out) go to the queue, so siblings still
    run in parallel.
    """

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(64, (os.cpu_count() or 1) * 8)
        self._queue: queue.SimpleQueue[tuple[Runnable, Done] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work and not yet promised any
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()

    def submit(self, runnable: Runnable, done: Done) -> None:
        """Keep for the current pool thread if it is free after this report, else queue."""
        local = self._local
        if getattr(local, "reporting", False) and local.next is None:
            local.next = (runnable, done)
            return
        self._put((runnable, done))

    def _put(self, item: tuple[Runnable, Done]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread executor is shut down")
            if self._idle:
                self._idle -= 1  # that thread takes it
            elif len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"runeflow-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put(item)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            try:
                self._run(*item)
            except Exception:  # a failing report must not cost the pool a thread
                log.exception("a runnable's report failed on the thread executor")
            with self._lock:
                self._idle += 1

    def _run(self, runnable: Runnable, done: Done) -> None:
        local = self._local
        local.reporting, local.next = True, None
        try:
            while True:
                done(runnable.execute())
                if local.next is None:
                    return
                (runnable, done), local.next = local.next, None
        finally:
            local.reporting = False
            if local.next is not None:  # done() raised after keeping one: do not lose it
                item, local.next = local.next, None
                self._put(item)

    def cancel(self, runnable_id: str) -> bool:
        """Threads cannot be interrupted."""
        return False

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads once the queued work is done (``wait``: block until then);
        without ``wait``, queued runnables that no thread started are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        if not wait:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


class ProcessExecutor:
    """Executes in worker processes (CPU-bound steps).

    The runnable is pickled, so its function must be importable by name (defined at module
    level); otherwise the runnable fails at dispatch with a :class:`DispatchError` naming the
    component. When a worker process dies (a crash, ``os._exit``, the OOM killer), the
    runnables the pool was running fail with ``BrokenProcessPool`` and the next submission
    starts a new pool.
    """

    name = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or (os.cpu_count() or 1)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = cf.ProcessPoolExecutor(self.max_workers)
            return self._pool

    def submit(self, runnable: Runnable, done: Done) -> None:
        """Pickle and send to a worker process."""
        try:
            payload = pickle.dumps(runnable)
        except Exception as exc:
            error = DispatchError(
                f"component {runnable.component!r} cannot run in a process: its runnable "
                f"cannot be pickled ({exc}); define its function at module level (not a lambda "
                "or a nested function), or run it on the 'threads' executor",
                component=runnable.component,
            )
            done(runnable.fail(error))
            return
        pool = self._get_pool()
        try:
            future = pool.submit(_execute_pickled, payload)
        except cf.process.BrokenProcessPool:  # a worker died since: start a new pool
            self._discard(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            pool = self._get_pool()
            future = pool.submit(_execute_pickled, payload)

        def finished(f: cf.Future[Runnable]) -> None:
            if not f.cancelled() and isinstance(f.exception(), cf.process.BrokenProcessPool):
                self._discard(pool)  # its manager has already stopped its processes
            done(_result_or_failure(f, runnable))

        future.add_done_callback(finished)

    def _discard(self, pool: cf.ProcessPoolExecutor) -> None:
        """Forget a broken pool, so the next submission starts a new one."""
        with self._lock:
            if self._pool is pool:
                self._pool = None

    def cancel(self, runnable_id: str) -> bool:
        """Processes are not interrupted."""
        return False

    def shutdown(self, wait: bool = True) -> None:
        """Stop the worker processes."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=wait, cancel_futures=not wait)
                self._pool = None


def _execute_pickled(payload: bytes) -> Runnable:
    runnable: Runnable = pickle.loads(payload)
    return runnable.execute()


def _result_or_failure(future: cf.Future[Runnable], runnable: Runnable) -> Runnable:
    try:
        return future.result()
    except Exception as exc:  # the worker died, or the result could not be pickled back
        return runnable.fail(exc)


class AsyncioExecutor:
    """Runs ``async def`` steps on an event loop and plain steps on a thread pool.

    The loop runs on a background thread owned by this executor, so it works the same from
    scripts and from async applications. Async runnables can be cancelled (timeouts). Plain
    steps go straight to a :class:`ThreadExecutor`, without a hop through the loop.
    """

    name = "asyncio"

    def __init__(self, max_workers: int | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._threads = ThreadExecutor(max_workers)
        self._pool = cf.ThreadPoolExecutor(  # for the loop's run_in_executor(None, ...)
            self._threads.max_workers, thread_name_prefix="runeflow-asyncio"
        )
        self._loop.set_default_executor(self._pool)
        self._tasks: dict[str, cf.Future[Any]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="runeflow-asyncio", daemon=True
        )
        self._thread.start()

    def submit(self, runnable: Runnable, done: Done) -> None:
        """Schedule an async runnable on the loop; hand a plain one to the thread pool."""
        if not runnable.is_async:
            self._threads.submit(runnable, done)
            return
        future = asyncio.run_coroutine_threadsafe(runnable.execute_async(), self._loop)
        with self._lock:
            self._tasks[runnable.id] = future

        def finished(f: cf.Future[Any]) -> None:
            with self._lock:
                if self._tasks.get(runnable.id) is f:
                    del self._tasks[runnable.id]
            if f.cancelled():
                done(runnable.fail(asyncio.CancelledError("cancelled")))
            else:
                done(f.result())

        future.add_done_callback(finished)

    def cancel(self, runnable_id: str) -> bool:
        """Cancel the task running ``runnable_id``."""
        with self._lock:
            future = self._tasks.get(runnable_id)
        return future.cancel() if future is not None else False

    def shutdown(self, wait: bool = True) -> None:
        """Stop the loop and its pool."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._threads.shutdown(wait=wait)
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _cluster_executor(spec: str, max_workers: int | None) -> Executor:
    """``"dask"``/``"ray"``: connect where the engine's settings say, or start locally."""
    engine, _, address = spec.partition("://")
    if engine == "dask":
        from runeflow.runner.dask_executor import DaskExecutor

        return DaskExecutor(address=f"tcp://{address}" if address else None, n_workers=max_workers)
    from runeflow.runner.ray_executor import RayExecutor

    return RayExecutor(address=spec if address else None, num_cpus=max_workers)


_BUILTIN: dict[str, Callable[[int | None], Executor]] = {
    "inline": lambda n: InlineExecutor(),
    "threads": ThreadExecutor,
    "processes": ProcessExecutor,
    "asyncio": AsyncioExecutor,
    "dask": lambda n: _cluster_executor("dask", n),
    "ray": lambda n: _cluster_executor("ray", n),
}


EXECUTOR_NAMES: tuple[str, ...] = (*sorted(set(_BUILTIN) - {"dask", "ray"}), "dask", "ray")
"""The names :func:`make_executor` accepts: the local executors, then the clusters."""


def check_executor(spec: object) -> None:
    """Raise :class:`UsageError` unless ``spec`` is ``None``, a known name or an Executor."""
    if spec is None or isinstance(spec, Executor):
        return
    if isinstance(spec, str):
        if spec not in _BUILTIN and not spec.startswith(("dask://", "ray://")):
            raise UsageError(
                f"unknown executor {spec!r}: choose one of {', '.join(EXECUTOR_NAMES)} "
                "(or dask://HOST:PORT, ray://HOST:PORT), or pass an Executor instance"
            )
        return
    raise UsageError(
        f"executor must be a name ({', '.join(EXECUTOR_NAMES)}) or implement "
        f"runeflow.runner.executors.Executor, got {type(spec).__name__}"
    )


def make_executor(spec: str | Executor, max_workers: int | None = None) -> Executor:
    """Turn a name (``"threads"``, ``"dask"``, ``"ray://head:10001"``...) into an executor.

    Raises:
        UsageError: an unknown name (the message lists the accepted ones) or another type.
    """
    check_executor(spec)
    if not isinstance(spec, str):
        return spec
    if "://" in spec:
        return _cluster_executor(spec, max_workers)
    return _BUILTIN[spec](max_workers)
