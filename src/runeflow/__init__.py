"""runeflow: durable dataflow workflows for Python.

Build a workflow from plain functions, run it inline or under a :class:`Runner`, and keep
its event log in a store. ``import runeflow as rf`` is the one supported import path.
"""

from runeflow.errors import (
    CodecError,
    DefinitionError,
    DefinitionMismatchError,
    InstanceStateError,
    RunContextError,
    RuneflowError,
    RuntimeFailure,
    StoreError,
    WorkflowDefinitionError,
    WorkflowNotFoundError,
)
from runeflow.model import events
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
from runeflow.model.events import ErrorInfo
from runeflow.model.facts import ROOT, Fact, FactRef, Signal
from runeflow.model.runnable import Runnable, execute_runnable
from runeflow.model.workflow import Wait, Workflow, workflow

__version__ = "0.1.0"

__all__ = [
    "ROOT",
    "Accumulator",
    "AwaitEvent",
    "CodecError",
    "Component",
    "DefinitionError",
    "DefinitionMismatchError",
    "ErrorInfo",
    "Fact",
    "FactRef",
    "Halt",
    "InstanceStateError",
    "Join",
    "Map",
    "Reduce",
    "Rule",
    "RunContextError",
    "RuneflowError",
    "Runnable",
    "RuntimeFailure",
    "Signal",
    "StateMachine",
    "Step",
    "StoreError",
    "Wait",
    "Workflow",
    "WorkflowDefinitionError",
    "WorkflowNotFoundError",
    "__version__",
    "accumulator",
    "await_event",
    "context",
    "events",
    "execute_runnable",
    "halt",
    "map",
    "reduce",
    "rule",
    "state_machine",
    "step",
    "workflow",
]
