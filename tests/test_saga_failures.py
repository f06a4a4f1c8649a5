"""A saga compensates whatever makes one of its actions fail for good.

Not only an action that raises: a policy timeout, a result the store cannot keep, a worker
process that dies, a runnable that cannot be sent to its executor, a missing run-context
key, a hook that raises. Each runs the booking saga (flight, hotel, then a charge that
fails) under a runner on a real SQLite file, or inline, and checks what a user relies on:
the completed actions are compensated in reverse order, each exactly once; the outcome
says aborted, which step and why; the instance settles (it is not failed, nothing is left
running); and its log replays to the same outcome. (Dask's KilledWorker and Ray's
WorkerCrashedError are in test_cluster_executors.py, on their clusters.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import _saga_flows as flows
import runeflow as rf
from _saga_flows import book_flight, book_hotel, build_trip, cancel_flight, cancel_hotel

DONE_IN_ORDER = ["book_flight", "book_hotel", "charge_card", "cancel_hotel", "cancel_flight"]
COMPENSATED = {"hotel": "released HT-42", "flight": "refunded FL-42"}
BOOKED = {"flight": {"ref": "FL-42"}, "hotel": {"ref": "HT-42"}}


@pytest.fixture
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file each action and compensation appends its name to (worker processes too)."""
    path = tmp_path / "counter.txt"
    monkeypatch.setenv("RUNEFLOW_COUNTER", str(path))
    return path


def run_trip(tmp_path: Path, definition: rf.Workflow, **runner_options: Any) -> dict[str, Any]:
    """Run the trip under a runner on SQLite; return its outcome, after checking that the
    instance settled and that its log replays to the same outcome."""
    db = tmp_path / "trip.db"
    with rf.Runner(store=rf.SQLiteStore(db), **runner_options) as runner:
        runner.start_instance(definition, {"id": 42}, id="trip-1")
        info = runner.wait("trip-1", timeout=60)
        flows.RELEASE.set()  # let abandoned slow charges end before the runner closes
        outcomes = runner.get_results("trip-1", components=["booking"], all=True)["booking"]
    assert info.status is rf.Status.IDLE, info.error
    assert info.failures == []  # an aborted saga is an outcome, not a failure
    (outcome,) = outcomes
    rebuilt = rf.Workflow.from_events(rf.SQLiteStore(db).stream("trip-1"), definition=definition)
    assert rebuilt.raw_productions("booking") == [outcome]
    return dict(outcome)


def assert_aborted_at_charge(outcome: dict[str, Any], error: str) -> None:
    assert outcome["saga"] == "booking" and outcome["status"] == "aborted"
    assert outcome["failed_step"] == "charge"
    assert outcome["error"].startswith(error), outcome["error"]
    assert outcome["results"] == BOOKED
    assert outcome["compensated"] == COMPENSATED


def runs(counter: Path) -> list[str]:
    return counter.read_text().split()


@pytest.fixture
def held() -> Iterator[None]:
    """Slow charges wait until the instance settles (``run_trip`` releases them)."""
    flows.RELEASE.clear()
    yield
    flows.RELEASE.set()


@pytest.mark.slow
@pytest.mark.usefixtures("held")
def test_an_action_past_its_timeout_aborts_the_saga_once_its_retries_are_spent(
    tmp_path: Path, counter: Path
) -> None:
    policy = rf.Policy(timeout=0.3, max_retries=1, backoff="none")
    definition = build_trip(flows.charge_slowly, policy)
    outcome = run_trip(tmp_path, definition)
    assert_aborted_at_charge(outcome, "TimeoutError: component 'booking.charge' did not finish")
    assert "(attempt 2)" in outcome["error"]
    # the policy retried the timed-out action once, then the saga aborted
    assert runs(counter) == [*DONE_IN_ORDER[:3], "charge_card", *DONE_IN_ORDER[3:]]
    log = list(rf.SQLiteStore(tmp_path / "trip.db").stream("trip-1"))
    failed = [e for e in log if isinstance(e, rf.events.RunnableFailed)]
    assert [(e.component, e.attempt, e.final) for e in failed] == [("booking.charge", 1, False)]


@pytest.mark.slow
def test_a_result_the_store_cannot_keep_aborts_the_saga(tmp_path: Path, counter: Path) -> None:
    outcome = run_trip(tmp_path, build_trip(flows.charge_unstorable))
    assert_aborted_at_charge(outcome, "CodecError: component 'booking.charge' returned a value")
    assert "Receipt" in outcome["error"]
    assert runs(counter) == DONE_IN_ORDER


