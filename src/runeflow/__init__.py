"""runeflow: durable dataflow workflows for Python.

Build a workflow from plain functions, run it inline or under a :class:`Runner`, and keep
its event log in a store. ``import runeflow as rf`` is the one supported import path.
"""

from runeflow.codec import JsonCodec, PickleCodec
from runeflow.errors import (
    CodecError,
    DefinitionError,
    DefinitionMismatchError,
    DispatchError,
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
from runeflow.runner import (
    Checkpoint,
    FakeClock,
    Hooks,
    InstanceInfo,
    LoggingHandler,
    Policy,
    Runner,
    Status,
    SystemClock,
    TelemetryEvent,
    every_n,
)
from runeflow.stores import MemoryStore, SQLiteStore, Store, store_from_url

__version__ = "0.1.0"

__all__ = [
    "ROOT",
    "Accumulator",
    "AwaitEvent",
    "Checkpoint",
    "CodecError",
    "Component",
    "DefinitionError",
    "DefinitionMismatchError",
    "DispatchError",
    "ErrorInfo",
    "Fact",
    "FactRef",
    "FakeClock",
    "Halt",
    "Hooks",
    "InstanceInfo",
    "InstanceStateError",
    "Join",
    "JsonCodec",
    "LoggingHandler",
    "Map",
    "MemoryStore",
    "PickleCodec",
    "Policy",
    "Reduce",
    "Rule",
    "RunContextError",
    "RuneflowError",
    "Runnable",
    "Runner",
    "RuntimeFailure",
    "SQLiteStore",
    "Signal",
    "StateMachine",
    "Status",
    "Step",
    "Store",
    "StoreError",
    "SystemClock",
    "TelemetryEvent",
    "Wait",
    "Workflow",
    "WorkflowDefinitionError",
    "WorkflowNotFoundError",
    "__version__",
    "accumulator",
    "await_event",
    "context",
    "events",
    "every_n",
    "execute_runnable",
    "halt",
    "map",
    "reduce",
    "rule",
    "state_machine",
    "step",
    "store_from_url",
    "workflow",
]
