"""Tutorial 7: recovery after a crash. Kill the process mid-run; another one finishes the job.

This example really crashes: it starts a child process that runs a chain of slow steps on
an SQLite store, kills it with SIGKILL (no cleanup, no final checkpoint) after a few steps,
then recovers the instance here. Steps whose results were checkpointed never run again;
the one that was executing when the child died runs again (at-least-once execution,
exactly-once application). Run it: ``python examples/tutorial_07_recovery.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import runeflow as rf

STEPS = 6


def make_stage(i: int) -> rf.Step:
    def stage(x: int) -> int:
        with Path(os.environ["RECOVERY_LOG"]).open("a") as log:  # who ran what, and when
            log.write(f"stage_{i} pid={os.getpid()}\n")
        time.sleep(0.25)
        return x + 1

    return rf.step(stage, name=f"stage_{i}")


def build() -> rf.Workflow:
    wf = rf.workflow(name="nightly_job", outputs={"result": f"stage_{STEPS - 1}"})
    for i in range(STEPS):
        wf.add(make_stage(i), to=f"stage_{i - 1}" if i else None)
    return wf


def child(db: str) -> None:
    """Start the job and run until killed."""
    runner = rf.Runner(store=rf.SQLiteStore(db), workflows=[build])
    runner.start_instance("nightly_job", 0, id="job-1")
    time.sleep(60)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db, log = str(Path(tmp) / "jobs.db"), Path(tmp) / "ran.log"
        os.environ["RECOVERY_LOG"] = str(log)
        proc = subprocess.Popen([sys.executable, __file__, "--child", db])
        while not log.exists() or len(log.read_text().splitlines()) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"child {proc.pid} killed while running: {log.read_text().splitlines()[-1]}")
        store = rf.SQLiteStore(db)
        print(f"stored status: {store.get('job-1').status}, {store.cursor('job-1')} events")

        # A new runner recovers every unfinished instance of its store when it starts.
        with rf.Runner(store=store, workflows=[build]) as runner:
            info = runner.wait("job-1", timeout=30)
            print(
                f"recovered: {info.status.value}, result "
                f"{runner.get_results('job-1', components=None)}"
            )
        runs = Counter(line.split()[0] for line in log.read_text().splitlines())
        again = [stage for stage, n in runs.items() if n > 1]
        print(f"each stage ran once, except the one in flight at the crash: {again}")
        assert runs.keys() == {f"stage_{i}" for i in range(STEPS)} and len(again) <= 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main()
