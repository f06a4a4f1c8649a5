"""Commands to an instance that another process runs: input, events, stop.

A command is a store timer due at time 0 (``fire_at=0``), so it is durable the moment the
call that sends it returns, it is found by the owner's poll (``due_timers(owner=...)``), and
an instance with a pending command counts as having work, so a serving runner claims it when
nobody owns it. Command ids start with the time in nanoseconds, so commands are applied in
the order they were sent. Values travel encoded by the store's codec (base64 in the timer's
JSON payload) and are decoded by the same safe codec.

An input command's id is its idempotency key: the owner feeds it with ``key=command id``,
so a command redelivered after a crash (applied and checkpointed, but not yet removed) adds
nothing the second time.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from runeflow.codec import Codec
from runeflow.errors import CodecError, UsageError
from runeflow.stores.base import Timer

__all__ = ["Command", "check_id", "command_timer", "encode_refusing", "read_command"]

_CONTROL = re.compile(r"[\x00-\x1f]")

CommandKind = Literal["input", "event", "stop"]
_KINDS = ("input", "event", "stop")


def check_id(workflow_id: object) -> None:
    """Raise :class:`UsageError` unless ``workflow_id`` is a usable instance id."""
    if not isinstance(workflow_id, str) or not workflow_id.strip():
        raise UsageError(
            f"an instance id must be a non-empty string, not {workflow_id!r}: pass id=... "
            "or leave it out to get a generated one"
        )
    if len(workflow_id) > 255 or _CONTROL.search(workflow_id):
        raise UsageError(
            f"instance id {workflow_id[:40]!r}... is not usable: keep it under 256 characters, "
            "without control characters"
        )


def encode_refusing(codec: Codec, value: Any, what: str) -> bytes:
    """Encode ``value``, or raise :class:`CodecError` saying that ``what`` was refused."""
    try:
        return codec.encode(value)
    except CodecError as exc:
        raise CodecError(
            f"{what} was refused, nothing was stored: {exc}", type_name=exc.type_name
        ) from exc


@dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    """A decoded command."""

    id: str
    """The command's (timer's) id; an input's idempotency key."""
    kind: CommandKind
    """``input``, ``event`` or ``stop``."""
    value: Any = None
    """The input, or the event's payload."""
    event: str | None = None
    """For ``event``: the event's name."""
    step: str | None = None
    """For ``event``: the wait it is meant for, if named."""


def command_timer(
    workflow_id: str,
    kind: CommandKind,
    codec: Codec,
    value: Any = None,
    *,
    event: str | None = None,
    step: str | None = None,
    data: bytes | None = None,
) -> Timer:
    """Build the store timer carrying a command (the value encoded now: CodecError here,
    unless ``data`` is its encoding already)."""
    payload: dict[str, Any] = {"kind": kind}
    if kind != "stop":
        if data is None:
            data = encode_refusing(codec, value, f"the {kind} for instance {workflow_id!r}")
        payload["data"] = base64.b64encode(data).decode("ascii")
    if event is not None:
        payload["event"] = event
    if step is not None:
        payload["step"] = step
    command_id = f"cmd-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    return Timer(timer_id=command_id, workflow_id=workflow_id, fire_at=0.0, payload=payload)


def read_command(timer: Timer, codec: Codec) -> Command | None:
    """Decode a timer that carries a command; ``None`` for an ordinary timer.

    Raises:
        CodecError: the command is malformed (its value cannot be decoded).
    """
    payload = timer.payload
    kind = payload.get("kind")
    if kind not in _KINDS:
        return None
    value = None
    if "data" in payload:
        try:
            value = codec.decode(base64.b64decode(str(payload["data"]), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise CodecError(
                f"command {timer.timer_id!r} holds an unreadable value: {exc}"
            ) from exc
    event, step = payload.get("event"), payload.get("step")
    return Command(
        id=timer.timer_id,
        kind=kind,
        value=value,
        event=event if isinstance(event, str) else None,
        step=step if isinstance(step, str) else None,
    )
