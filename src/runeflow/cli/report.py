"""How an instance ended, told to the user: a summary, its failures with tracebacks, its waits.

Shared by the commands that follow an instance (``run``, ``send``, ``resume``, ``recover``,
``wait``) and by ``show``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from runeflow.cli.common import EXIT_FAILED, EXIT_OK, EXIT_WAITING, one_line
from runeflow.cli.output import format_time, to_jsonable
from runeflow.runner import InstanceInfo, Status

__all__ = [
    "failure_dict",
    "failure_lines",
    "outcome_dict",
    "print_outcome",
    "run_exit_code",
    "short_type",
]


def failure_dict(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An ``InstanceInfo.failures`` entry as ``{"component", "error_type", "message",
    "traceback", "attempt", "error"}``, whatever the runner filled in (older runners give
    only ``component``, ``error`` and ``attempt``)."""
    error = str(raw.get("error") or "")
    error_type = raw.get("error_type")
    message = raw.get("message")
    head, sep, tail = error.partition(": ")
    if error_type is None:
        error_type = head if sep else ""
    if message is None:
        message = tail if sep else error
    if not error:
        error = f"{short_type(str(error_type))}: {message}" if error_type else str(message)
    attempt = raw.get("attempt", 1)
    return {
        "component": str(raw.get("component", "?")),
        "error_type": str(error_type),
        "message": str(message),
        "traceback": str(raw.get("traceback") or ""),
        "attempt": attempt if isinstance(attempt, int) else 1,
        "error": error,
    }


def short_type(type_name: str) -> str:
    """A qualified exception type as people write it (``builtins.`` dropped)."""
    return type_name.removeprefix("builtins.")


def outcome_dict(info: InstanceInfo, results: Any) -> dict[str, Any]:
    """``runeflow run --format json``: ``{"id", "status", "results", "failures"}``."""
    return {
        "id": info.workflow_id,
        "status": info.status.value,
        "results": to_jsonable(results),
        "failures": [failure_dict(f) for f in info.failures],
    }


def failure_lines(failure: Mapping[str, Any], *, traceback: bool = True) -> list[str]:
    """A failure as text: ``failed: COMPONENT: Type: message``, then its traceback indented."""
    f = failure_dict(failure)
    lines = [f"failed: {f['component']}: {one_line(f['error'])} (attempt {f['attempt']})"]
    if traceback and f["traceback"].strip():
        lines += ["  " + line for line in f["traceback"].rstrip().splitlines()]
    return lines


def print_outcome(
    info: InstanceInfo,
    stream: IO[str],
    *,
    elapsed: float | None = None,
    tracebacks: bool = True,
) -> None:
    """The instance's status and step count, its failures (with their tracebacks), its error,
    and what it waits for (with how to resume it)."""
    took = f" in {elapsed:.2f}s" if elapsed is not None else ""
    lines = [
        f"instance {info.workflow_id} ({info.name}): {info.status.value}, "
        f"{info.step_count} step(s){took}"
    ]
    for failure in info.failures:
        lines += ["  " + line for line in failure_lines(failure, traceback=tracebacks)]
    if info.error:
        lines.append(f"  error: {one_line(info.error)}")
    if info.status is Status.WAITING:
        lines += _wait_lines(info)
    print("\n".join(lines), file=stream, flush=True)


def _wait_lines(info: InstanceInfo) -> list[str]:
    lines = []
    for wait in info.open_waits:
        events = " | ".join(wait["events"])
        lines.append(f"  waiting: step {wait['step']!r} for {events}")
    for timer in info.pending_timers:
        lines.append(
            f"  timer: {timer['event']!r} for step {timer['step']!r} at "
            f"{format_time(timer['fire_at'])} (a `runeflow worker` fires it)"
        )
    if info.open_waits:
        lines.append(f"  resume with: runeflow resume {info.workflow_id} EVENT [--payload JSON]")
    return lines


def run_exit_code(info: InstanceInfo) -> int:
    """``run``, ``send``, ``resume``: 3 waiting, 1 failed, stopped or a final failure, else 0."""
    if info.status is Status.WAITING:
        return EXIT_WAITING
    if info.status.is_terminal or info.failures:
        return EXIT_FAILED
    return EXIT_OK
