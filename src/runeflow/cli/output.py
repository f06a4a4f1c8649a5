"""Terminal output for the ``runeflow`` CLI: JSON, tables and live progress.

``rich`` (the ``runeflow[cli]`` extra) draws tables and the progress bar, and only when it is
installed and the stream is a terminal; otherwise output is plain text or JSON, so pipes and
files get stable, parseable output. Nothing here is imported by ``import runeflow``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from runeflow.runner import Hooks
from runeflow.viewdata import to_jsonable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    from runeflow.model.runnable import Runnable
    from runeflow.runner.runner import Runner

__all__ = [
    "ProgressDisplay",
    "dumps",
    "format_time",
    "print_table",
    "rich_console",
    "to_jsonable",
]


def rich_console(stream: IO[str]) -> Console | None:
    """A rich Console on ``stream`` when rich is installed and ``stream`` is a terminal."""
    if not _isatty(stream):
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=stream, highlight=False)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """JSON text of ``value`` (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False)


def short(value: Any, width: int = 80) -> str:
    """One line of compact JSON, cut to ``width`` characters."""
    text = value if isinstance(value, str) else dumps(value, indent=None)
    return text if len(text) <= width else text[: width - 1] + "…"


def format_time(timestamp: float | None) -> str:
    """Local time of an epoch timestamp, to the second (``-`` when unknown)."""
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    stream: IO[str],
    *,
    fancy: bool = True,
) -> None:
    """Print a table: drawn by rich on a terminal when ``fancy``, else aligned plain text."""
    console = rich_console(stream) if fancy else None
    if console is not None:
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        print(title, file=stream)
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    for row in [list(columns), ["-" * w for w in widths], *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=stream)


class ProgressDisplay:
    """Live progress of one instance: steps done / known, the running steps, elapsed time.

    Its :attr:`hooks` go to the Runner so it sees runnables start and finish. It draws with
    rich on ``stream`` when that is a terminal and rich is installed, and stays silent
    otherwise.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}
        self._started = time.monotonic()
        self._progress: RichProgress | None = None
        self._task: Any = None
        console = rich_console(stream)
        if console is not None:
            self._start_rich(console)
        self.hooks = Hooks(
            on_dispatch=self._dispatched,
            on_complete=self._finished,
            on_failed=self._finished,
        )
        """Pass these to ``rf.Runner(hooks=...)``."""

    def _start_rich(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}", style="cyan"),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None, running="")
        self._progress.start()

    @property
    def elapsed(self) -> float:
        """Seconds since the display was created."""
        return time.monotonic() - self._started

    def _dispatched(self, workflow_id: str, runnable: Runnable) -> None:
        with self._lock:
            self._running[runnable.id] = runnable.component

    def _finished(self, workflow_id: str, runnable: Runnable) -> None:
        with self._lock:
            self._running.pop(runnable.id, None)

    def running(self) -> list[str]:
        """Names of the components executing now."""
        with self._lock:
            return sorted(set(self._running.values()))

    def update(self, runner: Runner, workflow_id: str) -> None:
        """Redraw from the instance's current counts."""
        if self._progress is None:
            return
        info = runner.info(workflow_id)
        pending = runner.get_workflow(workflow_id).counts()["pending"]
        done = info.step_count
        running = self.running()
        self._progress.update(
            self._task,
            description=f"{info.name} {workflow_id}",
            completed=done,
            total=done + info.in_flight + pending,
            running=("running: " + ", ".join(running)) if running else "",
        )

    def close(self) -> None:
        """Remove the live display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
