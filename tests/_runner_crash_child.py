"""Child process for the runner crash tests.

    python _runner_crash_child.py start|recover STORE_SPEC

STORE_SPEC is ``sqlite:PATH`` or ``pg:DSN|SCHEMA``. ``start`` starts the counted chain and
runs until killed; ``recover`` lets a new runner recover it and prints the results as JSON.
"""

from __future__ import annotations

import json
import sys

import runeflow as rf
from _runner_flows import build_counted_chain


def open_store(spec: str) -> rf.Store:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        return rf.SQLiteStore(rest)
    from runeflow.stores.postgres import PostgresStore

    dsn, _, schema = rest.partition("|")
    return PostgresStore(dsn, schema=schema)


def main() -> None:
    mode, spec = sys.argv[1], sys.argv[2]
    store = open_store(spec)
    if mode == "start":
        runner = rf.Runner(store=store, workflows=[build_counted_chain])
        runner.start_workflow("crash-1", build_counted_chain)
        runner.run("crash-1", 0)
        runner.wait("crash-1", timeout=60)
        print("finished before being killed", file=sys.stderr)
        sys.exit(3)
    with rf.Runner(store=store, workflows=[build_counted_chain]) as runner:
        info = runner.wait("crash-1", timeout=60)
        print(json.dumps({"status": info.status.value, "results": runner.get_results("crash-1")}))


if __name__ == "__main__":
    main()
