"""What the Dask and Ray executors share: shipping runnables to a cluster and back.

A runnable goes to a cluster worker pickled with the engine's cloudpickle (so lambdas and
closures travel; functions of importable modules travel by name and must be importable on
the workers, while those of a workflow file loaded by path travel by value), executes
there, and only its :class:`Outcome` comes back, pickled the same way (status, result or
error, duration, the worker's address), never its arguments. Both ends are unpickled inside
runeflow's code, so a runnable the worker cannot load, or a result that cannot travel back,
is a failure of that runnable with a message saying so, never a lost task. Nothing of this
transport is stored: results are checkpointed through the store's codec as always.

Arguments whose estimated size reaches ``large_value_bytes`` are put into the cluster's
memory once (``client.scatter``, ``ray.put``) and passed by reference; a value that several
runnables in flight share (a fan-out of one large input) is put once for all of them and
released when the last of them reports.

Completions are pushed: the engine calls back when a task ends (a Dask future callback, a
Ray object's completion callback), the callback only queues it, and one background thread
(per process, shared by every cluster executor) turns queued completions into outcomes, a
batch at a time (one Dask ``gather`` for the results that arrived together). It does not
apply them: it hands each to one of :data:`DRIVERS` threads, which call the runner back
(apply, plan, checkpoint, dispatch). One instance's results go to one thread at a time, in
the order they were reported; different instances are driven in parallel, so a slow
checkpoint holds up only its own instance and concurrent checkpoints share the store's
transactions (its group commit). Nothing polls.
"""

from __future__ import annotations

import copy
import importlib
import logging
import pickle
import queue
import socket
import sys
import threading
import traceback
import types
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from runeflow.errors import ClusterUnavailableError, DispatchError, UsageError
from runeflow.model.events import ErrorInfo
from runeflow.model.runnable import Runnable, RunnableStatus

__all__ = [
    "DRIVERS",
    "LARGE_VALUE_BYTES",
    "ClusterExecutor",
    "Outcome",
    "References",
    "Shipment",
    "approx_size",
    "check_large_value_bytes",
    "optional_module",
    "probe",
    "refuse_options",
    "retried_by_policy",
    "run_payload",
    "run_shipment",
]

log = logging.getLogger("runeflow.runner")

LARGE_VALUE_BYTES = 1_000_000
"""Arguments estimated at this many bytes or more go by reference (1 MB)."""

DRIVERS = 8
"""Threads, per process, that hand cluster results to runners: the most instances whose
results are applied and checkpointed at once (see the module docstring)."""

Done = Callable[[Runnable], None]
"""Called once with the executed runnable (:data:`runeflow.runner.executors.Done`, which
this module cannot import: the executors module imports the cluster executors)."""

_SAMPLE = 32
"""Items of a container looked at to estimate its size."""

_FILE_MODULES = "_runeflow_user_"
"""Prefix of the module name runeflow gives a definition loaded from a file (by path): such
a module cannot be imported on a worker, so its functions travel by value."""

Slot = tuple[str, Any]
"""Where a referenced value goes back: ``("a", position)`` or ``("k", keyword)``."""


@dataclass(frozen=True, slots=True)
class Shipment:
    """What a cluster task receives, besides the values passed by reference."""

    runnable: Runnable
    """The runnable, with each value passed by reference replaced by ``None``."""
    slots: tuple[Slot, ...] = ()
    """Where each referenced value goes back, in the order they are passed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What comes back from a cluster worker: the execution's result, not its inputs."""

    status: RunnableStatus
    """``completed`` or ``failed``."""
    result: Any
    """The return value, when completed."""
    error: ErrorInfo | None
    """What went wrong, when failed."""
    duration: float
    """Seconds spent executing on the worker."""
    worker_address: str
    """The worker that executed it."""


def run_payload(
    component: str,
    payload: bytes,
    values: Sequence[Any],
    worker_address: str,
    dumps: Callable[[Any], bytes],
) -> bytes:
    """The body of every cluster task: load the shipment, execute it, pickle the outcome."""
    try:
        shipment: Shipment = pickle.loads(payload)
    except Exception as exc:
        error = DispatchError(
            f"component {component!r} cannot be loaded on the cluster worker {worker_address}: "
            f"{type(exc).__name__}: {exc}. Its function, and what it refers to, must be "
            "importable there: install its module on the workers (or define the function in "
            "the workflow's own file)",
            component=component,
        )
        return dumps(_failed(error, exc, worker_address))
    outcome = run_shipment(shipment, values, worker_address)
    try:
        return dumps(outcome)
    except Exception as exc:
        error = DispatchError(
            f"component {component!r} returned a value that cannot be sent back from the "
            f"cluster ({type(outcome.result).__name__}): {type(exc).__name__}: {exc}",
            component=component,
        )
        return dumps(_failed(error, exc, worker_address, outcome.duration))


