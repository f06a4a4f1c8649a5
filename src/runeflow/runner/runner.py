"""The Runner: many workflow instances, run in parallel, checkpointed to a store.

A runner keeps a registry of instances (each driven by a :class:`~runeflow.runner.worker.Worker`),
dispatches their runnables to executors, applies results as they arrive, checkpoints to its
store, and on start recovers every unfinished instance it has a definition for. Every call
that names an instance finds it in the store when it is not loaded, so a new process can
read, feed, resume or stop any stored instance.

All methods are thread-safe and blocking; each has an ``async`` twin prefixed with ``a``
(``arun``, ``astart_workflow``...) and the runner is an async context manager.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from runeflow.errors import (
    DefinitionError,
    InstanceStateError,
    RuneflowError,
    WorkflowDefinitionError,
    WorkflowNotFoundError,
)
from runeflow.model.components import Component
from runeflow.model.events import Event
from runeflow.model.replay import load_definition
from runeflow.model.workflow import Workflow
from runeflow.recovery import Rehydration, load_workflow
from runeflow.runner.executors import Executor, make_executor
from runeflow.runner.policies import Policies, Policy
from runeflow.runner.telemetry import Handler, Telemetry, TelemetryEvent
from runeflow.runner.timers import Clock, Scheduler, SystemClock
from runeflow.runner.worker import Checkpoint, Hooks, InstanceInfo, Status, Worker
from runeflow.stores.base import Store, Timer
from runeflow.stores.memory import MemoryStore

__all__ = ["Runner"]

log = logging.getLogger("runeflow.runner")

_MISSING: Any = object()
_RESTART_LIMIT = 3
_RESTART_WINDOW = 60.0


class Runner:
    """Runs many workflow instances with parallel dispatch, policies and checkpoints.

    Args:
        store: where instances are checkpointed (default: a new :class:`MemoryStore`).
        workflows: definitions to register (Workflows, or functions building one), keyed by
            workflow name; instances found in the store are rebuilt from them.
        executor: ``"threads"`` (default), ``"inline"``, ``"processes"``, ``"asyncio"`` or an
            :class:`~runeflow.runner.executors.Executor`.
        max_concurrency: runnables executing at once across the runner (default: no limit
            beyond the executor's own).
        checkpoint: ``"every_cycle"`` (default), ``"on_complete"``, ``"manual"`` or
            ``rf.every_n(n)``.
        clock: time source for retries, timeouts and timers (``rf.FakeClock`` in tests).
        policies: per-component :class:`Policy` table (see :mod:`runeflow.runner.policies`).
        hooks: callbacks for every instance (see :class:`Hooks`).
        recover: recover unfinished instances from the store when the runner starts.
        lease_ttl: seconds a runner's claim on an instance lasts without renewal.
        max_workers: size of the built-in executors' pools.
        poll_interval: when set, poll the store this often (seconds) for due timers and for
            events recorded by other processes, and renew leases (see :meth:`serve`).
    """

    def __init__(
        self,
        store: Store | None = None,
        workflows: Iterable[Workflow | Callable[[], Workflow]] = (),
        *,
        executor: str | Executor = "threads",
        max_concurrency: int | None = None,
        checkpoint: str | Checkpoint = "every_cycle",
        clock: Clock | None = None,
        policies: dict[str, Policy] | Policy | None = None,
        hooks: Hooks | None = None,
        recover: bool = True,
        lease_ttl: float = 30.0,
        max_workers: int | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.clock: Clock = clock or SystemClock()
        self.checkpoint_strategy = Checkpoint.parse(checkpoint)
        self.policies = Policies(policies)
        self._trivial_policies = self.policies.is_trivial()
        self.hooks = hooks
        self.telemetry = Telemetry()
        self.rng = random.Random()
        self.lease_ttl = lease_ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._max_workers = max_workers
        self._executor = make_executor(executor, max_workers)
        self._executors: dict[str, Executor] = {self._executor.name: self._executor}
        self._executor_lock = threading.Lock()
        self._max_concurrency = max_concurrency
        self._slots = 0
        self._slot_lock = threading.Lock()
        self._starved: deque[Worker] = deque()
        self._workers: dict[str, Worker] = {}
        self._registry_lock = threading.RLock()
        self._definitions: dict[str, Workflow] = {}
        self._unrecoverable: dict[str, str] = {}
        self._closed = False
        self._lateness: list[float] = []
        self._poll_interval = poll_interval
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        self.scheduler = Scheduler(self.clock)
        for definition in workflows:
            self.register(definition)
        self.store.setup()
        if recover:
            self.recover_all()
        if poll_interval is not None:
            self._start_poller(poll_interval)
        self._lease_keeper = threading.Thread(
            target=self._keep_leases, name="runeflow-leases", daemon=True
        )
        self._lease_keeper.start()

    # --- registry -------------------------------------------------------------------------

    def register(self, definition: Workflow | Callable[[], Workflow] | str) -> str:
        """Register a definition (a Workflow, a builder, or an import path); return its name."""
        wf = load_definition(definition)
        with self._registry_lock:
            self._definitions[wf.name] = wf
        return wf.name

    def _definition_for(self, name: str, metadata: dict[str, Any]) -> Workflow:
        with self._registry_lock:
            wf = self._definitions.get(name)
        if wf is not None:
            return wf
        path = metadata.get("definition")
        if isinstance(path, str):
            return load_definition(path)
        raise DefinitionError(
            f"no definition for workflow {name!r}: register it with "
            f"Runner(workflows=[build_{name}]) or runner.register(...), or start instances "
            "with definition='package.module:attribute' so the runner can import it"
        )

    # --- starting -------------------------------------------------------------------------

    def start_workflow(
        self,
        workflow_id: str,
        workflow: Workflow | Callable[[], Workflow] | str,
        *,
        hooks: Hooks | None = None,
        max_concurrency: int | None = None,
        definition: str | None = None,
    ) -> str:
        """Start an instance of ``workflow`` under ``workflow_id`` (nothing runs until ``run``).

        Args:
            workflow_id: the instance's id, unique in this runner's store.
            workflow: a Workflow (its structure is shared, its state is not), a builder, a
                registered workflow name, or an import path.
            hooks: callbacks for this instance only.
            max_concurrency: runnables of this instance executing at once.
            definition: import path (``"pkg.mod:build"``) recorded so that any process can
                rebuild the instance without registering it.

        Raises:
            InstanceStateError: an instance with this id already exists.
        """
        self._check_open()
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValueError("workflow_id must be a non-empty string")
        wf = self._instantiate(workflow)
        metadata = {"definition": definition or _import_path(workflow)}
        with self._registry_lock:
            if workflow_id in self._workers or not self.store.create(
                workflow_id,
                definition_name=wf.name,
                definition_hash=wf.definition_hash(),
                status=Status.IDLE.value,
                metadata={k: v for k, v in metadata.items() if v},
            ):
                raise InstanceStateError(
                    f"an instance with id {workflow_id!r} already exists: pick another id, or "
                    "use run()/resume() to continue it",
                    workflow_id=workflow_id,
                )
            worker = Worker(
                self, workflow_id, wf, hooks=hooks or self.hooks, max_concurrency=max_concurrency
            )
            worker.status = Status.IDLE
            self._workers[workflow_id] = worker
            self._acquire_lease(workflow_id)
        worker.stored_status = Status.IDLE.value  # the build events go with the first cycle
        self._emit("workflow", "start", wf.name, workflow_id)
        return workflow_id

    def start_instance(
        self,
        definition: Workflow | Callable[[], Workflow] | str,
        context: Any,
        id: str | None = None,
        **options: Any,
    ) -> str:
        """Start an instance and feed it ``context`` as its first input; return its id."""
        workflow_id = id or uuid.uuid4().hex
        self.start_workflow(workflow_id, definition, **options)
        self.run(workflow_id, context)
        return workflow_id

    def _instantiate(self, workflow: Workflow | Callable[[], Workflow] | str) -> Workflow:
        if isinstance(workflow, str):
            with self._registry_lock:
                registered = self._definitions.get(workflow)
            workflow = registered if registered is not None else workflow
        wf = load_definition(workflow)
        if not wf._events:  # a definition: share its structure, never its state
            wf = wf.fresh()
        with self._registry_lock:
            self._definitions.setdefault(wf.name, wf)
        return wf

    # --- feeding and reading --------------------------------------------------------------

    def run(
        self,
        workflow_id: str,
        input: Any,
        run_context: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Feed ``input`` to an instance; work proceeds in the background (see ``wait``).

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: the instance is stopped or failed.
        """
        worker = self._worker(workflow_id)
        with worker.lock:
            self._check_accepts(worker, "input")
            worker.status = Status.RUNNING
            worker.wf.plan_eagerly(input, run_context=run_context)
            worker.kick()

    def wait(self, workflow_id: str, timeout: float | None = None) -> InstanceInfo:
        """Block until the instance is not ``running``; return its info.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        worker = self._worker(workflow_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with worker.lock:
            while worker.status is Status.RUNNING:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"instance {workflow_id!r} still running after {timeout}s "
                        f"({len(worker.running)} runnable(s) executing)"
                    )
                worker.settled.wait(timeout=remaining)
            return worker.info()

    def get_results(
        self,
        workflow_id: str,
        components: Sequence[str | Component] | None = _MISSING,
        *,
        facts: bool = False,
        all: bool = False,
    ) -> Any:
        """Results of an instance.

        Without arguments: its raw productions (every produced value, in order). With
        ``components=[...]`` (or ``None`` for the output ports), ``facts`` or ``all``: the
        structured results of :meth:`Workflow.results`.
        """
        worker = self._worker(workflow_id)
        with worker.lock:
            if components is _MISSING and not facts and not all:
                return worker.wf.raw_productions()
            names = None if components is _MISSING else components
            return worker.wf.results(names, facts=facts, all=all)

    def get_workflow(self, workflow_id: str) -> Workflow:
        """The instance's workflow (live object: read it, don't drive it)."""
        return self._worker(workflow_id).wf

    def lookup(self, workflow_id: str) -> Workflow | None:
        """The instance's workflow if it is loaded in this runner, else ``None``."""
        worker = self._workers.get(workflow_id)
        return worker.wf if worker is not None else None

    def info(self, workflow_id: str) -> InstanceInfo:
        """Status, counts, open waits and timers of an instance (loaded or only stored)."""
        worker = self._workers.get(workflow_id)
        if worker is not None:
            with worker.lock:
                return worker.info()
        if workflow_id in self._unrecoverable:
            meta = self.store.get(workflow_id)
            return InstanceInfo(
                workflow_id=workflow_id,
                name=meta.definition_name,
                status=Status(meta.status),
                error=self._unrecoverable[workflow_id],
                loaded=False,
                updated_at=meta.updated_at,
            )
        return self._worker(workflow_id).info()

    def list_workflows(self, status: str | Iterable[str] | None = None) -> list[str]:
        """Ids of the instances in the store (and loaded here), optionally by status."""
        wanted = None if status is None else {status} if isinstance(status, str) else set(status)
        ids: dict[str, str] = {m.workflow_id: m.status for m in self.store.list()}
        for wid, worker in list(self._workers.items()):
            ids[wid] = worker.status.value
        return [wid for wid, st in ids.items() if wanted is None or st in wanted]

    # --- control --------------------------------------------------------------------------

    def checkpoint(self, workflow_id: str) -> int | None:
        """Append the instance's new events to the store now; return the store cursor."""
        worker = self._worker(workflow_id)
        with worker.lock:
            return worker.checkpoint()

    def stop(self, workflow_id: str, persist: bool = True) -> None:
        """Stop an instance: running work is abandoned and it takes no more input.

        With ``persist=True`` its state and the ``stopped`` status are checkpointed; with
        ``persist=False`` it is only unloaded from this runner, and the store keeps its last
        checkpoint (so it can be recovered later).
        """
        worker = self._worker(workflow_id)
        with worker.lock:
            worker.stop()
            if persist:
                worker.checkpoint()
        with self._registry_lock:
            if not persist:
                self._workers.pop(workflow_id, None)
            self.store.release_lease(workflow_id, self.owner)

    def recover(
        self, workflow_id: str, rehydration: Rehydration = "full", *, migrate: bool = False
    ) -> InstanceInfo:
        """(Re)load an instance from the store and continue it; return its info.

        A loaded instance is replaced by the stored one (its unsaved changes are lost).
        """
        with self._registry_lock:
            old = self._workers.pop(workflow_id, None)
        if old is not None:
            with old.lock:
                old.stop()
        worker = self._load(workflow_id, rehydration=rehydration, migrate=migrate)
        return worker.info()

    def recover_all(self) -> list[str]:
        """Load every unfinished (running or waiting) instance of the store; return their ids.

        Instances whose definition is missing or changed are reported (log line and
        ``info(id).error``) and left untouched in the store.
        """
        recovered = []
        for meta in self.store.list([Status.RUNNING.value, Status.WAITING.value]):
            if meta.workflow_id in self._workers:
                continue
            try:
                self._load(meta.workflow_id)
            except (DefinitionError, WorkflowDefinitionError) as exc:
                self._unrecoverable[meta.workflow_id] = str(exc)
                log.warning("instance %r not recovered: %s", meta.workflow_id, exc)
            except InstanceStateError as exc:
                log.info("instance %r not recovered: %s", meta.workflow_id, exc)
            else:
                recovered.append(meta.workflow_id)
        return recovered

    # --- events and timers ----------------------------------------------------------------

    def resume(
        self, workflow_id: str, event: str, payload: Any = None, step: str | None = None
    ) -> None:
        """Deliver an external event to the instance's open wait that accepts it.

        The waiting step produces an ``rf.Signal(event, payload, step, input)``. Delivery is
        durable: the event is in the store before this returns. When another process runs
        the instance, the event is recorded in the store and applied by that process.

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: the instance is stopped or failed, has no open wait (on
                ``step``), or no open wait accepts ``event``; nothing is changed.
        """
        try:
            worker = self._worker(workflow_id)
        except InstanceStateError as exc:
            if "another runner" not in str(exc):
                raise
            self._resume_remote(workflow_id, event, payload, step)
            return
        with worker.lock:
            worker.deliver(event, payload, step)

    def schedule_resume(self, workflow_id: str, step: str, delay: float) -> str:
        """Deliver ``timeout`` to the wait on ``step`` after ``delay`` seconds; return the
        timer's id. The timer is durable: it survives restarts and fires at most once."""
        worker = self._worker(workflow_id)
        with worker.lock:
            self._check_accepts(worker, "timers")
            if not any(w.name == step for w in worker.wf.graph.waits()):
                raise InstanceStateError(
                    f"instance {workflow_id!r} has no await_event step {step!r} "
                    f"(its waits: {[w.name for w in worker.wf.graph.waits()]})",
                    workflow_id=workflow_id,
                )
            if delay < 0:
                raise ValueError("delay must be 0 or more seconds")
            timer_id = uuid.uuid4().hex
            worker.schedule(timer_id, step, self.clock.now() + delay)
            if worker.status is Status.IDLE:
                worker.status = Status.WAITING
                worker.waiting_since = self.clock.now()
            worker.checkpoint()
            return timer_id

    def cancel_timer(self, workflow_id: str, timer_id: str) -> bool:
        """Cancel a pending timer; return False when it already fired or is unknown."""
        worker = self._worker(workflow_id)
        with worker.lock:
            return worker.cancel_timer(timer_id)

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set: fire timers and apply events recorded by other
        processes (polling the store), renew leases. Call :meth:`shutdown` afterwards."""
        if self._poller is None:
            self._start_poller(self._poll_interval or 0.2)
        (stop or threading.Event()).wait()

    def timer_lateness(self) -> list[float]:
        """Seconds between each fired timer's due time and its firing, in firing order."""
        return list(self._lateness)

    def fired(self, worker: Worker, timer: Any, now: float) -> None:
        """Bookkeeping when a worker fires a timer."""
        self._lateness.append(max(0.0, now - timer.fire_at))

    def _resume_remote(self, workflow_id: str, event: str, payload: Any, step: str | None) -> None:
        meta = self.store.get(workflow_id)
        definition = self._definition_for(meta.definition_name, meta.metadata)
        wf = self._load_workflow(workflow_id, definition, "full", False)
        if meta.status in (Status.STOPPED.value, Status.FAILED.value):
            raise InstanceStateError(
                f"instance {workflow_id!r} is {meta.status} and takes no more events",
                workflow_id=workflow_id,
                status=meta.status,
            )
        try:
            wf.find_wait(event, step)
        except InstanceStateError as exc:
            raise InstanceStateError(
                f"instance {workflow_id!r}: {exc}", workflow_id=workflow_id
            ) from None
        self.store.codec.encode(payload)
        self.store.schedule_timer(
            Timer(
                timer_id=f"event-{uuid.uuid4().hex}",
                workflow_id=workflow_id,
                fire_at=0.0,
                payload={"kind": "event", "event": event, "payload": payload, "step": step},
            )
        )

    def _start_poller(self, interval: float) -> None:
        self._poll_interval = interval
        self._poller = threading.Thread(
            target=self._poll_loop, args=(interval,), name="runeflow-poller", daemon=True
        )
        self._poller.start()

    def _poll_loop(self, interval: float) -> None:
        while not self._stop_polling.wait(interval):
            try:
                self.poll_store()
            except Exception:
                log.exception("polling the store failed")

    def _keep_leases(self) -> None:
        """Renew this runner's leases every third of their time to live (real time)."""
        while not self._stop_polling.wait(self.lease_ttl / 3):
            for wid, worker in list(self._workers.items()):
                if worker.status is Status.STOPPED:
                    continue
                try:
                    if not self.store.renew_lease(wid, self.owner, self.lease_ttl):
                        log.warning("lost the lease on %r to %s", wid, self.store.lease_owner(wid))
                except Exception:
                    log.exception("renewing the lease on %r failed", wid)

    def poll_store(self) -> int:
        """Handle due store timers: events from other processes, timers of instances not
        loaded here (loading them). Return how many were handled."""
        handled = 0
        for timer in self.store.due_timers(self.clock.now(), limit=500):
            try:
                worker = self._worker(timer.workflow_id)
            except (InstanceStateError, WorkflowNotFoundError, DefinitionError) as exc:
                log.debug("timer %s not handled here: %s", timer.timer_id, exc)
                continue
            kind = timer.payload.get("kind")
            with worker.lock:
                if kind == "event":
                    try:
                        worker.deliver(
                            timer.payload["event"],
                            timer.payload.get("payload"),
                            timer.payload.get("step"),
                        )
                    except InstanceStateError as exc:
                        log.warning("event for %r dropped: %s", timer.workflow_id, exc)
                    self.store.cancel_timer(timer.timer_id)
                elif timer.timer_id in worker.wf._timers:
                    worker.arm(worker.wf._timers[timer.timer_id])
                else:
                    self.store.cancel_timer(timer.timer_id)  # its outcome is in the log
            handled += 1
        return handled

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Receive telemetry events; returns a function that unsubscribes."""
        return self.telemetry.subscribe(handler)

    def shutdown(self, wait: bool = True) -> None:
        """Checkpoint every loaded instance, stop the scheduler and the executors."""
        if self._closed:
            return
        self._closed = True
        self._stop_polling.set()
        for thread in (self._poller, self._lease_keeper):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        for wid, worker in list(self._workers.items()):
            with worker.lock:
                try:
                    worker.checkpoint()
                except RuneflowError as exc:
                    log.error("final checkpoint of %r failed: %s", wid, exc)
            self.store.release_lease(wid, self.owner)
        self.scheduler.close()
        for executor in self._executors.values():
            executor.shutdown(wait=wait)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.shutdown)

    # --- async twins ----------------------------------------------------------------------

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

    # --- internals used by workers ----------------------------------------------------------

    def policy_for(self, wf: Workflow, component: str) -> Policy | None:
        """The policy of a component, or ``None`` when no policy does anything."""
        if self._trivial_policies:
            return None
        return self.policies.for_component(wf.graph.components[component])

    def executor_for(self, policy: Policy | None) -> Executor:
        """The executor a runnable goes to."""
        if policy is None or policy.executor is None:
            return self._executor
        spec = policy.executor
        name = spec if isinstance(spec, str) else spec.name
        with self._executor_lock:
            executor = self._executors.get(name)
            if executor is None:
                executor = make_executor(spec, self._max_workers)
                self._executors[name] = executor
        return executor

    def take_slot(self, worker: Worker) -> bool:
        """Reserve a runner-wide execution slot (always granted without a limit)."""
        if self._max_concurrency is None:
            return True
        with self._slot_lock:
            if self._slots < self._max_concurrency:
                self._slots += 1
                return True
            if worker not in self._starved:
                self._starved.append(worker)
            return False

    def release_slot(self) -> None:
        """Give back a slot taken with :meth:`take_slot`."""
        if self._max_concurrency is None:
            return
        with self._slot_lock:
            self._slots -= 1

    def pump_starved(self) -> None:
        """Let instances that waited for a slot dispatch (called outside worker locks)."""
        if self._max_concurrency is None:
            return
        while True:
            with self._slot_lock:
                if not self._starved or self._slots >= self._max_concurrency:
                    return
                worker = self._starved.popleft()
            worker.kick()

    def append(self, workflow_id: str, events: list[Event], status: str) -> int:
        """Checkpoint through the store, with telemetry."""
        if not self.telemetry.active:
            return self.store.append(workflow_id, events, status=status)
        start = time.perf_counter()
        try:
            cursor = self.store.append(workflow_id, events, status=status)
        except Exception as exc:
            self._emit(
                "store", "exception", "append", workflow_id, time.perf_counter() - start, str(exc)
            )
            raise
        self._emit(
            "store",
            "stop",
            "append",
            workflow_id,
            time.perf_counter() - start,
            attributes={"events": len(events), "cursor": cursor},
        )
        return cursor

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun."""
        return self._closed

    def worker_crashed(self, worker: Worker, exc: Exception) -> None:
        """Restart a worker from its last checkpoint, within a restart-intensity limit."""
        if self._closed:
            log.debug("instance %r stopped by shutdown: %r", worker.id, exc)
            return
        now = time.monotonic()
        worker.restarts = [t for t in worker.restarts if now - t < _RESTART_WINDOW] + [now]
        log.error("instance %r hit an internal error: %r", worker.id, exc, exc_info=exc)
        if len(worker.restarts) > _RESTART_LIMIT:
            worker.stop()
            worker.status = Status.FAILED
            worker.error = (
                f"internal error, {len(worker.restarts)} restarts within {_RESTART_WINDOW:g}s: "
                f"{exc!r}"
            )
            try:
                self.store.set_status(worker.id, Status.FAILED.value)
            except RuneflowError:
                log.exception("could not record the failure of %r", worker.id)
            worker.notify_settled()
            return
        restarts = worker.restarts
        threading.Thread(
            target=self._restart,
            args=(worker.id, restarts),
            daemon=True,
            name=f"runeflow-restart-{worker.id}",
        ).start()

    def _restart(self, workflow_id: str, restarts: list[float]) -> None:
        with self._registry_lock:
            old = self._workers.pop(workflow_id, None)
        if old is not None:
            with old.lock:
                old.stop()
        try:
            worker = self._load(workflow_id)
        except RuneflowError as exc:
            log.error("could not restart %r: %s", workflow_id, exc)
            return
        worker.restarts = restarts

    # --- loading ----------------------------------------------------------------------------

    def _worker(self, workflow_id: str) -> Worker:
        worker = self._workers.get(workflow_id)
        if worker is not None:
            return worker
        self._check_open()
        return self._load(workflow_id)

    def _load(
        self, workflow_id: str, *, rehydration: Rehydration = "full", migrate: bool = False
    ) -> Worker:
        with self._registry_lock:
            worker = self._workers.get(workflow_id)
            if worker is not None:
                return worker
            if not self.store.exists(workflow_id):
                raise WorkflowNotFoundError(workflow_id)
            meta = self.store.get(workflow_id)
            definition = self._definition_for(meta.definition_name, meta.metadata)
            self._acquire_lease(workflow_id)
            wf = self._load_workflow(workflow_id, definition, rehydration, migrate)
            worker = Worker(self, workflow_id, wf, hooks=self.hooks)
            worker.stored_status = meta.status
            self._workers[workflow_id] = worker
            self._unrecoverable.pop(workflow_id, None)
        with worker.lock:
            if meta.status in (Status.STOPPED.value, Status.FAILED.value):
                worker.status = Status(meta.status)
                worker.error = f"loaded from the store as {meta.status}"
                return worker
            wf.requeue_in_flight()
            worker.rearm()
            worker.status = Status.RUNNING
            worker.kick()
        return worker

    def _load_workflow(
        self, workflow_id: str, definition: Workflow, rehydration: Rehydration, migrate: bool
    ) -> Workflow:
        if self.store.cursor(workflow_id) == 0:  # started, but no cycle ran yet
            return definition.fresh()
        return load_workflow(
            self.store, workflow_id, definition, rehydration=rehydration, migrate=migrate
        )

    def _acquire_lease(self, workflow_id: str) -> None:
        if self.store.acquire_lease(workflow_id, self.owner, self.lease_ttl):
            return
        holder = self.store.lease_owner(workflow_id)
        if holder is not None and _owner_is_dead(holder):
            self.store.release_lease(workflow_id, holder)
            if self.store.acquire_lease(workflow_id, self.owner, self.lease_ttl):
                return
        raise InstanceStateError(
            f"instance {workflow_id!r} is being run by another runner ({holder}); "
            "it can be loaded here once that runner stops or its lease expires",
            workflow_id=workflow_id,
        )

    def _check_accepts(self, worker: Worker, what: str) -> None:
        if worker.status.is_terminal:
            raise InstanceStateError(
                f"instance {worker.id!r} is {worker.status.value} and takes no more {what}"
                + (f" ({worker.error})" if worker.error else "")
                + "; start a new instance, or recover() it if it was stopped by mistake",
                workflow_id=worker.id,
                status=worker.status.value,
            )

    def _check_open(self) -> None:
        if self._closed:
            raise InstanceStateError("this runner has been shut down; create a new one")

    def _emit(
        self,
        subject: str,
        phase: str,
        name: str,
        workflow_id: str | None,
        duration: float | None = None,
        error: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        if self.telemetry.active:
            self.telemetry.emit(
                TelemetryEvent(
                    subject=subject,  # type: ignore[arg-type]
                    phase=phase,  # type: ignore[arg-type]
                    name=name,
                    workflow_id=workflow_id,
                    duration=duration,
                    error=error,
                    attributes=attributes or {},
                )
            )


def _import_path(obj: Any) -> str | None:
    """``module:qualname`` of a module-level builder function, when it has one."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if (
        callable(obj)
        and not isinstance(obj, Workflow)
        and module
        and qualname
        and module != "__main__"
        and "<" not in qualname
    ):
        return f"{module}:{qualname}"
    return None


def _owner_is_dead(owner: str) -> bool:
    """True when a lease owner ran on this host in a process that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
