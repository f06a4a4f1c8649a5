"""Reading an instance from the store alone: no lease, no code, nothing run.

Used for instances that another process owns (or that no code here can rebuild): their
info, whether they settled, and whether an event may be sent to them.
"""

from __future__ import annotations

import time
from typing import Any

from runeflow.errors import InstanceStateError
from runeflow.runner.inbox import CommandKind, command_timer
from runeflow.runner.info import InstanceInfo, Status, failure_info, timer_info
from runeflow.runner.ownership import OwnedElsewhereError, Ownership
from runeflow.stores.base import Store
from runeflow.view import load_view

__all__ = [
    "has_pending_commands",
    "recover_stored",
    "send_command",
    "stop_stored",
    "stored_info",
    "validate_event",
    "wait_stored",
]

_COMMAND_KINDS = ("input", "event", "stop")


def has_pending_commands(store: Store, workflow_id: str) -> bool:
    """True when commands sent to the instance have not been applied yet."""
    return any(t.payload.get("kind") in _COMMAND_KINDS for t in store.timers(workflow_id))


def stored_info(store: Store, workflow_id: str) -> InstanceInfo:
    """The instance's info as its stored log and metadata tell it.

    Raises:
        WorkflowNotFoundError: no such instance.
        StoreError: the log cannot be read.
    """
    view = load_view(store, workflow_id)
    meta = view.meta
    try:
        status = Status(meta.status)
    except ValueError:
        status = Status.FAILED
    return InstanceInfo(
        workflow_id=workflow_id,
        name=meta.definition_name,
        status=status,
        step_count=view.steps,
        open_waits=[
            {
                "wait_id": w.wait_id,
                "step": w.component,
                "events": list(w.events),
                "timeout": w.timeout,
            }
            for w in view.open_waits.values()
        ],
        pending_timers=[timer_info(t) for t in view.timers.values()],
        in_flight=len(view.running),
        failures=[failure_info(f) for f in view.failures],
        error=meta.error,
        loaded=False,
        updated_at=meta.updated_at,
    )


def validate_event(store: Store, workflow_id: str, event: str, step: str | None) -> None:
    """Check, from the stored log, that an open wait of the instance accepts ``event``.

    Raises:
        InstanceStateError: the instance is stopped or failed, or no open wait accepts it.
    """
    view = load_view(store, workflow_id)
    status = view.meta.status
    if status in (Status.STOPPED.value, Status.FAILED.value):
        raise InstanceStateError(
            f"instance {workflow_id!r} is {status} and takes no more events",
            workflow_id=workflow_id,
            status=status,
        )
    waits = [w for w in view.open_waits.values() if step is None or w.component == step]
    if not waits:
        where = f"step {step!r}" if step else "any step"
        raise InstanceStateError(
            f"instance {workflow_id!r} has no open wait on {where}: nothing to resume",
            workflow_id=workflow_id,
            status=status,
        )
    if not any(event in w.events or event == "timeout" for w in waits):
        accepted = sorted({e for w in waits for e in w.events})
        raise InstanceStateError(
            f"instance {workflow_id!r}: no open wait accepts event {event!r} "
            f"(accepted: {accepted})",
            workflow_id=workflow_id,
            status=status,
        )


def stop_stored(store: Store, workflow_id: str, ownership: Ownership) -> str | None:
    """Stop an instance through the store: at once when nobody owns it (taking its lease
    for the write), else by recording a stop command for its owner.

    Returns:
        ``None`` when it was stopped now, else the owner that will apply the command.
    """
    try:
        token = ownership.acquire(workflow_id)
    except OwnedElsewhereError as exc:
        store.schedule_timer(command_timer(workflow_id, "stop", store.codec))
        return exc.owner or "another runner"
    try:
        store.append(workflow_id, [], status=Status.STOPPED.value, token=token)
    finally:
        ownership.release(workflow_id)
    return None


def send_command(
    store: Store,
    workflow_id: str,
    kind: CommandKind,
    value: Any = None,
    *,
    event: str | None = None,
    step: str | None = None,
) -> None:
    """Record a command for whichever runner owns the instance (durable on return).

    Raises:
        WorkflowNotFoundError: no such instance.
        InstanceStateError: the instance is stopped or failed (input and events only).
        CodecError: the value cannot be stored.
    """
    status = store.get(workflow_id).status
    if kind != "stop" and status in (Status.STOPPED.value, Status.FAILED.value):
        raise InstanceStateError(
            f"instance {workflow_id!r} is {status} and takes no more {kind}",
            workflow_id=workflow_id,
            status=status,
        )
    store.schedule_timer(
        command_timer(workflow_id, kind, store.codec, value, event=event, step=step)
    )


def wait_stored(
    store: Store, workflow_id: str, deadline: float | None, timeout: float | None
) -> InstanceInfo:
    """Poll the store until the instance is not ``running`` and its commands are applied.

    Raises:
        TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed first.
    """
    delay = 0.005
    while True:
        # Commands first: a runner removes a command only once what it did is committed, so
        # a status read after finding none already shows it (read the other way round, a
        # command applied between the two reads would pass for settled).
        if (
            not has_pending_commands(store, workflow_id)
            and store.get(workflow_id).status != Status.RUNNING.value
        ):
            info = stored_info(store, workflow_id)
            if info.status is not Status.RUNNING:  # else a new command came meanwhile
                return info
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(
                f"instance {workflow_id!r} still running after {timeout}s (run by a runner "
                "serving the store)"
            )
        time.sleep(delay if remaining is None else min(delay, remaining))
        delay = min(delay * 2, 0.1)


def recover_stored(store: Store, workflow_id: str, ownership: Ownership) -> None:
    """Hand a failed instance back to the serving runners: its status becomes ``running``
    again (its recorded error cleared), so a runner serving the store claims it and goes on
    from its last checkpoint.

    Only an instance that failed without a step failing for good can be recovered: one a
    runner gave up after repeated internal errors (a store outage, a bug in a hook). A
    step's final failure is in the log, so recovering would settle it as failed again.

    Raises:
        WorkflowNotFoundError: no such instance.
        InstanceStateError: it is not failed, a step of it failed for good, or a live
            runner holds it.
    """
    meta = store.get(workflow_id)
    if meta.status != Status.FAILED.value:
        raise InstanceStateError(
            f"instance {workflow_id!r} is {meta.status}, not failed: only a failed instance "
            "can be recovered (a running one is recovered by any runner serving the store)",
            workflow_id=workflow_id,
            status=meta.status,
        )
    view = load_view(store, workflow_id, values=False, events=False)
    if view.failures:
        first = view.failures[0]
        raise InstanceStateError(
            f"instance {workflow_id!r} failed because step {first.component!r} failed for "
            f"good ({first.error.type}: {first.error.message}); recovering it would settle it "
            "as failed again: retry it as a new instance with the same input instead",
            workflow_id=workflow_id,
            status=meta.status,
        )
    token = ownership.acquire(workflow_id)
    try:
        store.set_error(workflow_id, None)
        store.append(workflow_id, [], status=Status.RUNNING.value, token=token)
    finally:
        ownership.release(workflow_id)
