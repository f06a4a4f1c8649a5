"""Child process for the durable-timer and cross-process tests.

    python _waits_child.py arm|fire|serve STORE_SPEC

``arm`` starts an approval instance whose wait has a timeout, prints "waiting" and blocks
(to be killed); ``fire`` recovers it and waits for the timer, printing results and the
timer's lateness as JSON; ``serve`` runs a polling worker until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import runeflow as rf
from _runner_crash_child import open_store
from _runner_flows import build_approval, build_approval_with_timeout


def main() -> None:
    mode, spec = sys.argv[1], sys.argv[2]
    store = open_store(spec)
    flows = [build_approval_with_timeout]
    if mode == "arm":
        runner = rf.Runner(store=store, workflows=flows)
        runner.start_instance("approval", {"id": 7}, id="timed")
        info = runner.wait("timed", timeout=10)
        print(
            json.dumps({"status": info.status.value, "fire_at": info.pending_timers[0]["fire_at"]}),
            flush=True,
        )
        time.sleep(60)
    elif mode == "fire":
        with rf.Runner(store=store, workflows=flows) as runner:
            deadline = time.time() + 20
            while runner.get_results("timed", components=["expire"])["expire"] is None:
                assert time.time() < deadline, "the timer never fired"
                time.sleep(0.01)
            print(
                json.dumps(
                    {
                        "results": runner.get_results("timed", components=["expire"]),
                        "fired_at": time.time(),
                        "lateness": runner.timer_lateness(),
                    }
                )
            )
    else:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        runner = rf.Runner(store=store, workflows=[build_approval], poll_interval=0.05)
        print("serving", flush=True)
        runner.serve(stop)
        runner.shutdown()


if __name__ == "__main__":
    main()
