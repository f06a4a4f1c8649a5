"""Child process for the policy-travels-with-the-definition test.

    python _policy_child.py start|recover SQLITE_PATH COUNTER_PATH

``start`` runs an instance whose ``flaky`` step hangs on its first call (the parent kills
the process there); ``recover`` recovers it in a runner given no ``policies=`` and prints
the outcome as JSON. ``flaky`` fails on its second call and succeeds on its third: only the
retry policy declared on the step can make the instance succeed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import runeflow as rf


def flaky(x: int) -> int:
    counter = Path(os.environ["RF_COUNTER"])
    with counter.open("a") as f:
        f.write("call\n")
    calls = len(counter.read_text().splitlines())
    if calls == 1:
        time.sleep(60)  # killed here
    if calls == 2:
        raise RuntimeError("transient outage")
    return x * 10


def build() -> rf.Workflow:
    return rf.workflow(
        name="flaky_flow",
        steps=[
            (
                rf.step(flaky, name="flaky", policy=rf.Policy(max_retries=2, backoff="none")),
                [rf.step(lambda y: y + 1, name="after")],
            )
        ],
    )


def main() -> None:
    mode, db, counter = sys.argv[1], sys.argv[2], sys.argv[3]
    os.environ["RF_COUNTER"] = counter
    store = rf.SQLiteStore(db)
    if mode == "start":
        runner = rf.Runner(store=store, workflows=[build])
        runner.start_instance(build, 2, id="p1")
        runner.wait("p1", timeout=60)
        sys.exit(3)  # never reached: killed while flaky hangs
    with rf.Runner(store=store, workflows=[build]) as runner:  # no policies= here
        info = runner.wait("p1", timeout=30)
        print(
            json.dumps(
                {
                    "status": info.status.value,
                    "results": runner.get_results("p1", components=["flaky", "after"]),
                    "failures": info.failures,
                }
            )
        )


if __name__ == "__main__":
    main()
