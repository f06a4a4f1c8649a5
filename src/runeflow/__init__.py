"""runeflow: durable dataflow workflows for Python.

Build a workflow from plain functions, run it inline or under a :class:`Runner`, and keep
its event log in a store. ``import runeflow as rf`` is the one supported import path.
"""

from typing import TYPE_CHECKING, Any

from runeflow.codec import JsonCodec, PickleCodec, register_type
from runeflow.errors import (
    ClusterUnavailableError,
    CodecError,
    DefinitionError,
    DefinitionMismatchError,
    DispatchError,
    InstanceStateError,
    LeaseLostError,
    RunContextError,
    RuneflowError,
    RuntimeFailure,
    StoreError,
    StoreUnavailableError,
    UntrustedDefinitionError,
    UsageError,
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
from runeflow.model.events import ErrorInfo
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
from runeflow.runner import (
    Checkpoint,
    Client,
    FakeClock,
    Hooks,
    InstanceInfo,
    LoggingHandler,
    Policy,
    Runner,
    RunnerProtocol,
    Status,
    SystemClock,
    TelemetryEvent,
    every_n,
)
from runeflow.stores import MemoryStore, SQLiteStore, Store, store_from_url

if TYPE_CHECKING:
    from runeflow.runner.dask_executor import DaskExecutor
    from runeflow.runner.ray_executor import RayExecutor
    from runeflow.stores.postgres import PostgresStore

__version__ = "0.1.0"

__all__ = [
    "FSM",
    "ROOT",
    "Accumulator",
    "Aggregate",
    "AwaitEvent",
    "Checkpoint",
    "Client",
    "ClusterUnavailableError",
    "CodecError",
    "Component",
    "DaskExecutor",
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
    "LeaseLostError",
    "LoggingHandler",
    "Map",
    "MemoryStore",
    "PickleCodec",
    "Policy",
    "PostgresStore",
    "ProcessManager",
    "RayExecutor",
    "Reduce",
    "Rejection",
    "Rule",
    "RunContextError",
    "RuneflowError",
    "Runnable",
    "Runner",
    "RunnerProtocol",
    "RuntimeFailure",
    "SQLiteStore",
    "Saga",
    "Signal",
    "StateMachine",
    "Status",
    "Step",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "SystemClock",
    "TelemetryEvent",
    "UntrustedDefinitionError",
    "UsageError",
    "Wait",
    "Workflow",
    "WorkflowDefinitionError",
    "WorkflowNotFoundError",
    "__version__",
    "accumulator",
    "aggregate",
    "await_event",
    "context",
    "events",
    "every_n",
    "execute_runnable",
    "fact_count",
    "filter",
    "fsm",
    "halt",
    "map",
    "process_manager",
    "reduce",
    "register_type",
    "reject",
    "rule",
    "saga",
    "state_machine",
    "state_of",
    "step",
    "step_ran",
    "store_from_url",
    "workflow",
]


_LAZY = {
    "PostgresStore": "runeflow.stores.postgres",
    "DaskExecutor": "runeflow.runner.dask_executor",
    "RayExecutor": "runeflow.runner.ray_executor",
}


def __getattr__(name: str) -> Any:
    """Load optional back-ends on first use: ``import runeflow`` never imports psycopg, Dask
    or Ray (each class raises an ImportError naming its extra when the package is missing).
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
