"""Child process for the compaction crash tests.

    python _retention_child.py STORE_SPEC TOTAL

STORE_SPEC is ``sqlite:PATH`` or ``pg:DSN|SCHEMA``. The child goes on feeding the counter
instance ``c`` (started if missing) the numbers after those it already counted, up to TOTAL,
with a snapshot and a compaction nearly every input, printing ``acked N`` once input N is
durable; it prints ``done`` at the end. The parent kills it with SIGKILL at random moments.
"""

from __future__ import annotations

import sys

import runeflow as rf
from _runner_crash_child import open_store

SNAPSHOT_EVERY = 4
"""Events between snapshots: about one per input, so a kill often lands in one."""


def counter() -> rf.Workflow:
    """A state machine counting and summing its inputs."""
    return rf.workflow(name="counter").add(
        rf.state_machine(
            init=lambda: {"n": 0, "total": 0},
            reducer=lambda v, s: {"n": s["n"] + 1, "total": s["total"] + v},
            name="counter",
        )
    )


def main() -> None:
    spec, total = sys.argv[1], int(sys.argv[2])
    with rf.Runner(
        store=open_store(spec),
        workflows=[counter],
        executor="inline",
        snapshot_every=SNAPSHOT_EVERY,
        compact=True,
    ) as runner:
        if not runner.store.exists("c"):
            runner.start_workflow("c", counter)
        runner.wait("c", timeout=60)
        done = runner.get_workflow("c").state_of("counter")["n"]
        for i in range(done + 1, total + 1):
            runner.run("c", i)
            print(f"acked {i}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
