"""The booking saga of the saga crash tests (importable by the child process and the test).

Every action and compensation records its run in the counter file named by
$RUNEFLOW_COUNTER (see ``_runner_flows.record``). With $SAGA_HANG set, the compensation of
the flight (the last to run) records its start and then hangs, so that the process can be
killed while it is in flight.
"""

from __future__ import annotations

import os
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


def cancel_hotel(booking: dict[str, str]) -> str:
    record("cancel_hotel")
    return f"released {booking['ref']}"


def cancel_flight(booking: dict[str, str]) -> str:
    record("cancel_flight")
    if os.environ.get("SAGA_HANG"):
        time.sleep(120)  # killed here
    return f"refunded {booking['ref']}"


def build_trip() -> rf.Workflow:
    steps = [
        ("flight", book_flight, cancel_flight),
        ("hotel", book_hotel, cancel_hotel),
        ("charge", charge_card),
    ]
    return rf.workflow(name="trip").add(rf.saga(name="booking", steps=steps))
