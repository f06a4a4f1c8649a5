"""The fleet benchmark's workflow and worker process (see ``bench/fleet.py``).

As a module: :func:`build` defines ``fleet_io``, three steps in a chain that each sleep
``FLEET_SLEEP`` seconds (default 0.01: I/O-bound) and return ``x + 1``.

As a script: ``python bench/_fleet_worker.py STORE_SPEC LEASE_TTL MAX_WORKERS`` serves the
store with a polling runner until SIGTERM or SIGINT, then shuts down cleanly. It prints
``serving <owner>`` on stdout once serving. ``STORE_SPEC`` is ``sqlite:///ABS/PATH.db`` or a
``postgresql://`` URL followed by ``#schema=NAME`` (and optionally ``&pool=N``, the
connection pool's size).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import runeflow as rf

SLEEP = float(os.environ.get("FLEET_SLEEP", "0.01"))


def step_a(x: int) -> int:
    time.sleep(SLEEP)
    return x + 1


def step_b(x: int) -> int:
    time.sleep(SLEEP)
    return x + 1


def step_c(x: int) -> int:
    time.sleep(SLEEP)
    return x + 1


def build() -> rf.Workflow:
    """The benchmark's workflow: step_a -> step_b -> step_c."""
    return (
        rf.workflow(name="fleet_io")
        .add(rf.step(step_a))
        .add(rf.step(step_b), to="step_a")
        .add(rf.step(step_c), to="step_b")
    )


def open_store(spec: str) -> rf.Store:
    """Open the store a spec names (see the module doc)."""
    if spec.startswith("sqlite:///"):
        return rf.SQLiteStore(spec[len("sqlite:///") :])
    dsn, _, fragment = spec.partition("#")
    options: dict[str, Any] = {}
    for part in filter(None, fragment.split("&")):
        key, _, value = part.partition("=")
        if key == "schema":
            options["schema"] = value
        elif key == "pool":
            options["max_size"] = int(value)
    return rf.PostgresStore(dsn, **options)


def main() -> int:
    spec, lease_ttl, max_workers = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = open_store(spec)
    runner = rf.Runner(
        store=store,
        workflows=[build],
        poll_interval=0.05,
        lease_ttl=lease_ttl,
        max_workers=max_workers,
    )
    try:
        print(f"serving {runner.owner}", flush=True)
        runner.serve(stop)
    finally:
        runner.shutdown()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
