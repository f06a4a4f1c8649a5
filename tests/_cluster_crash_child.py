"""Child process for the cluster crash tests.

    python _cluster_crash_child.py dask|ray ADDRESS DB

Starts the marked chain on a runner whose executor is the cluster at ADDRESS, with a SQLite
store at DB, and runs until killed.
"""

from __future__ import annotations

import sys

import runeflow as rf
from _cluster_flows import TESTS, build_marked_chain


def main() -> None:
    engine, address, db = sys.argv[1:4]
    if engine == "dask":
        executor: rf.runner.Executor = rf.DaskExecutor(address=address)
    else:
        env = {"env_vars": {"PYTHONPATH": str(TESTS)}}
        executor = rf.RayExecutor(address=address, init_options={"runtime_env": env})
    runner = rf.Runner(store=rf.SQLiteStore(db), workflows=[build_marked_chain], executor=executor)
    runner.start_workflow("crash-1", build_marked_chain)
    runner.run("crash-1", 0)
    runner.wait("crash-1", timeout=120)
    print("finished before being killed", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
