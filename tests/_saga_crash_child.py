"""Child process for the saga crash test.

    python _saga_crash_child.py STORE_SPEC

Starts the booking saga under a runner on the store and runs until killed (the flight's
compensation hangs). STORE_SPEC is as for ``_runner_crash_child.py``.
"""

from __future__ import annotations

import sys

import runeflow as rf
from _runner_crash_child import open_store
from _saga_flows import build_trip


def main() -> None:
    store = open_store(sys.argv[1])
    runner = rf.Runner(store=store, workflows=[build_trip])
    runner.start_instance(build_trip, {"id": 42}, id="trip-1")
    runner.wait("trip-1", timeout=60)
    print("finished before being killed", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
