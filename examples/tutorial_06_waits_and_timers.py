"""Tutorial 6: waits and timers. A step that parks until an external event, or a timeout.

    check ── manager (await: approved | rejected | timeout after 1 h) ─┬─ ship      (approved)
                                                                       ├─ refund    (rejected)
                                                                       └─ escalate  (timeout)

The waiting step produces an ``rf.Signal(event, payload, step, input)`` that rules branch on.
Timers are durable: they are stored with the instance and fire after a restart too. This
example moves a fake clock instead of waiting an hour. From the command line:

    runeflow run examples/tutorial_06_waits_and_timers.py:workflow --input '{"id": 1}' --id o1
    runeflow resume o1 approved --definition examples/tutorial_06_waits_and_timers.py:workflow
    runeflow worker --workflows examples/tutorial_06_waits_and_timers.py:workflow  # until Ctrl-C
"""

from __future__ import annotations

from typing import Any

import runeflow as rf

HOUR = 3600.0


def is_event(name: str) -> Any:
    return lambda signal: signal.event == name


def ship(signal: rf.Signal) -> str:
    return f"order {signal.input['id']} shipped, approved by {signal.payload['by']}"


def refund(signal: rf.Signal) -> str:
    return f"order {signal.input['id']} refunded: {signal.payload}"


def escalate(signal: rf.Signal) -> str:
    return f"order {signal.input['id']}: no answer in time, escalated"


def build() -> rf.Workflow:
    """The approval flow; each branch's message is its result."""
    return (
        rf.workflow(
            name="approval", outputs={"ship": "ship", "refund": "refund", "escalate": "escalate"}
        )
        .add(rf.step(lambda order: order, name="check"))
        .add(
            rf.await_event(name="manager", events=["approved", "rejected"], timeout=HOUR),
            to="check",
        )
        .add(rf.rule(condition=is_event("approved"), reaction=ship, name="ship"), to="manager")
        .add(rf.rule(condition=is_event("rejected"), reaction=refund, name="refund"), to="manager")
        .add(
            rf.rule(condition=is_event("timeout"), reaction=escalate, name="escalate"), to="manager"
        )
    )


workflow = build()


def outcome(runner: rf.Runner, workflow_id: str) -> str:
    results = runner.get_results(workflow_id, components=None)
    return next((v for v in results.values() if v is not None), "(nothing yet)")


def main() -> None:
    clock = rf.FakeClock()
    with rf.Runner(workflows=[build], clock=clock) as runner:
        for order_id in ("o1", "o2", "o3"):
            runner.start_instance(workflow, {"id": order_id}, id=order_id)
        info = runner.wait("o1", timeout=5)
        wait, timer = info.open_waits[0], info.pending_timers[0]
        print(
            f"o1 is {info.status.value}: {wait['step']} waits for {wait['events']}, "
            f"its timer fires in {timer['fire_at'] - clock.now():.0f}s"
        )

        runner.resume("o1", "approved", payload={"by": "ann"})
        runner.resume("o2", "rejected", payload="out of budget")
        clock.advance(HOUR)  # nobody answered o3: its timer fires
        for order_id in ("o1", "o2", "o3"):
            info = runner.wait(order_id, timeout=5)
            print(f"{order_id}: {info.status.value:<5} {outcome(runner, order_id)}")

        # A timer of your own: answer "timeout" to o4's wait after one minute, not an hour.
        runner.start_instance(workflow, {"id": "o4"}, id="o4")
        runner.wait("o4", timeout=5)
        runner.schedule_resume("o4", "manager", delay=60)
        clock.advance(60)
        print(f"o4: {runner.wait('o4', timeout=5).status.value:<5} {outcome(runner, 'o4')}")

        try:
            runner.resume("o1", "approved", payload={"by": "bob"})
        except rf.InstanceStateError as exc:
            print("a second answer is refused:", str(exc).split(":")[0])


if __name__ == "__main__":
    main()
