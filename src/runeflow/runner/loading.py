"""How a runner loads an instance from its store: taking its lease, rebuilding it from the
registered definition, and reporting (never failing the others) when it cannot.

Mixed into :class:`~runeflow.runner.runner.Runner`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from runeflow.errors import RuneflowError
from runeflow.model.workflow import Workflow
from runeflow.recovery import Rehydration, load_workflow
from runeflow.runner.info import Hooks, Status
from runeflow.runner.ownership import OwnedElsewhereError, Ownership
from runeflow.runner.worker import Worker, WorkerHost, failure_summary
from runeflow.stores.base import Store

__all__ = ["Loading"]

log = logging.getLogger("runeflow.runner")


class Loading:
    """Loading instances from the store (see the module docstring)."""

    if TYPE_CHECKING:
        store: Store
        ownership: Ownership
        hooks: Hooks | None
        _workers: dict[str, Worker]
        _registry_lock: threading.RLock
        _unrecoverable: dict[str, str]

        def _check_open(self) -> None: ...

        def _definition_for(self, name: str, metadata: dict[str, Any]) -> Workflow: ...

    def _local_worker(self, workflow_id: str) -> Worker | None:
        """The instance's worker here, loading it when nobody owns it; ``None`` when a live
        runner elsewhere owns it."""
        worker = self._workers.get(workflow_id)
        if worker is not None:
            return worker
        self._check_open()
        try:
            return self._load(workflow_id)
        except OwnedElsewhereError:
            return None

    def _owned(self, workflow_id: str) -> Worker:
        """The instance's worker here (loading it); an instance owned elsewhere raises."""
        worker = self._workers.get(workflow_id)
        if worker is not None:
            return worker
        self._check_open()
        return self._load(workflow_id)

    def _load(
        self,
        workflow_id: str,
        *,
        rehydration: Rehydration = "full",
        migrate: bool = False,
        token: int | None = None,
    ) -> Worker:
        with self._registry_lock:
            worker = self._workers.get(workflow_id)
            if worker is not None:
                return worker
            if token is None:
                token = self.ownership.acquire(workflow_id)
            try:
                meta = self.store.get(workflow_id)
                definition = self._definition_for(meta.definition_name, meta.metadata)
                wf = self._load_workflow(workflow_id, definition, rehydration, migrate, meta.cursor)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.ownership.release(workflow_id)
                raise
            worker = Worker(
                cast("WorkerHost", self),  # the Runner this is mixed into is the host
                workflow_id,
                wf,
                hooks=self.hooks,
                token=token,
                cursor=meta.cursor,
            )
            worker.stored_status = meta.status
            self._workers[workflow_id] = worker
        log.info(
            "%s: loaded from the store (%s, cursor %d, fencing token %s)",
            workflow_id,
            meta.status,
            meta.cursor,
            token,
        )
        terminal = meta.status in (Status.STOPPED.value, Status.FAILED.value)
        if not terminal and (meta.error is not None or workflow_id in self._unrecoverable):
            self._unrecoverable.pop(workflow_id, None)
            with contextlib.suppress(RuneflowError):
                self.store.set_error(workflow_id, None)
        with worker.lock:
            if terminal:
                worker.status = Status(meta.status)
                worker.stored_error = meta.error
                worker.error = meta.error or (
                    failure_summary(wf) if wf.failures() else f"{meta.status} in the store"
                )
                return worker
            wf.requeue_in_flight()
            worker.rearm()
            worker.status = Status.RUNNING
            worker.kick()
        return worker

    def _load_workflow(
        self,
        workflow_id: str,
        definition: Workflow,
        rehydration: Rehydration,
        migrate: bool,
        cursor: int,
    ) -> Workflow:
        if cursor == 0:  # created (by a client) with no log yet
            return definition.fresh()
        return load_workflow(
            self.store, workflow_id, definition, rehydration=rehydration, migrate=migrate
        )

    def _report_unloadable(self, workflow_id: str, exc: Exception) -> None:
        """Leave an instance that cannot be loaded as it is, and say why (here and in the
        store, for ``runeflow list``)."""
        message = str(exc)
        self._unrecoverable[workflow_id] = message
        log.warning("instance %r not loaded, left as it is: %s", workflow_id, message)
        with contextlib.suppress(RuneflowError):
            self.store.set_error(workflow_id, message)
        with contextlib.suppress(RuneflowError):
            self.ownership.release(workflow_id)
