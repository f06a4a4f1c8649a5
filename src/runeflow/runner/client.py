"""A submit-only client: start, feed, resume, stop and read instances that runners serve.

A :class:`Client` executes nothing and needs no workflow code: it writes commands to the
store, and serving runners (``Runner(poll_interval=...)``, ``runner.serve()``,
``runeflow worker``) claim the instances and apply them. Every accepting call returns only
once its command is in the store, and raises :class:`~runeflow.errors.StoreError` otherwise.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from runeflow.errors import InstanceStateError, WorkflowDefinitionError
from runeflow.model.workflow import Workflow, load_definition
from runeflow.runner.inbox import check_id, command_timer, encode_refusing
from runeflow.runner.ownership import Ownership
from runeflow.runner.stored import (
    recover_stored,
    send_command,
    stop_stored,
    stored_info,
    validate_event,
    wait_stored,
)
from runeflow.runner.worker import InstanceInfo, Status
from runeflow.stores import store_from_url
from runeflow.stores.base import Store, content_hash
from runeflow.view import load_view

__all__ = ["Client"]

_MISSING: Any = object()


class Client:
    """Submits work to a store that runners serve; runs nothing itself.

    Args:
        store: a store, or a store URL (``sqlite:///path.db``, ``postgresql://...``).

    Example:
        client = rf.Client(rf.PostgresStore(dsn))
        client.start_instance("order_fulfillment", order, id="order-7")
        client.wait("order-7", timeout=60)
        client.get_results("order-7", components=None)
    """

    def __init__(self, store: Store | str) -> None:
        self._owns_store = isinstance(store, str)
        self.store: Store = store_from_url(store) if isinstance(store, str) else store
        self.store.setup()

    def start_instance(
        self,
        workflow: str | Workflow | Callable[[], Workflow],
        input: Any,
        id: str | None = None,
        *,
        definition: str | None = None,
    ) -> str:
        """Create an instance and record its first input, in one transaction; return its id.

        Args:
            workflow: the workflow's name (the serving runners must have its definition
                registered), or a Workflow or builder (only its name is used).
            input: the first input (encoded now by the store's codec).
            id: the instance's id (default: a random one). Retrying with the same id and an
                equal input returns the existing instance; another input is refused.
            definition: an import path (``"pkg.mod:build"``) recorded for runners that do
                not register the workflow themselves.

        Raises:
            InstanceStateError: ``id`` exists with another workflow or input.
            CodecError: the input cannot be stored (nothing was created).
            StoreError: the store could not record it.
        """
        name = _workflow_name(workflow)
        workflow_id = uuid.uuid4().hex if id is None else id
        check_id(workflow_id)
        data = encode_refusing(
            self.store.codec, input, f"the input of new instance {workflow_id!r}"
        )
        command = command_timer(workflow_id, "input", self.store.codec, input, data=data)
        input_hash = content_hash(data)
        created = self.store.create(
            workflow_id,
            definition_name=name,
            definition_hash="",
            status=Status.RUNNING.value,
            metadata={"input": input_hash, **({"definition": definition} if definition else {})},
            timers=[command],
        )
        if not created:
            meta = self.store.get(workflow_id)
            if (meta.definition_name, meta.metadata.get("input")) != (name, input_hash):
                raise InstanceStateError(
                    f"an instance with id {workflow_id!r} already exists "
                    f"({meta.definition_name}, {meta.status}) with a different input: pick "
                    "another id",
                    workflow_id=workflow_id,
                    status=meta.status,
                )
        return workflow_id

    def run(self, workflow_id: str, input: Any) -> None:
        """Feed more input to an instance (recorded now, applied by its runner).

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: the instance is stopped or failed.
            CodecError: the input cannot be stored.
        """
        send_command(self.store, workflow_id, "input", input)

    def resume(
        self, workflow_id: str, event: str, payload: Any = None, step: str | None = None
    ) -> None:
        """Deliver an event to the instance's open wait (checked now, applied by its runner).

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: it is stopped or failed, or no open wait accepts ``event``.
        """
        validate_event(self.store, workflow_id, event, step)
        send_command(self.store, workflow_id, "event", payload, event=event, step=step)

    def stop(self, workflow_id: str) -> None:
        """Stop an instance: at once when no runner owns it, else through its runner."""
        if self.store.get(workflow_id).status == Status.STOPPED.value:
            return
        stop_stored(self.store, workflow_id, Ownership(self.store, 30.0))

    def retry(self, workflow_id: str, id: str | None = None) -> str:
        """Start a new instance of a failed or stopped instance's workflow with the same
        inputs, in one transaction; return its id. The old instance stays as it is.

        A step's final failure is part of an instance's history, so a retry is a new
        instance: it runs every step again (a serving runner runs it), and its metadata
        names the instance it retries (``retry_of``).

        Args:
            workflow_id: the failed or stopped instance.
            id: the new instance's id (default: ``"<workflow_id>-retry-<n>"``, the first
                one free).

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: it is not failed or stopped, it never had an input, or
                ``id`` is taken.
            StoreError: its log (or an input's value) cannot be read.
        """
        meta = self.store.get(workflow_id)
        if meta.status not in (Status.FAILED.value, Status.STOPPED.value):
            raise InstanceStateError(
                f"instance {workflow_id!r} is {meta.status}: only a failed or stopped "
                "instance can be retried",
                workflow_id=workflow_id,
                status=meta.status,
            )
        inputs = load_view(self.store, workflow_id, events=False).inputs
        if not inputs:
            raise InstanceStateError(
                f"instance {workflow_id!r} never had an input: there is nothing to retry",
                workflow_id=workflow_id,
                status=meta.status,
            )
        new_id = self._retry_id(workflow_id) if id is None else id
        check_id(new_id)
        codec = self.store.codec
        data = [encode_refusing(codec, v, f"an input of {workflow_id!r}") for v in inputs]
        definition = meta.metadata.get("definition")
        extra = {"definition": definition} if isinstance(definition, str) else {}
        created = self.store.create(
            new_id,
            definition_name=meta.definition_name,
            definition_hash="",
            status=Status.RUNNING.value,
            metadata={"input": content_hash(data[0]), "retry_of": workflow_id, **extra},
            timers=[command_timer(new_id, "input", codec, data=d) for d in data],
        )
        if not created:
            raise InstanceStateError(
                f"an instance with id {new_id!r} already exists: pick another id",
                workflow_id=new_id,
            )
        return new_id

    def _retry_id(self, workflow_id: str) -> str:
        base = workflow_id[:240]
        for n in range(1, 10_000):
            candidate = f"{base}-retry-{n}"
            if not self.store.exists(candidate):
                return candidate
        raise InstanceStateError(f"instance {workflow_id!r} was retried too often: pass id=")

    def recover(self, workflow_id: str) -> None:
        """Hand an instance that failed without a step failing for good (a runner gave it
        up after repeated internal errors) back to the serving runners, which go on from its
        last checkpoint.

        Raises:
            WorkflowNotFoundError: no such instance.
            InstanceStateError: it is not failed, a step of it failed for good (retry it
                instead: :meth:`retry`), or a live runner holds it.
        """
        recover_stored(self.store, workflow_id, Ownership(self.store, 30.0))

    def info(self, workflow_id: str) -> InstanceInfo:
        """The instance's status, counts, waits, timers and failures, from the store."""
        return stored_info(self.store, workflow_id)

    def list_workflows(self, status: str | Iterable[str] | None = None) -> list[str]:
        """Ids of the stored instances, optionally by status."""
        wanted = None if status is None else [status] if isinstance(status, str) else [*status]
        return [m.workflow_id for m in self.store.list(wanted)]

    def get_results(
        self,
        workflow_id: str,
        components: Sequence[str] | None = _MISSING,
        *,
        all: bool = False,
    ) -> Any:
        """Results, read from the stored log (no code needed).

        Without arguments: every produced value in order. ``components=None``: the output
        ports' last values; ``components=[...]``: each component's last value (every value
        with ``all=True``).
        """
        view = load_view(self.store, workflow_id)
        if components is _MISSING and not all:
            return [value for _, value in view.productions]
        if components is None:
            if not all:
                return view.results()
            ports = view.outputs or {n: n for n in view.sinks()}
            grouped = view.productions_by_component()
            return {port: grouped.get(name, []) for port, name in ports.items()}
        grouped = view.productions_by_component()
        names = list(view.components) if components is _MISSING else list(components)
        if all:
            return {name: grouped.get(name, []) for name in names}
        return {name: (grouped.get(name) or [None])[-1] for name in names}

    def wait(self, workflow_id: str, timeout: float | None = None) -> InstanceInfo:
        """Block until the instance is not ``running`` and its commands are applied.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        return wait_stored(self.store, workflow_id, deadline, timeout)

    def close(self) -> None:
        """Close the store if the client opened it from a URL."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _workflow_name(workflow: str | Workflow | Callable[[], Workflow]) -> str:
    if isinstance(workflow, str):
        if not workflow or ":" in workflow:
            raise WorkflowDefinitionError(
                f"give the workflow's name (as registered with the runners), not {workflow!r}"
            )
        return workflow
    return load_definition(workflow).name
