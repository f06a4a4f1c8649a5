"""Workflows and a serving child process for the fleet tests (many runners, one store).

    python _fleet_flows.py serve STORE_SPEC LEASE_TTL   # serve until SIGTERM
    python _fleet_flows.py start STORE_SPEC ID          # start an instance, then hang

STORE_SPEC is ``sqlite:PATH`` or ``pg:DSN|SCHEMA``. Each step appends ``ID STEP PID`` to the
file named by $RUNEFLOW_COUNTER and sleeps $FLEET_SLEEP seconds (default 0.05).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import runeflow as rf

STEPS = 4


def record(line: str) -> None:
    path = os.environ.get("RUNEFLOW_COUNTER")
    if path:
        with Path(path).open("a") as f:
            f.write(line + "\n")
            f.flush()


def _link(i: int):  # type: ignore[no-untyped-def]
    def link(x: dict[str, Any]) -> dict[str, Any]:
        record(f"{x['id']} s{i} {os.getpid()}")
        time.sleep(float(os.environ.get("FLEET_SLEEP", "0.05")))
        return {"id": x["id"], "n": x["n"] + 1}

    link.__name__ = f"fleet_link_{i}"
    return link


def build_fleet_chain() -> rf.Workflow:
    """A chain of STEPS steps carrying ``{"id", "n"}``; each records its run."""
    wf = rf.workflow(name="fleet_chain")
    prev = None
    for i in range(STEPS):
        wf.add(rf.step(_link(i), name=f"s{i}"), to=prev)
        prev = f"s{i}"
    return wf


def open_store(spec: str) -> rf.Store:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        return rf.SQLiteStore(rest)
    dsn, _, schema = rest.partition("|")
    return rf.PostgresStore(dsn, schema=schema)


def main() -> None:
    mode, spec = sys.argv[1], sys.argv[2]
    store = open_store(spec)
    if mode == "serve":
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        runner = rf.Runner(
            store=store,
            workflows=[build_fleet_chain],
            poll_interval=0.05,
            lease_ttl=float(sys.argv[3]),
        )
        print(f"serving {runner.owner}", flush=True)
        runner.serve(stop)
        runner.shutdown()
    else:
        runner = rf.Runner(store=store, workflows=[build_fleet_chain], recover=False)
        wid = sys.argv[3]
        runner.start_instance("fleet_chain", {"id": wid, "n": 0}, id=wid)
        print("started", flush=True)
        time.sleep(120)


if __name__ == "__main__":
    main()
