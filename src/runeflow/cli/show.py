"""How ``runeflow list`` and ``runeflow show`` present instances: JSON data and text tables."""

from __future__ import annotations

import sys

from runeflow.cli.output import format_time, print_table, short
from runeflow.cli.report import failure_lines
from runeflow.view import InstanceView
from runeflow.viewdata import event_data, event_failure, meta_dict, step_rows, view_dict

__all__ = ["event_data", "event_failure", "meta_dict", "print_view", "view_dict"]


def print_view(view: InstanceView, with_events: bool) -> None:
    """``runeflow show``: a summary, then tables of steps, waits, timers, productions."""
    meta = view.meta
    took = meta.updated_at - meta.created_at
    fields = [
        ("instance", meta.workflow_id),
        ("workflow", meta.definition_name),
        ("status", meta.status),
        *([("error", " ".join(meta.error.split()))] if meta.error else []),
        ("failures", str(len(view.failures))),
        ("definition", str(meta.metadata.get("definition") or "-")),
        ("created", format_time(meta.created_at)),
        ("updated", f"{format_time(meta.updated_at)} ({took:.2f}s after creation)"),
        ("events", _events_cell(view)),
        ("inputs", short(view.inputs, 100)),
        ("results", short(view.results(), 100)),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    _print_state_tables(view)
    if with_events:
        events = enumerate(view.events, view.compacted + 1)
        rows = [[str(i), e.kind, short(event_data(e), 110)] for i, e in events]
        print()
        print_table("event log", ["#", "kind", "data"], rows, sys.stdout)


def _events_cell(view: InstanceView) -> str:
    """The number of events, and those compacted into the snapshot the view starts from."""
    if not view.compacted:
        return str(view.meta.cursor)
    return f"{view.meta.cursor} (1-{view.compacted} compacted into a snapshot)"


def _print_state_tables(view: InstanceView) -> None:
    steps = [
        [
            r["component"],
            r["kind"],
            r["state"],
            str(r["completed"]),
            str(r["failed"]),
            f"{r['seconds']:.3f}",
        ]
        for r in step_rows(view)
    ]
    print()
    print_table(
        "steps", ["component", "kind", "state", "ran", "failed", "seconds"], steps, sys.stdout
    )
    if view.open_waits:
        rows = [
            [w.component, " | ".join(w.events), w.wait_id[:12]] for w in view.open_waits.values()
        ]
        print()
        print_table("open waits", ["step", "events", "wait id"], rows, sys.stdout)
    if view.timers:
        rows = [
            [t.component, t.event, format_time(t.fire_at), t.timer_id] for t in view.timers.values()
        ]
        print()
        print_table("timers", ["step", "event", "fires at", "timer id"], rows, sys.stdout)
    productions = [
        [component, short(value, 100)]
        for component, values in view.productions_by_component().items()
        for value in values
    ]
    print()
    print_table("productions", ["component", "value"], productions, sys.stdout)
    if view.failures:
        print()
        print("failures")
        for failure in view.failures:
            for line in failure_lines(event_failure(failure)):
                print(f"  {line}")
