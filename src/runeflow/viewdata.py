"""A stored instance as JSON data: what ``runeflow list --format json``, ``runeflow show
--format json`` and the dashboard's JSON API return, from the same read-only view
(:mod:`runeflow.view`).

Values become plain JSON data (:func:`to_jsonable`); nothing here executes or imports what
the store holds, and a component's code is never part of the data.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Any

from runeflow.model.events import RunnableFailed
from runeflow.stores.base import InstanceMeta
from runeflow.view import InstanceSummary, InstanceView

__all__ = [
    "event_data",
    "event_failure",
    "meta_dict",
    "step_rows",
    "summary_dict",
    "to_jsonable",
    "view_dict",
]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses (``rf.Signal``...) and pydantic models become
    objects, sets and tuples lists, bytes base64, datetimes ISO text; anything else its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    dump = getattr(value, "model_dump", None)  # pydantic v2
    if callable(dump):
        return to_jsonable(dump(mode="json"))
    return repr(value)


def meta_dict(meta: InstanceMeta) -> dict[str, Any]:
    """One ``runeflow list --format json`` item."""
    return {
        "id": meta.workflow_id,
        "workflow": meta.definition_name,
        "status": meta.status,
        "events": meta.cursor,
        "compacted": meta.compacted,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
        "definition": meta.metadata.get("definition"),
        "owner": meta.owner,
        "error": meta.error,
    }


def view_dict(view: InstanceView, with_events: bool) -> dict[str, Any]:
    """``runeflow show --format json``: everything known about an instance, as JSON data."""
    out = meta_dict(view.meta) | {
        "inputs": view.inputs,
        "results": view.results(),
        "productions": view.productions_by_component(),
        "steps": step_rows(view),
        "running": sorted(set(view.running.values())),
        "open_waits": [
            {"wait_id": w.wait_id, "step": w.component, "events": list(w.events)}
            for w in view.open_waits.values()
        ],
        "timers": [
            {"timer_id": t.timer_id, "step": t.component, "event": t.event, "fire_at": t.fire_at}
            for t in view.timers.values()
        ],
        "failures": [event_failure(f) for f in view.failures],
    }
    if with_events:
        out["log"] = [_event_dict(e) for e in view.events]
    return out


def event_failure(failure: RunnableFailed, *, traceback: bool = True) -> dict[str, Any]:
    """A final failure from the log as ``{"component", "error_type", "message", "traceback",
    "attempt", "error"}`` (the shape of ``InstanceInfo.failures``); ``traceback=False`` leaves
    the traceback out."""
    out = {
        "component": failure.component,
        "error_type": failure.error.type,
        "message": failure.error.message,
        "traceback": failure.error.traceback,
        "attempt": failure.attempt,
        "error": str(failure.error),
    }
    if not traceback:
        del out["traceback"]
    return out


def step_rows(view: InstanceView) -> list[dict[str, Any]]:
    """One row per component: its kind and state, and how often it completed, failed for
    good and was retried, and the seconds it ran."""
    failed: dict[str, int] = {}
    for f in view.failures:
        failed[f.component] = failed.get(f.component, 0) + 1
    rows = []
    for node in view.nodes():
        rows.append(
            {
                "component": node.name,
                "kind": node.kind,
                "state": node.state,
                "completed": view.completed[node.name],
                "failed": failed.get(node.name, 0),
                "retried": view.retried[node.name],
                "seconds": round(view.durations.get(node.name, 0.0), 6),
            }
        )
    return rows


def _event_dict(event: Any) -> dict[str, Any]:
    return {"kind": event.kind, **event_data(event)}


def event_data(event: Any) -> dict[str, Any]:
    """An event's fields as JSON data, without its kind (and never a component's code)."""
    data: dict[str, Any] = to_jsonable(event)
    data.pop("kind", None)
    if event.kind == "component_added":
        data.pop("component", None)
    return data


def summary_dict(summary: InstanceSummary | InstanceView) -> dict[str, Any]:
    """What a listing shows of an instance besides its row: ``steps`` (runnables completed),
    ``failures`` (final ones) and the ``first_failure``'s component, what it is
    ``waiting_for`` (each open wait's step and events), and how many ``timers`` are pending
    and steps are ``running``."""
    if isinstance(summary, InstanceView):
        summary = summary.summary()
    first = summary.first_failure
    return {
        "steps": summary.steps,
        "failures": summary.failures,
        "first_failure": first.component if first is not None else None,
        "waiting_for": [
            {"step": w.component, "events": list(w.events)} for w in summary.open_waits.values()
        ],
        "timers": len(summary.timers),
        "running": len(summary.running),
    }