def _failed(error: Exception, cause: Exception, address: str, duration: float = 0.0) -> Outcome:
    text = "".join(traceback.format_exception(cause))
    return Outcome("failed", None, ErrorInfo.from_exception(error, text), duration, address)


def run_shipment(shipment: Shipment, values: Sequence[Any], worker_address: str) -> Outcome:
    """Execute a shipped runnable on a cluster worker."""
    runnable = shipment.runnable
    if shipment.slots:
        args = list(runnable.args)
        kwargs = dict(runnable.kwargs)
        for (where, at), value in zip(shipment.slots, values, strict=True):
            if where == "a":
                args[at] = value
            else:
                kwargs[at] = value
        runnable.args, runnable.kwargs = tuple(args), kwargs
    runnable.execute()
    if runnable.status == "completed" and type(runnable.result) is types.GeneratorType:
        try:  # a generator cannot travel back; the runner would make it a list anyway
            runnable.result = list(runnable.result)
        except Exception as exc:
            runnable.fail(exc)
    return Outcome(
        status=runnable.status,
        result=runnable.result,
        error=runnable.error,
        duration=runnable.duration,
        worker_address=worker_address,
    )


def approx_size(value: Any, depth: int = 3) -> int:
    """Estimate the bytes ``value`` takes, cheaply: containers are sampled, not walked."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    if isinstance(value, (int, float, bool, type(None))):
        return 8
    nbytes = getattr(type(value), "nbytes", None)  # numpy arrays, pandas series...
    if nbytes is not None:
        size = getattr(value, "nbytes", None)
        if isinstance(size, int):
            return size
    if isinstance(value, (list, tuple, set, frozenset, dict)) and depth > 0:
        items = list(value.items()) if isinstance(value, dict) else value
        n = len(items)
        if n == 0:
            return sys.getsizeof(value)
        step = max(1, n // _SAMPLE)
        sample = [items[i] for i in range(0, n, step)] if isinstance(items, Sequence) else []
        if not sample:  # a set: take the first items
            sample = [item for _, item in zip(range(_SAMPLE), items, strict=False)]
        total = sum(approx_size(item, depth - 1) for item in sample)
        return sys.getsizeof(value) + total * n // len(sample)
    return sys.getsizeof(value)


@dataclass(slots=True)
class _Shared:
    value: Any
    ref: Any
    users: int


class References:
    """Large arguments put into cluster memory once and shared by the runnables using them.

    Args:
        put: puts a value into cluster memory and returns its reference.
        threshold: estimated bytes from which an argument goes by reference; ``None`` never.
    """

    def __init__(self, put: Callable[[Any], Any], threshold: int | None) -> None:
        self._put = put
        self.threshold = threshold
        self._shared: dict[int, _Shared] = {}
        self._lock = threading.Lock()

    def ship(self, runnable: Runnable) -> tuple[Shipment, list[Any], tuple[_Shared, ...]]:
        """Split ``runnable`` into a shipment and the references it needs.

        Returns:
            The shipment, the references to pass along it, and a token to :meth:`release`
            once the runnable has reported.
        """
        threshold = self.threshold
        if threshold is None:
            return Shipment(runnable), [], ()
        slots: list[Slot] = [
            ("a", i) for i, v in enumerate(runnable.args) if approx_size(v) >= threshold
        ]
        slots += [("k", k) for k, v in runnable.kwargs.items() if approx_size(v) >= threshold]
        if not slots:
            return Shipment(runnable), [], ()
        shipped = copy.copy(runnable)
        args, kwargs = list(runnable.args), dict(runnable.kwargs)
        held = []
        for where, at in slots:
            held.append(self._acquire(args[at] if where == "a" else kwargs[at]))
            if where == "a":
                args[at] = None
            else:
                kwargs[at] = None
        shipped.args, shipped.kwargs = tuple(args), kwargs
        return Shipment(shipped, tuple(slots)), [h.ref for h in held], tuple(held)

    def _acquire(self, value: Any) -> _Shared:
        with self._lock:
            shared = self._shared.get(id(value))
            if shared is not None:
                shared.users += 1
                return shared
        ref = self._put(value)  # outside the lock: it may upload megabytes
        with self._lock:
            shared = self._shared.get(id(value))
            if shared is not None:  # another thread put it meanwhile: use theirs
                shared.users += 1
                return shared
            shared = self._shared[id(value)] = _Shared(value, ref, 1)
            return shared

    def release(self, held: tuple[_Shared, ...], *, lost: bool = False) -> None:
        """Drop the references a reported runnable held (the last user frees the value).

        With ``lost`` (its task failed on the cluster: a worker holding the value may be
        gone), the values are forgotten, so that a retry puts them again.
        """
        if not held:
            return
        with self._lock:
            for shared in held:
                shared.users -= 1
                if (lost or shared.users <= 0) and self._shared.get(id(shared.value)) is shared:
                    del self._shared[id(shared.value)]

    def __len__(self) -> int:
        return len(self._shared)


def probe(address: str, engine: str, timeout: float) -> None:
    """Raise :class:`ClusterUnavailableError` unless ``host:port`` in ``address`` accepts TCP.

    Addresses without a port (``"auto"``) are left to the engine.
    """
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterUnavailableError(
            f"cannot reach the {engine} cluster at {address!r} ({exc}): check the address and "
            "that the cluster is running, or give no address to start a local one",
            address=address,
        ) from exc


@dataclass(slots=True)
class _Task:
    runnable: Runnable
    done: Done
    held: tuple[_Shared, ...]
    handle: Any = None


def _unpickled(raw: bytes | BaseException) -> Outcome | BaseException:
    if isinstance(raw, BaseException):
        return raw
    try:
        outcome = pickle.loads(raw)
    except Exception as exc:  # a result whose type this process cannot import
        return exc
    if not isinstance(outcome, Outcome):
        return TypeError(f"a cluster task returned {type(outcome).__name__}, not an Outcome")
    return outcome


def optional_module(name: str, needs: str) -> Any:
    """Import an engine's package, or give ``None`` when it is not installed.

    A bare namespace package (a stray ``ray/`` directory in the working directory) is not
    the engine: the module must have ``needs``.
    """
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return module if hasattr(module, needs) else None


def refuse_options(executor: str, options: dict[str, Any], refused: dict[str, str]) -> None:
    """Raise :class:`UsageError` when ``options`` has one of ``refused`` (option: why)."""
    for option, why in refused.items():
        if option in options:
            raise UsageError(f"{executor} does not take {option}=: {why}")


def retried_by_policy(then: str) -> str:
    """Why an engine's option to retry a task that raised does nothing here; ``then``: what
    the engine still retries on its own."""
    return (
        "a step's exception is caught on the cluster worker and reported as the runnable's "
        "failure, so the engine never sees it to retry it; retry a failing step with its "
        f"policy, rf.Policy(max_retries=...) (with backoff, every attempt in the log). {then}"
    )


def check_large_value_bytes(value: object) -> None:
    """Raise :class:`UsageError` unless ``value`` is ``None`` or a whole number of bytes."""
    if value is not None and (type(value) is not int or value < 0):
        raise UsageError(
            f"large_value_bytes must be a whole number of bytes or None, not {value!r}"
        )


class _Reporter:
    """The threads, per process, that hand cluster results to runners.

    Engine callbacks only queue what ended. One thread collects the outcomes (a batch per
    executor: one Dask gather for every result that arrived together) and puts each in the
    mailbox of its ``done`` (one instance's worker); ``drivers`` threads take mailboxes and
    call ``done`` with what is in them, in order. One thread at a time empties a mailbox:
    results arriving for it meanwhile are handed over by that thread once it is free, so an
    instance's results are never reordered or handed over by two threads at once, while
    other instances' go to the other threads. Started on first use, the threads live as long
    as the process.
    """

    def __init__(self, drivers: int = DRIVERS) -> None:
        self.drivers = drivers
        self._queue: queue.SimpleQueue[tuple[ClusterExecutor, str, Any]] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[object] = queue.SimpleQueue()
        """Mailboxes (their keys) holding results that no thread is handing over yet."""
        self._boxes: dict[object, deque[tuple[Done, Runnable]]] = {}
        self._boxes_lock = threading.Lock()
        self._started = False
        self._lock = threading.Lock()

    def put(self, executor: ClusterExecutor, key: str, completed: Any) -> None:
        if not self._started:
            self._start()
        self._queue.put((executor, key, completed))

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            threading.Thread(
                target=self._loop, name="runeflow-cluster-results", daemon=True
            ).start()
            for i in range(self.drivers):
                threading.Thread(
                    target=self._drive, name=f"runeflow-cluster-driver-{i}", daemon=True
                ).start()
            self._started = True

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty() and len(batch) < 256:
                batch.append(self._queue.get())
            self._deliver(batch)
            del batch  # hold no finished task while waiting: the cluster may free it

    def _deliver(self, batch: list[tuple[ClusterExecutor, str, Any]]) -> None:
        by_executor: dict[ClusterExecutor, list[tuple[str, Any]]] = {}
        for executor, key, completed in batch:
            by_executor.setdefault(executor, []).append((key, completed))
        for executor, items in by_executor.items():
            try:
                reported = executor._report(items)
            except Exception:  # never lose the thread: other executors depend on it
                log.exception("reporting results from %s failed", executor.engine)
                continue
            for done, runnable in reported:
                self._post(done, runnable)

    def _post(self, done: Done, runnable: Runnable) -> None:
        """Put ``runnable`` in the mailbox of ``done``; queue the mailbox if it was empty."""
        try:
            key: object = done
            hash(key)
        except TypeError:  # unique while its mailbox, which holds ``done``, exists
            key = id(done)
        with self._boxes_lock:
            box = self._boxes.get(key)
            if box is not None:  # a driver has it (or will): it hands this over too
                box.append((done, runnable))
                return
            self._boxes[key] = deque(((done, runnable),))
        self._ready.put(key)

    def _drive(self) -> None:
        while True:
            self._hand_over(self._ready.get())

    def _hand_over(self, key: object) -> None:
        """Call back with what is in mailbox ``key`` until it is empty; then drop it."""
        boxes, lock = self._boxes, self._boxes_lock
        while True:
            with lock:
                box = boxes[key]
                if not box:
                    del boxes[key]
                    return
                done, runnable = box.popleft()
            try:
                done(runnable)
            except Exception:  # never lose the thread: the runner logs its own failures
                log.exception("reporting %r from a cluster failed", runnable)


_REPORTER = _Reporter()


class ClusterExecutor:
    """Base of the Dask and Ray executors: bookkeeping, references and reporting.

    Subclasses provide :meth:`_put`, :meth:`_send`, :meth:`_cancel_task`, :meth:`_collect`,
    :meth:`_wait_all` and :meth:`_close`; each task is known by a key made at submission.
    """

    name = "cluster"
    engine = "cluster"
    address: str
    """Where the cluster is (the scheduler's address, the Ray cluster's GCS address)."""

    def __init__(self, large_value_bytes: int | None, pickler: Any, *, owns: bool) -> None:
        check_large_value_bytes(large_value_bytes)
        self.references = References(self._put, large_value_bytes)
        """The large values currently shared in cluster memory."""
        self._pickler = pickler
        self._modules_seen = 0
        self._owns = owns
        self._tasks: dict[str, _Task] = {}
        self._by_runnable: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Runnables submitted and not reported yet (nor cancelled)."""
        with self._lock:
            return len(self._by_runnable)

    # --- the Executor protocol ------------------------------------------------------------

    def submit(self, runnable: Runnable, done: Done) -> None:
        """Ship ``runnable`` to the cluster; ``done`` is called from a reporting thread."""
        if self._closed:
            done(runnable.fail(DispatchError(f"the {self.engine} executor is shut down")))
            return
        key = f"{runnable.component}-{uuid.uuid4().hex}"
        held: tuple[_Shared, ...] = ()
        try:
            shipment, refs, held = self.references.ship(runnable)
            payload = self._pack(shipment)
            task = _Task(runnable, done, held)
            with self._lock:
                self._tasks[key] = task
                self._by_runnable[runnable.id] = key
            task.handle = self._send(key, runnable.component, payload, refs)
        except Exception as exc:
            with self._lock:
                self._tasks.pop(key, None)
                if self._by_runnable.get(runnable.id) == key:
                    del self._by_runnable[runnable.id]
            self.references.release(held)
            done(runnable.fail(self._dispatch_error(runnable, exc)))

    def cancel(self, runnable_id: str) -> bool:
        """Cancel the cluster task running ``runnable_id`` (its late report is dropped)."""
        with self._lock:
            key = self._by_runnable.pop(runnable_id, None)
            task = self._tasks.get(key) if key is not None else None
        if task is None or task.handle is None:
            return False
        try:
            self._cancel_task(task.handle)
        except Exception as exc:  # the cluster is gone: nothing left to cancel
            log.warning("cancelling %s on %s failed: %s", runnable_id, self.engine, exc)
            return False
        return True

    def shutdown(self, wait: bool = True) -> None:
        """Wait for (or cancel) the tasks in flight; close the client or cluster it opened.

        An executor on a client or cluster it did not open stays usable (a policy in a
        definition may serve several runners, one after the other).
        """
        if self._closed:
            return
        with self._lock:
            handles = [t.handle for t in self._tasks.values() if t.handle is not None]
        try:
            if wait:
                self._wait_all(handles)
            else:
                for handle in handles:
                    self._cancel_task(handle)
        except Exception as exc:
            log.warning("%s tasks in flight at shutdown: %s", self.engine, exc)
        if self._owns:
            self._closed = True
            self._close()

    def _pack(self, shipment: Shipment) -> bytes:
        if len(sys.modules) != self._modules_seen:  # a workflow file may have been loaded
            self._modules_seen = len(sys.modules)
            for name, module in list(sys.modules.items()):
                if name.startswith(_FILE_MODULES):
                    self._pickler.register_pickle_by_value(module)
        return bytes(self._pickler.dumps(shipment))

    # --- reporting --------------------------------------------------------------------

    def _arrived(self, key: str, completed: Any) -> None:
        """Engine callback: a task ended. Only queue it (engine threads must not block)."""
        _REPORTER.put(self, key, completed)

    def _report(self, items: list[tuple[str, Any]]) -> list[tuple[Done, Runnable]]:
        """Turn ended tasks into executed runnables, each with the callback to hand it to."""
        collected: list[tuple[str, bytes | BaseException]]
        reported: list[tuple[Done, Runnable]] = []
        try:
            collected = self._collect(items)
        except Exception as exc:  # the cluster connection broke while fetching results
            collected = [(key, exc) for key, _ in items]
        for key, raw in collected:
            with self._lock:
                task = self._tasks.pop(key, None)
                if task is not None and self._by_runnable.get(task.runnable.id) == key:
                    del self._by_runnable[task.runnable.id]
            if task is None:
                continue
            runnable = task.runnable
            outcome = _unpickled(raw)
            self.references.release(task.held, lost=not isinstance(outcome, Outcome))
            if isinstance(outcome, Outcome):
                runnable.status, runnable.result, runnable.error = (
                    outcome.status,
                    outcome.result,
                    outcome.error,
                )
                runnable.duration = outcome.duration
                runnable.worker_address = outcome.worker_address
            else:
                runnable.fail(outcome)
            reported.append((task.done, runnable))
        return reported

    def _dispatch_error(self, runnable: Runnable, exc: Exception) -> Exception:
        if isinstance(exc, DispatchError):
            return exc
        error = DispatchError(
            f"component {runnable.component!r} cannot be sent to the {self.engine} cluster at "
            f"{self.address}: {type(exc).__name__}: {exc}",
            component=runnable.component,
        )
        error.__cause__ = exc
        return error

    # --- engine hooks ---------------------------------------------------------------------

    def _put(self, value: Any) -> Any:
        """Put ``value`` into cluster memory; return its reference."""
        raise NotImplementedError

    def _send(self, key: str, component: str, payload: bytes, refs: list[Any]) -> Any:
        """Start the task; arrange for ``self._arrived(key, ...)`` when it ends."""
        raise NotImplementedError

    def _cancel_task(self, handle: Any) -> None:
        """Cancel the task behind ``handle``."""
        raise NotImplementedError

    def _collect(self, items: list[tuple[str, Any]]) -> list[tuple[str, bytes | BaseException]]:
        """Turn ended tasks into pickled outcomes, or the exception that ended them."""
        raise NotImplementedError

    def _wait_all(self, handles: list[Any]) -> None:
        """Block until every task behind ``handles`` has ended."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release what this executor opened (a client, a local cluster, Ray)."""
        raise NotImplementedError
