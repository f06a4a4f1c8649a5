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
    context,
    halt,
)
from runeflow.model.constructors import (
    accumulator,
    await_event,
    filter,
    map,
    reduce,
    rule,
    state_machine,
    step,
)
from runeflow.model.facts import ROOT, Fact, FactRef, Signal
from runeflow.model.meta import fact_count, state_of, step_ran
from runeflow.model.runnable import Runnable, execute_runnable
from runeflow.model.saga import Saga, saga
from runeflow.model.stateful import (
    FSM,
    Aggregate,
    ProcessManager,
    Rejection,
    aggregate,
    fsm,
    process_manager,
    reject,
)
from runeflow.model.workflow import Wait, Workflow, workflow

__all__ = [
    "FSM",
    "ROOT",
    "Accumulator",
    "Aggregate",
    "AwaitEvent",
    "Component",
    "Fact",
    "FactRef",
    "Halt",
    "Join",
    "Map",
    "ProcessManager",
    "Reduce",
    "Rejection",
    "Rule",
    "Runnable",
    "Saga",
    "Signal",
    "StateMachine",
    "Step",
    "Wait",
    "Workflow",
    "accumulator",
    "aggregate",
    "await_event",
    "context",
    "execute_runnable",
    "fact_count",
    "filter",
    "fsm",
    "halt",
    "map",
    "process_manager",
    "reduce",
    "reject",
    "rule",
    "saga",
    "state_machine",
    "state_of",
    "step",
    "step_ran",
    "workflow",
]
