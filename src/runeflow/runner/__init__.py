"""The runner: many workflow instances, executors, policies, timers and telemetry."""

from runeflow.runner.client import Client
from runeflow.runner.contract import RunnerProtocol
from runeflow.runner.executors import (
    AsyncioExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)
from runeflow.runner.policies import Policy
from runeflow.runner.runner import Runner
from runeflow.runner.telemetry import LoggingHandler, OpenTelemetryHandler, TelemetryEvent
from runeflow.runner.timers import Clock, FakeClock, SystemClock
from runeflow.runner.worker import Checkpoint, Hooks, InstanceInfo, Status, every_n

__all__ = [
    "AsyncioExecutor",
    "Checkpoint",
    "Client",
    "Clock",
    "Executor",
    "FakeClock",
    "Hooks",
    "InlineExecutor",
    "InstanceInfo",
    "LoggingHandler",
    "OpenTelemetryHandler",
    "Policy",
    "ProcessExecutor",
    "Runner",
    "RunnerProtocol",
    "Status",
    "SystemClock",
    "TelemetryEvent",
    "ThreadExecutor",
    "every_n",
]
