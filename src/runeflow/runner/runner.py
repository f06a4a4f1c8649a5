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
import contextlib
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from runeflow.errors import (
    InstanceStateError,
    RuneflowError,
)
from runeflow.model.components import Component
from runeflow.model.events import Event
from runeflow.model.runnable import Runnable
from runeflow.model.workflow import Workflow, load_definition
from runeflow.recovery import Rehydration
from runeflow.runner.definitions import Definitions
from runeflow.runner.executors import Executor, check_executor, make_executor
from runeflow.runner.firing import run_due
from runeflow.runner.hosting import Hosting
from runeflow.runner.inbox import check_id, encode_refusing
from runeflow.runner.loading import Loading
from runeflow.runner.ownership import OwnedElsewhereError, Ownership
from runeflow.runner.policies import Policies, Policy
from runeflow.runner.retention import Retaining, Retention, Snapshots
from runeflow.runner.serving import Serving
from runeflow.runner.stored import send_command, stored_info, validate_event, wait_stored
from runeflow.runner.telemetry import Handler, Telemetry
from runeflow.runner.timers import Clock, Scheduler, SystemClock
from runeflow.runner.twins import AsyncTwins
from runeflow.runner.worker import (
    Checkpoint,
    Hooks,
    InstanceInfo,
    Status,
    Worker,
)
from runeflow.stores.base import Store, content_hash
from runeflow.stores.memory import MemoryStore

__all__ = ["Runner"]

log = logging.getLogger("runeflow.runner")

_MISSING: Any = object()