@pytest.mark.slow
def test_a_worker_process_that_dies_aborts_the_saga(tmp_path: Path, counter: Path) -> None:
    # every part runs in worker processes: the compensations run in a new pool
    outcome = run_trip(tmp_path, build_trip(flows.charge_and_crash), executor="processes")
    assert_aborted_at_charge(outcome, "BrokenProcessPool: ")
    assert runs(counter) == DONE_IN_ORDER


@pytest.mark.slow
def test_an_action_that_cannot_be_dispatched_aborts_the_saga(tmp_path: Path, counter: Path) -> None:
    def charge(trip: dict[str, Any], results: dict[str, Any]) -> str:  # cannot be pickled
        flows.record("charge_card")
        return "charged"

    processes = {"booking.charge": rf.Policy(executor="processes")}
    outcome = run_trip(tmp_path, build_trip(charge), policies=processes)
    assert_aborted_at_charge(outcome, "DispatchError: component 'booking.charge' cannot run")
    assert runs(counter) == [*DONE_IN_ORDER[:2], *DONE_IN_ORDER[3:]]  # it never ran


def test_a_raising_action_is_not_retried_by_the_policy(tmp_path: Path, counter: Path) -> None:
    outcome = run_trip(tmp_path, build_trip(policy=rf.Policy(max_retries=3, backoff="none")))
    assert_aborted_at_charge(outcome, "RuntimeError: card declined")
    assert runs(counter) == DONE_IN_ORDER


# --- inline: failures the workflow itself records -------------------------------------------


def needs_token(
    trip: dict[str, Any], results: dict[str, Any], token: str = rf.context("token")
) -> str:
    flows.record("charge_card")
    return token


def trip_with(charge: Any) -> rf.Workflow:
    steps = [
        ("flight", book_flight, cancel_flight),
        ("hotel", book_hotel, cancel_hotel),
        ("charge", charge),
    ]
    return rf.workflow(name="trip").add(rf.saga(name="booking", steps=steps))


def settle_inline(wf: rf.Workflow, **options: Any) -> dict[str, Any]:
    wf.react_until_satisfied({"id": 42}, **options)
    assert wf.failures() == []
    assert not wf.is_runnable()
    (outcome,) = wf.raw_productions("booking")
    assert rf.Workflow.from_events(wf.event_log()).raw_productions("booking") == [outcome]
    return dict(outcome)


def test_a_missing_run_context_key_aborts_the_saga(counter: Path) -> None:
    outcome = settle_inline(trip_with(needs_token))
    assert_aborted_at_charge(outcome, "RunContextError: component 'booking.charge' needs")
    assert runs(counter) == [*DONE_IN_ORDER[:2], *DONE_IN_ORDER[3:]]  # it never ran


@pytest.mark.parametrize("which", ["before", "after"])
def test_a_hook_that_raises_aborts_the_saga(which: str, counter: Path) -> None:
    def refuse(runnable: rf.Runnable) -> None:
        raise PermissionError("over budget")

    wf = trip_with(flows.charge_unstorable)  # inline, any value is kept
    wf.hook("booking.charge", **{which: refuse})
    outcome = settle_inline(wf)
    assert_aborted_at_charge(outcome, "PermissionError: over budget")
    charged = ["charge_card"] if which == "after" else []
    assert runs(counter) == [*DONE_IN_ORDER[:2], *charged, *DONE_IN_ORDER[3:]]


def test_the_failed_actions_of_a_saga_name_their_error_and_traceback() -> None:
    seen: list[Any] = []
    saga = rf.saga(
        name="booking",
        steps=[("flight", book_flight, cancel_flight), ("charge", needs_token)],
        on_abort=lambda failure, compensated: seen.append((failure, compensated)) or "x",
    )
    rf.workflow(name="trip").add(saga).react_until_satisfied({"id": 1})
    ((failure, compensated),) = seen
    assert failure["step"] == "charge"
    assert failure["error"].startswith("RunContextError: ")
    assert "RunContextError" in failure["traceback"]
    assert compensated == {"flight": "refunded FL-1"}


def test_a_saga_policy_with_a_fallback_is_refused() -> None:
    policy = rf.Policy(fallback=lambda runnable, error: "anyway")
    with pytest.raises(rf.WorkflowDefinitionError, match="saga 'booking': a policy fallback="):
        build_trip(policy=policy)
