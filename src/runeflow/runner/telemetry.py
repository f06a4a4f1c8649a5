"""Telemetry: start/stop/exception events for workflows, runnables and store calls.

Subscribe with ``runner.subscribe(handler)``; a handler is any callable taking a
:class:`TelemetryEvent`. Two ship with runeflow: :class:`LoggingHandler` (standard
``logging``) and :class:`OpenTelemetryHandler` (spans; needs
``pip install "runeflow[otel]"``). Handlers run on the runner's threads: keep them quick,
and know that an exception in one is logged and otherwise ignored.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Handler",
    "LoggingHandler",
    "OpenTelemetryHandler",
    "Telemetry",
    "TelemetryEvent",
]

log = logging.getLogger("runeflow.runner")

Subject = Literal["workflow", "runnable", "store"]
"""What the event is about."""
Phase = Literal["start", "stop", "exception"]
"""``start``; ``stop`` (success); ``exception`` (failure, with ``error``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TelemetryEvent:
    """One telemetry event."""

    subject: Subject
    """``workflow``, ``runnable`` or ``store``."""
    phase: Phase
    """``start``, ``stop`` or ``exception``."""
    name: str
    """The workflow's name, the component's name, or the store operation."""
    workflow_id: str | None = None
    """The instance concerned."""
    duration: float | None = None
    """Seconds, on ``stop`` and ``exception``; for a workflow, from when it began its current
    run of work (its start, an input, an event) until it settled."""
    error: str | None = None
    """What went wrong, on ``exception``."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Extra detail: runnable id and attempt, event counts, status..."""


Handler = Callable[[TelemetryEvent], None]
"""A telemetry subscriber."""


class Telemetry:
    """Fan-out of telemetry events to subscribers."""

    def __init__(self) -> None:
        self._handlers: tuple[Handler, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True when someone listens (callers skip building events otherwise)."""
        return bool(self._handlers)

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Add ``handler``; return a function that removes it."""
        with self._lock:
            self._handlers = (*self._handlers, handler)

        def unsubscribe() -> None:
            with self._lock:
                self._handlers = tuple(h for h in self._handlers if h is not handler)

        return unsubscribe

    def emit(self, event: TelemetryEvent) -> None:
        """Deliver ``event`` to every handler."""
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("telemetry handler %r failed", handler)


class LoggingHandler:
    """Writes telemetry to a :mod:`logging` logger (``runeflow.telemetry`` by default).

    Start and stop events are logged at DEBUG (workflows at INFO), exceptions at WARNING.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("runeflow.telemetry")

    def __call__(self, event: TelemetryEvent) -> None:
        """Log ``event``."""
        if event.phase == "exception":
            level = logging.WARNING
        elif event.subject == "workflow":
            level = logging.INFO
        else:
            level = logging.DEBUG
        if not self.logger.isEnabledFor(level):
            return
        took = f" in {event.duration * 1000:.2f} ms" if event.duration is not None else ""
        err = f": {event.error}" if event.error else ""
        self.logger.log(
            level,
            "%s %s %s%s%s",
            event.subject,
            event.name,
            event.phase,
            took,
            err,
            extra={"workflow_id": event.workflow_id, **event.attributes},
        )


class OpenTelemetryHandler:
    """Turns telemetry into OpenTelemetry spans (``pip install "runeflow[otel]"``).

    Each start opens a span, the matching stop or exception ends it (with an error status
    on exception) after adding its attributes (a runnable executed on Dask or Ray gets
    ``runeflow.worker_address``). Spans are keyed by subject, instance and name (plus the
    runnable id).
    """

    def __init__(self, tracer: Any = None) -> None:
        try:
            trace = importlib.import_module("opentelemetry.trace")
        except ImportError as exc:
            raise ImportError('OpenTelemetry spans need: pip install "runeflow[otel]"') from exc
        self._trace = trace
        self.tracer = tracer or trace.get_tracer("runeflow")
        self._spans: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, event: TelemetryEvent) -> None:
        """Open or close the span for ``event``."""
        key = (event.subject, event.workflow_id, event.name, event.attributes.get("runnable_id"))
        if event.phase == "start":
            span = self.tracer.start_span(
                f"runeflow.{event.subject} {event.name}",
                attributes={
                    "runeflow.workflow_id": event.workflow_id or "",
                    **{f"runeflow.{k}": str(v) for k, v in event.attributes.items()},
                },
            )
            with self._lock:
                self._spans[key] = span
            return
        with self._lock:
            span = self._spans.pop(key, None)
        if span is None:
            return
        if event.attributes:  # what is known only at the end (the cluster worker's address)
            span.set_attributes({f"runeflow.{k}": str(v) for k, v in event.attributes.items()})
        if event.phase == "exception":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.error or ""))
        span.end()