class Runner(Hosting, Loading, Serving, Retaining, AsyncTwins):
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
        lease_ttl: seconds a runner's claim on an instance lasts without renewal; another
            runner takes the instance over once it expires (at once when the owner was a
            process of this host that died).
        max_workers: size of the built-in executors' pools.
        poll_interval: when set, the runner *serves*: this often (seconds) it claims
            instances with work and no live owner, applies commands sent by other
            processes, fires due timers, and releases instances that have nothing left to do
            (see :meth:`serve`).
        max_instances: the most instances a serving runner claims (default: four times its
            executor's pool size); explicit starts are never refused.
        trusted_modules: modules (a package trusts its submodules) whose import paths,
            recorded with an instance started elsewhere, this runner may import to rebuild it.
            By default it imports nothing named by the store: it runs only the definitions
            it was given. ``"*"`` trusts every recorded path (a store no one else writes).
        snapshot_every: snapshot each instance every this many events, so that loading it
            reads the snapshot and the events after it (default: no snapshots).
        compact: with ``snapshot_every``, delete the events each snapshot covers, so a log
            keeps fewer than ``snapshot_every`` events past its snapshot (default: the whole
            history is kept). See :mod:`runeflow.runner.retention`.
        retention: a serving runner prunes, in the background, finished instances last
            updated longer ago than this (a ``timedelta`` or seconds; see :meth:`prune`).
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
        max_instances: int | None = None,
        trusted_modules: Iterable[str] = (),
        snapshot_every: int | None = None,
        compact: bool = False,
        retention: timedelta | float | None = None,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.snapshots = Snapshots.make(self.store, snapshot_every, compact)
        self._retention = Retention.make(self.store, retention)
        self.clock: Clock = clock or SystemClock()
        self.checkpoint_strategy = Checkpoint.parse(checkpoint)
        self.policies = Policies(policies)
        self._trivial_policies = self.policies.is_trivial()
        self._policy_cache: dict[tuple[Component, Policies | None], Policy | None] = {}
        for policy in self.policies.policies():
            check_executor(policy.executor)
        self.hooks = hooks
        self.telemetry = Telemetry()
        self.rng = random.Random()
        self.lease_ttl = lease_ttl
        self.ownership = Ownership(self.store, lease_ttl)
        self.owner = self.ownership.owner
        self._max_workers = max_workers
        self._executor = make_executor(executor, max_workers)
        pool = getattr(self._executor, "max_workers", None)
        self._max_instances = max_instances or 4 * (pool if isinstance(pool, int) else 8)
        self._wakeup = threading.Event()
        self._executors: dict[str, Executor] = {self._executor.name: self._executor}
        self._executor_lock = threading.Lock()
        self._max_concurrency = max_concurrency
        self._slots = 0
        self._slot_lock = threading.Lock()
        self._starved: deque[Worker] = deque()
        self._workers: dict[str, Worker] = {}
        self._registry_lock = threading.RLock()
        self.definitions = Definitions(trusted_modules)
        self._unrecoverable: dict[str, str] = {}
        self._checked_graph: object = None
        self._closed = False
        self._lateness: list[float] = []
        self._poll_interval = poll_interval
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        self.scheduler = Scheduler(self.clock)
        self.scheduler.run_batch = self._run_due
        for definition in workflows:
            self.register(definition)
        self.store.setup()
        if recover and poll_interval is None:  # a serving runner recovers by claiming
            self.recover_all()
        if poll_interval is not None:
            self._start_poller(poll_interval)
        self._lease_keeper = threading.Thread(
            target=self._keep_leases, name="runeflow-leases", daemon=True
        )
        self._lease_keeper.start()

    # --- registry -------------------------------------------------------------------------

    def register(self, definition: Workflow | Callable[[], Workflow] | str) -> str:
        """Register a definition (a Workflow, a builder, or an import path); return its name.

        Raises:
            WorkflowDefinitionError: it cannot be loaded, or it is invalid.
            UsageError: one of its policies names an unknown executor.
        """
        wf = self.definitions.register(definition)
        self._check_policies(wf)
        return wf.name

    def _check_policies(self, wf: Workflow) -> None:
        graph = wf.graph
        if graph.is_policy_free():  # cached per graph: nothing to check on each start
            return
        for comp in graph.components.values():
            if comp.policy is not None:
                check_executor(comp.policy.executor)
        if graph.policies is not None:
            for policy in graph.policies.policies():
                check_executor(policy.executor)

    def _definition_for(self, name: str, metadata: dict[str, Any]) -> Workflow:
        wf = self.definitions.for_instance(name, metadata)
        self._check_policies(wf)
        return wf

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

        The instance, its build events and this runner's lease are written in one
        transaction before this returns.

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
            StoreError: the store could not record it (nothing was created).
        """
        return self._start(
            workflow_id, workflow, _MISSING, None, hooks, max_concurrency, definition
        )

    def start_instance(
        self,
        definition: Workflow | Callable[[], Workflow] | str,
        context: Any,
        id: str | None = None,
        *,
        run_context: dict[str, dict[str, Any]] | None = None,
        hooks: Hooks | None = None,
        max_concurrency: int | None = None,
        import_path: str | None = None,
    ) -> str:
        """Start an instance and feed it ``context`` as its first input; return its id.

        Creating the instance and recording its input are one transaction, done before this
        returns. ``run_context``, ``hooks`` and ``max_concurrency`` are as for :meth:`run`
        and :meth:`start_workflow`; ``import_path`` is ``start_workflow``'s ``definition``.
        Retrying with the same ``id`` and an equal input returns the existing instance; a
        different input is refused.

        Raises:
            InstanceStateError: ``id`` exists with another definition or input.
            CodecError: the input cannot be stored (nothing was created).
            StoreError: the store could not record it (nothing was created;
                :class:`StoreUnavailableError`: unknown whether it was, retry with the same id).
        """
        workflow_id = uuid.uuid4().hex if id is None else id
        return self._start(
            workflow_id, definition, context, run_context, hooks, max_concurrency, import_path
        )

    def _start(
        self,
        workflow_id: str,
        workflow: Workflow | Callable[[], Workflow] | str,
        input: Any,
        run_context: dict[str, dict[str, Any]] | None,
        hooks: Hooks | None,
        max_concurrency: int | None,
        definition: str | None,
    ) -> str:
        self._check_open()
        check_id(workflow_id)
        wf = self._instantiate(workflow)
        metadata: dict[str, Any] = {"definition": definition or _import_path(workflow)}
        fed = input is not _MISSING
        ready: list[Runnable] = []
        if fed:
            data = encode_refusing(
                self.store.codec, input, f"the input of new instance {workflow_id!r}"
            )
            metadata["input"] = content_hash(data)
            wf.plan_eagerly(input, run_context=run_context)
            # dispatched in the create's transaction: the first cycle has nothing to write
            ready = wf.prepare_for_dispatch()
        events = wf.uncommitted_batch()
        status = Status.RUNNING if fed else Status.IDLE
        # Not under the registry lock: starts from several threads share store transactions.
        created = self.store.create(
            workflow_id,
            definition_name=wf.name,
            definition_hash=wf.definition_hash(),
            status=status.value,
            metadata={k: v for k, v in metadata.items() if v},
            events=events,
            owner=self.owner,
            ttl=self.lease_ttl,
        )
        if not created:  # a retry of a start that went through: make sure it runs somewhere
            self._check_same_start(workflow_id, wf, metadata.get("input"))
            self._local_worker(workflow_id)
            return workflow_id
        with self._registry_lock:
            if workflow_id in self._workers:  # loaded from the store meanwhile: it runs there
                return workflow_id
            worker = self._started(workflow_id, wf, status, hooks, max_concurrency, events)
        if self.telemetry.active:
            self._emit("workflow", "start", wf.name, workflow_id)
        if fed:
            worker.ready.extend(ready)
            worker.kick()
        return workflow_id

    def _started(
        self,
        workflow_id: str,
        wf: Workflow,
        status: Status,
        hooks: Hooks | None,
        max_concurrency: int | None,
        events: Sequence[Event],
    ) -> Worker:
        """Register the worker of an instance this runner just created (token 1)."""
        worker = Worker(
            self,
            workflow_id,
            wf,
            hooks=hooks or self.hooks,
            max_concurrency=max_concurrency,
            token=1,
            cursor=len(events),
        )
        worker.status = status
        worker.stored_status = status.value
        self._workers[workflow_id] = worker
        return worker

    def _check_same_start(self, workflow_id: str, wf: Workflow, input_hash: str | None) -> None:
        """A start found the id taken: accept a retry of the same start, refuse the rest."""
        meta = self.store.get(workflow_id)
        if input_hash is not None and (meta.definition_name, meta.metadata.get("input")) == (
            wf.name,
            input_hash,
        ):
            return
        what = "a different input" if input_hash is not None else "this id"
        raise InstanceStateError(
            f"an instance with id {workflow_id!r} already exists ({meta.definition_name}, "
            f"{meta.status}) with {what}: pick another id, or use run()/resume() to continue it",
            workflow_id=workflow_id,
            status=meta.status,
        )

    def _instantiate(self, workflow: Workflow | Callable[[], Workflow] | str) -> Workflow:
        if isinstance(workflow, str):
            registered = self.definitions.get(workflow)
            workflow = registered if registered is not None else workflow
        wf = load_definition(workflow)
        if not wf._events:  # a definition: share its structure, never its state
            wf = wf.fresh()
        graph = wf._g
        if self._checked_graph is not graph:  # checked once per definition, not per start
            wf.validate()
            self._check_policies(wf)
            self.definitions.setdefault(wf)
            self._checked_graph = graph
        return wf

    # --- feeding and reading --------------------------------------------------------------

    def run(
        self,
        workflow_id: str,
        input: Any,
        run_context: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Feed ``input`` to an instance; work proceeds in the background (see ``wait``).

        The input is in the store before this returns (unless checkpoints are ``manual``).
        When another runner owns the instance, the input is recorded in the store as a
        command and applied there (``run_context`` cannot travel: it is never stored).

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: the instance is stopped or failed.
            CodecError: the input cannot be stored.
            StoreError: the store could not record it; nothing of it remains.
        """
        worker = self._local_worker(workflow_id)
        if worker is None:
            send_command(self.store, workflow_id, "input", input)
            return
        with worker.lock:
            self._check_accepts(worker, "input")
            encode_refusing(self.store.codec, input, f"the input for instance {workflow_id!r}")

            def feed() -> None:
                worker.status = Status.RUNNING
                worker.wf.plan_eagerly(input, run_context=run_context)

            worker.accept(feed)

    def wait(self, workflow_id: str, timeout: float | None = None) -> InstanceInfo:
        """Block until the instance is not ``running``; return its info.

        An instance that another runner owns is followed through the store.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            worker = self._local_worker(workflow_id)
            if worker is None:
                return wait_stored(self.store, workflow_id, deadline, timeout)
            with worker.lock:
                while worker.status is Status.RUNNING and not worker.detached:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(
                            f"instance {workflow_id!r} still running after {timeout}s "
                            f"({len(worker.running)} runnable(s) executing)"
                        )
                    worker.settled.wait(timeout=0.5 if remaining is None else min(remaining, 0.5))
                if worker.detached in (None, "released", "stopped"):
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
        worker = self._local_worker(workflow_id)
        if worker is None:
            wf = self._read_only(workflow_id)
            lock: Any = contextlib.nullcontext()
        else:
            wf, lock = worker.wf, worker.lock
        with lock:
            if components is _MISSING and not facts and not all:
                return wf.raw_productions()
            names = None if components is _MISSING else components
            return wf.results(names, facts=facts, all=all)

    def get_workflow(self, workflow_id: str) -> Workflow:
        """The instance's workflow (live object: read it, don't drive it); a copy rebuilt
        from the store when another runner owns it."""
        worker = self._local_worker(workflow_id)
        return worker.wf if worker is not None else self._read_only(workflow_id)

    def _read_only(self, workflow_id: str) -> Workflow:
        meta = self.store.get(workflow_id)
        definition = self._definition_for(meta.definition_name, meta.metadata)
        return self._load_workflow(workflow_id, definition, "full", False, meta.cursor)

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
        if workflow_id in self._unrecoverable:  # its log may be unreadable: metadata only
            meta = self.store.get(workflow_id)
            return InstanceInfo(
                workflow_id=workflow_id,
                name=meta.definition_name,
                status=Status(meta.status),
                error=self._unrecoverable[workflow_id],
                loaded=False,
                updated_at=meta.updated_at,
            )
        worker = self._local_worker(workflow_id)
        if worker is None:
            return stored_info(self.store, workflow_id)
        with worker.lock:
            return worker.info()

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
        worker = self._owned(workflow_id)
        with worker.lock:
            return worker.checkpoint()

    def stop(self, workflow_id: str, persist: bool = True) -> None:
        """Stop an instance: running work is abandoned and it takes no more input.

        With ``persist=True`` its state and the ``stopped`` status are checkpointed; with
        ``persist=False`` it is only unloaded from this runner, and the store keeps its last
        checkpoint (so it can be recovered later). When another runner owns the instance,
        the stop is recorded in the store and applied there.
        """
        worker = self._local_worker(workflow_id)
        if worker is None:
            if persist:
                send_command(self.store, workflow_id, "stop")
            return
        with worker.lock:
            worker.stop()
            if persist:
                worker.checkpoint()
        with self._registry_lock:
            if not persist and self._workers.get(workflow_id) is worker:
                del self._workers[workflow_id]
            self.ownership.release(workflow_id)

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
        self._unrecoverable.pop(workflow_id, None)
        return worker.info()

    def recover_all(self) -> list[str]:
        """Load every unfinished (running or waiting) instance of the store; return their ids.

        Each instance is loaded on its own: one whose definition is missing or changed, or
        whose log cannot be read, is reported (log line, ``info(id).error`` and the store's
        ``error`` column, shown by ``runeflow list``) and left untouched; the others load.
        """
        recovered = []
        for meta in self.store.list([Status.RUNNING.value, Status.WAITING.value]):
            if meta.workflow_id in self._workers:
                continue
            try:
                self._load(meta.workflow_id)
            except OwnedElsewhereError as exc:
                log.info("instance %r not recovered: %s", meta.workflow_id, exc)
            except RuneflowError as exc:
                self._report_unloadable(meta.workflow_id, exc)
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
        worker = self._local_worker(workflow_id)
        if worker is None:
            validate_event(self.store, workflow_id, event, step)
            send_command(self.store, workflow_id, "event", payload, event=event, step=step)
            return
        with worker.lock:
            worker.deliver(event, payload, step)

    def schedule_resume(self, workflow_id: str, step: str, delay: float) -> str:
        """Deliver ``timeout`` to the wait on ``step`` after ``delay`` seconds; return the
        timer's id. The timer is durable: it survives restarts and fires at most once."""
        worker = self._owned(workflow_id)
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
        worker = self._owned(workflow_id)
        with worker.lock:
            return worker.cancel_timer(timer_id)

    def _run_due(self, callbacks: list[Callable[[], None]]) -> None:
        """Run callbacks due together; timers are fired in batches (see ``firing``)."""
        run_due(callbacks, self.store, self.checkpoint_strategy.kind == "every_cycle")

    def timer_lateness(self) -> list[float]:
        """Seconds between each fired timer's due time and its firing, in firing order."""
        return list(self._lateness)

    def fired(self, worker: object, timer: Any, now: float) -> None:
        """Bookkeeping when a worker fires a timer."""
        self._lateness.append(max(0.0, now - timer.fire_at))

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Receive telemetry events; returns a function that unsubscribes."""
        return self.telemetry.subscribe(handler)

    def shutdown(self, wait: bool = True) -> None:
        """Checkpoint every loaded instance, stop the scheduler and the executors."""
        if self._closed:
            return
        self._closed = True
        self._stop_polling.set()
        self._wakeup.set()
        for thread in (self._poller, self._lease_keeper):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        held = list(self._workers.items())
        for wid, worker in held:
            with worker.lock:
                try:
                    worker.checkpoint()
                except RuneflowError as exc:
                    log.error("final checkpoint of %r failed: %s", wid, exc)
        with contextlib.suppress(RuneflowError):
            self.store.release_leases(self.owner, [wid for wid, _ in held])
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

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun."""
        return self._closed

    def settled(self, worker: Worker) -> None:
        """A worker settled: record why it failed (for ``runeflow list``); a serving runner
        may release it and claim more."""
        if (
            worker.status is Status.FAILED
            and worker.error != worker.stored_error
            and worker.detached is None
        ):
            try:
                self.store.set_error(worker.id, worker.error)
                worker.stored_error = worker.error
            except RuneflowError as exc:
                log.warning("could not record why %r failed: %s", worker.id, exc)
        if self._poller is not None:
            self._wakeup.set()

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
