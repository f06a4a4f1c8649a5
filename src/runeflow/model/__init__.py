"""The pure dataflow model: components, facts, events, runnables and workflows.

Nothing here does I/O, starts threads or touches asyncio; the runner and the stores build
on it.
"""

from runeflow.model.components import (
    Accumulator,
    AwaitEvent,
    Component,
    Halt,
    Join,
    Map,
    Reduce,
    Rule,
    StateMachine,
    Step,
    accumulator,
    await_event,
    context,
    halt,
    map,
    reduce,
    rule,
    state_machine,
    step,
)
from runeflow.model.facts import ROOT, Fact, FactRef, Signal
from runeflow.model.runnable import Runnable, execute_runnable
from runeflow.model.workflow import Wait, Workflow, workflow

__all__ = [
    "ROOT",
    "Accumulator",
    "AwaitEvent",
    "Component",
    "Fact",
    "FactRef",
    "Halt",
    "Join",
    "Map",
    "Reduce",
    "Rule",
    "Runnable",
    "Signal",
    "StateMachine",
    "Step",
    "Wait",
    "Workflow",
    "accumulator",
    "await_event",
    "context",
    "execute_runnable",
    "halt",
    "map",
    "reduce",
    "rule",
    "state_machine",
    "step",
    "workflow",
]
