"""The booking saga of the saga crash and failure tests (importable by the child process,
the worker processes and the tests).

Every action and compensation records its run in the counter file named by
$RUNEFLOW_COUNTER (see ``_runner_flows.record``). With $SAGA_HANG set, the compensation of
the flight (the last to run) records its start and then hangs, so that the process can be
killed while it is in flight. The ``charge_*`` variants fail the last step in the other
ways a step fails for good: too slow for its timeout, a result no store can keep, a worker
process that dies.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import runeflow as rf
from _runner_flows import record


def book_flight(trip: dict[str, Any], results: dict[str, Any]) -> dict[str, str]:
    record("book_flight")
    return {"ref": f"FL-{trip['id']}"}


def book_hotel(trip: dict[str, Any], results: dict[str, Any]) -> dict[str, str]:
    record("book_hotel")
    return {"ref": f"HT-{trip['id']}"}


def charge_card(trip: dict[str, Any], results: dict[str, Any]) -> None:
    record("charge_card")
    raise RuntimeError("card declined")


RELEASE = threading.Event()
"""Set by the timeout test to let the abandoned ``charge_slowly`` calls finish."""


def charge_slowly(trip: dict[str, Any], results: dict[str, Any]) -> str:
    record("charge_card")
    RELEASE.wait(30)
    return "charged"


class Receipt:
    """No codec knows this type: a store cannot keep it."""


def charge_unstorable(trip: dict[str, Any], results: dict[str, Any]) -> Receipt:
    record("charge_card")
    return Receipt()


def charge_and_crash(trip: dict[str, Any], results: dict[str, Any]) -> None:
    record("charge_card")
    os._exit(13)  # the worker process dies


def cancel_hotel(booking: dict[str, str]) -> str:
    record("cancel_hotel")
    return f"released {booking['ref']}"


def cancel_flight(booking: dict[str, str]) -> str:
    record("cancel_flight")
    if os.environ.get("SAGA_HANG"):
        time.sleep(120)  # killed here
    return f"refunded {booking['ref']}"


def build_trip(charge: Any = charge_card, policy: rf.Policy | None = None) -> rf.Workflow:
    steps = [
        ("flight", book_flight, cancel_flight),
        ("hotel", book_hotel, cancel_hotel),
        ("charge", charge),
    ]
    return rf.workflow(name="trip").add(rf.saga(name="booking", steps=steps, policy=policy))
