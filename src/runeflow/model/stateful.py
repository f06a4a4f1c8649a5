"""State-based components: ``rf.fsm``, ``rf.aggregate`` and ``rf.process_manager``.

Each is a Python constructor *lowered* to the primitives every runner already knows
(accumulators, rules and steps), added to a workflow together under one name: no new
runtime concept, the same log, replay, recovery and policies. ``rf.saga`` is in
:mod:`runeflow.model.saga`.

FSM, aggregate and process manager share one shape. Their input goes to an accumulator
``<name>.handle`` that decides, one input at a time and in arrival order, what the input
does to the state (the accumulator serialises inputs, so two inputs never decide on the
same stale state, whatever runs concurrently). The accumulator ``<name>`` under it holds the
state users read (``wf.state_of(name)``, ``rf.state_of(name)`` in a condition); it produces
the state after each input, in the order of the decisions, so ``add(step, to=name)`` sees
every state. Rules under ``<name>.handle`` carry the rest out: an FSM's transitions
(``<name>.transition``), the domain events an aggregate emits (``<name>.events``), the
commands it rejects (``<name>.rejected``), the commands a process manager issues
(``<name>.commands``)... Each is one fact per decision; like every rule's output, they come
in decision order inline, and in completion order under a parallel runner.

The functions given to them (aggregate handlers, ``apply``, process-manager handlers)
decide on the state while it is held, so they must be plain, quick, deterministic
functions: keep I/O in steps downstream. They may read the run context like any function
(resolved for ``<name>.handle``, see :class:`_Calls`); meta-conditions are refused there.
Every part also reads the run-context entry under the composite's name (``group``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.components import Accumulator, Component, ContextValue, Rule, _call_spec
from runeflow.model.facts import Signal
from runeflow.model.policy import Policy

__all__ = [
    "FSM",
    "Aggregate",
    "Composite",
    "ProcessManager",
    "Rejection",
    "aggregate",
    "fsm",
    "process_manager",
    "reject",
]

Parts = list[tuple[Component, tuple[str, ...]]]


class Composite:
    """A state-based component: primitives added to a workflow together, under one name.

    ``wf.add(composite, to=...)`` adds every part (all or none); ``to=`` feeds its entry
    point, and ``to="<name>"`` in a later ``add`` hangs a component under its public part.
    """

    kind = "composite"

    def __init__(self, name: str, policy: Policy | None) -> None:
        if not isinstance(name, str) or not name:
            raise WorkflowDefinitionError(f"rf.{self.kind}() needs a non-empty name=")
        self.name = name
        """The composite's name: the name of its public component."""
        self.policy = policy
        """Applied to every part."""

    def parts(self, parents: tuple[str, ...]) -> Parts:
        """The primitives to add, each with its parents, parents first."""
        if len(parents) != 1:
            raise WorkflowDefinitionError(
                f"{self.kind} {self.name!r} takes one parent, not {list(parents)}",
                component=self.name,
            )
        parts = self._lower(parents)
        for component, _ in parts:
            component.with_policy(self.policy)
            component.group = self.name
        return parts

    def _lower(self, parents: tuple[str, ...]) -> Parts:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Returned by an aggregate's command handler to refuse the command."""

    reason: str
    """Why, in words (kept in the ``<name>.rejected`` production)."""


def reject(reason: str) -> Rejection:
    """Refuse a command: ``return rf.reject("insufficient funds")`` from a handler."""
    return Rejection(str(reason))


# --- picklable pieces shared by the lowerings ------------------------------------------------


def name_of(value: Any, keys: tuple[str, ...]) -> str | None:
    """The name of an event or command: the value itself if a string, a signal's event,
    the first of ``keys`` found in a mapping, or the first item of a ``(name, payload)``
    pair; ``None`` for any other shape."""
    if isinstance(value, str):
        return value
    if isinstance(value, Signal):
        return value.event
    if isinstance(value, Mapping):
        for key in keys:
            found = value.get(key)
            if isinstance(found, str):
                return found
        return None
    if isinstance(value, tuple | list) and value and isinstance(value[0], str):
        return value[0]
    return None


def _state_of_record(record: Mapping[str, Any], state: Any) -> Any:
    """The reducer of ``<name>``: the state the decision left."""
    return record["state"]


class _Key:
    """``record[key]``, or whether ``record[flag]`` is set (with ``flag=True``)."""

    __slots__ = ("flag", "key")

    def __init__(self, key: str, flag: bool = False) -> None:
        self.key = key
        self.flag = flag

    def __call__(self, record: Mapping[str, Any]) -> Any:
        value = record.get(self.key)
        return bool(value) if self.flag else value

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.key, self.flag)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Key, (self.key, self.flag))


class _Equals:
    """A condition: the value equals ``expected``."""

    __slots__ = ("expected",)

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __call__(self, value: Any) -> bool:
        return bool(value == self.expected)

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.expected,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Equals, (self.expected,))


class _Init:
    """A record's initial value: ``{**fields, "state": init}``, ``init`` computed (if it is
    a function) when the instance first needs it, never at build time."""

    __slots__ = ("fields", "init")

    def __init__(self, init: Any, fields: Mapping[str, Any] | None) -> None:
        self.init = init
        self.fields = dict(fields) if fields is not None else None

    def __call__(self) -> Any:
        state = self.init() if callable(self.init) else copy.deepcopy(self.init)
        return state if self.fields is None else {**self.fields, "state": state}

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.init, self.fields)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Init, (self.init, self.fields))


def _shared_parts(
    name: str,
    parents: tuple[str, ...],
    decider: Callable[..., Any],
    init: Any,
    fields: Mapping[str, Any],
    context: tuple[tuple[str, ContextValue], ...] = (),
) -> Parts:
    """``<name>.handle`` deciding on each input, and ``<name>`` holding the state.

    Both are accumulators, one after the other, so ``<name>`` takes the decisions in the
    order they were made, under any executor. ``context``: the run-context parameters of
    the functions the decider calls (see :class:`_Calls`), resolved for ``<name>.handle``.
    """
    handle = f"{name}.handle"
    decide = Accumulator(decider, _Init(init, fields), handle)
    if context:
        decide.spec = replace(decide.spec, context=context)
    return [
        (decide, parents),
        (Accumulator(_state_of_record, _Init(init, None), name), (handle,)),
    ]


class _Calls:
    """The user functions a decider calls, in a fixed order, each with its run-context
    parameters. They reach the decider as keyword arguments ``"<index>:<parameter>"`` (the
    spec :meth:`context` gives ``<name>.handle``), and :meth:`call` hands each function its
    own; a function without any is called with its positional arguments alone."""

    __slots__ = ("fns", "params")

    def __init__(self, fns: Sequence[Callable[..., Any]]) -> None:
        self.fns = tuple(fns)
        self.params = tuple(
            tuple((f"{i}:{param}", param) for param, _ in _call_spec(fn).context)
            for i, fn in enumerate(self.fns)
        )

    def call(self, i: int, context: Mapping[str, Any], *args: Any) -> Any:
        """Call function ``i`` with ``args`` and its run-context values."""
        params = self.params[i]
        if params:
            return self.fns[i](*args, **{param: context[key] for key, param in params})
        return self.fns[i](*args)

    def context(self, kind: str, owner: str, labels: Sequence[str]) -> tuple[Any, ...]:
        """The ``(keyword, marker)`` pairs to resolve; meta-conditions are refused."""
        out = []
        for i, fn in enumerate(self.fns):
            for param, marker in _call_spec(fn).context:
                if marker.is_meta:
                    raise WorkflowDefinitionError(
                        f"{kind} {owner!r}: {labels[i]} declares {param}={marker!r}, but "
                        "meta-conditions are read only by rule conditions (decided while "
                        f"planning and logged): check it in a rule (rf.filter) in front of "
                        f"the {kind}, or keep what it needs in the {kind}'s own state",
                        component=owner,
                    )
                out.append((f"{i}:{param}", marker))
        return tuple(out)


def _check_handlers(kind: str, name: str, option: str, what: str, handlers: Any) -> None:
    """``handlers`` maps non-empty names to plain functions ``(state, value)``."""
    owner = f"{kind} {name!r}"
    if not isinstance(handlers, Mapping) or not handlers:
        raise WorkflowDefinitionError(
            f"{owner} needs {option}={{{what} name: handler(state, {what})}}", component=name
        )
    for key, handler in handlers.items():
        if not isinstance(key, str) or not key:
            raise WorkflowDefinitionError(
                f"{owner}: {what} names must be non-empty strings, got {key!r}", component=name
            )
        _check_plain(kind, name, f"the handler of {what} {key!r}", handler, f"(state, {what})")


def _check_plain(kind: str, name: str, what: str, fn: Any, params: str) -> None:
    """``fn`` is a plain function taking ``params`` (plus run-context parameters)."""
    owner = f"{kind} {name!r}"
    if not callable(fn):
        raise WorkflowDefinitionError(
            f"{owner}: {what} must be a function {params}, got {type(fn).__name__}",
            component=name,
        )
    if inspect.iscoroutinefunction(fn):
        raise WorkflowDefinitionError(
            f"{owner}: {what} decides on the state while it is held and must be a plain "
            "function, not async def: do the I/O in a step downstream",
            component=name,
        )
    if not _call_spec(fn).accepts(params.count(",") + 1):
        raise WorkflowDefinitionError(
            f"{owner}: {what} must take {params}, and may add run-context parameters "
            '(name=rf.context("key"))',
            component=name,
        )


# --- FSM ---------------------------------------------------------------------------------------


class _FsmDecider:
    """The FSM's transition table as a reducer: ``(event, record) -> record``."""

    __slots__ = ("table",)

    def __init__(self, table: Mapping[str, Mapping[str, str]]) -> None:
        self.table = {state: dict(moves) for state, moves in table.items()}

    def __call__(self, event: Any, record: Mapping[str, Any]) -> dict[str, Any]:
        current = record["state"]
        name = name_of(event, ("event", "type"))
        target = self.table.get(current, {}).get(name) if name is not None else None
        if target is None:  # no transition: a no-op
            return {"state": current, "changed": False, "event": name, "from": current}
        return {"state": target, "changed": True, "event": name, "from": current}

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.table,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_FsmDecider, (self.table,))


class FSM(Composite):
    """A finite state machine: discrete states and named transitions (see :func:`fsm`)."""

    kind = "fsm"

    def __init__(
        self,
        name: str,
        initial: str,
        states: Mapping[str, Mapping[str, str]],
        on_entry: Mapping[str, Callable[..., Any]],
        policy: Policy | None,
    ) -> None:
        super().__init__(name, policy)
        self.states = _check_states(name, states)
        """``{state: {event: target}}``."""
        if initial not in self.states:
            raise WorkflowDefinitionError(
                f"fsm {name!r}: initial state {initial!r} is not one of its states "
                f"({', '.join(self.states)}): add it to states= or fix initial=",
                component=name,
            )
        self.initial = initial
        """The state before any event."""
        for state, action in on_entry.items():
            if state not in self.states:
                raise WorkflowDefinitionError(
                    f"fsm {name!r}: on_entry names {state!r}, which is not one of its states "
                    f"({', '.join(self.states)})",
                    component=name,
                )
            if not callable(action):
                raise WorkflowDefinitionError(
                    f"fsm {name!r}: on_entry[{state!r}] must be a function", component=name
                )
        self.on_entry = dict(on_entry)
        """Entry actions by state."""

    def _lower(self, parents: tuple[str, ...]) -> Parts:
        name = self.name
        fields = {"changed": False, "event": None, "from": None}
        parts = _shared_parts(name, parents, _FsmDecider(self.states), self.initial, fields)
        transition = f"{name}.transition"
        parts.append((Rule(_Key("changed", True), _Key("state"), transition), (f"{name}.handle",)))
        for state, action in self.on_entry.items():
            entry = Rule(_Equals(state), action, f"{name}.on_entry.{state}")
            parts.append((entry, (transition,)))
        return parts


def _check_states(name: str, states: Any) -> dict[str, dict[str, str]]:
    if not isinstance(states, Mapping) or not states:
        raise WorkflowDefinitionError(
            f"fsm {name!r} needs states={{state: {{event: target state}}}}", component=name
        )
    out: dict[str, dict[str, str]] = {}
    for state, moves in states.items():
        if not isinstance(state, str) or not state:
            raise WorkflowDefinitionError(
                f"fsm {name!r}: state names must be non-empty strings, got {state!r}",
                component=name,
            )
        if not isinstance(moves, Mapping):
            raise WorkflowDefinitionError(
                f"fsm {name!r}: state {state!r} must map event names to target states, got "
                f"{type(moves).__name__}",
                component=name,
            )
        for event, target in moves.items():
            if not isinstance(event, str) or not event:
                raise WorkflowDefinitionError(
                    f"fsm {name!r}: event names must be non-empty strings, got {event!r} "
                    f"in state {state!r}",
                    component=name,
                )
            if target not in states:
                raise WorkflowDefinitionError(
                    f"fsm {name!r}: state {state!r} goes to {target!r} on {event!r}, but "
                    f"{target!r} is not one of its states ({', '.join(map(str, states))}): "
                    "add it to states= or fix the target",
                    component=name,
                )
        out[state] = dict(moves)
    return out


def fsm(
    *,
    name: str,
    initial: str,
    states: Mapping[str, Mapping[str, str]],
    on_entry: Mapping[str, Callable[..., Any]] | None = None,
    policy: Policy | None = None,
) -> FSM:
    """A finite state machine: ``states={state: {event: target_state}}``.

    An input is an event: a string, an ``rf.Signal`` (its ``event``), a mapping with an
    ``"event"`` (or ``"type"``) key, or a ``(name, payload)`` pair. An event with a
    transition from the current state moves the machine to its target (a transition to the
    same state counts); an event with none is a no-op: the state stays, nothing is entered.
    The component ``name`` holds the current state (``wf.state_of(name)``; ``initial``
    before any transition) and produces the state after each event, in order;
    ``<name>.transition`` produces the new state on transitions only (hang what should run
    on a transition under it). ``on_entry={state: fn}`` calls ``fn`` (with the state, or
    with no argument) each time the machine enters ``state``; its return value is the
    production of the rule ``<name>.on_entry.<state>``.

    Raises:
        WorkflowDefinitionError: an unknown ``initial``, a transition to an unknown state,
            ``on_entry`` naming an unknown state, or names that are not strings.
    """
    return FSM(name, initial, states, on_entry or {}, policy)


# --- aggregate ---------------------------------------------------------------------------------


class _AggregateDecider:
    """Commands against the state: ``(command, record) -> record``."""

    __slots__ = ("apply", "calls", "commands", "index")

    def __init__(self, commands: Mapping[str, Callable[..., Any]], apply: Callable[..., Any]):
        self.commands = dict(commands)
        self.apply = apply
        self.calls = _Calls([*self.commands.values(), apply])  # apply is the last
        self.index = {name: i for i, name in enumerate(self.commands)}

    def labels(self) -> list[str]:
        """What each function of :attr:`calls` is, for error messages."""
        return [*(f"the handler of command {name!r}" for name in self.commands), "apply"]

    def __call__(self, command: Any, record: Mapping[str, Any], **context: Any) -> dict[str, Any]:
        state = record["state"]
        name = name_of(command, ("command", "type"))
        out = {"state": state, "changed": False, "command": name, "event": None, "rejected": None}
        i = self.index.get(name) if name is not None else None
        if i is None:
            accepted = ", ".join(map(repr, self.commands))
            out["rejected"] = {
                "command": name,
                "reason": f"unknown command {name!r}: this aggregate accepts {accepted}",
            }
            return out
        calls = self.calls
        event = calls.call(i, context, state, command)
        if isinstance(event, Rejection):
            out["rejected"] = {"command": name, "reason": event.reason}
        elif event is not None:
            state = calls.call(len(self.commands), context, state, event)
            out.update(state=state, changed=True, event=event)
        return out

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.commands, self.apply)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_AggregateDecider, (self.commands, self.apply))


class Aggregate(Composite):
    """A CQRS / event-sourcing aggregate (see :func:`aggregate`)."""

    kind = "aggregate"

    def __init__(
        self,
        name: str,
        init: Any,
        commands: Mapping[str, Callable[..., Any]],
        apply: Callable[..., Any],
        policy: Policy | None,
    ) -> None:
        super().__init__(name, policy)
        _check_handlers("aggregate", name, "commands", "command", commands)
        _check_plain("aggregate", name, "apply", apply, "(state, event)")
        self.init = init
        """The state before any event (a value, or a zero-argument function)."""
        self.commands = dict(commands)
        """Handlers by command name."""
        self.apply = apply
        """``apply(state, event) -> new state``."""
        self._decider = _AggregateDecider(self.commands, apply)
        self._context = self._decider.calls.context("aggregate", name, self._decider.labels())

    def _lower(self, parents: tuple[str, ...]) -> Parts:
        name = self.name
        fields = {"changed": False, "command": None, "event": None, "rejected": None}
        parts = _shared_parts(name, parents, self._decider, self.init, fields, self._context)
        handle = (f"{name}.handle",)
        events = Rule(_Key("changed", True), _Key("event"), f"{name}.events")
        rejected = Rule(_Key("rejected", True), _Key("rejected"), f"{name}.rejected")
        parts += [(events, handle), (rejected, handle)]
        return parts


def aggregate(
    *,
    name: str,
    init: Any,
    commands: Mapping[str, Callable[..., Any]],
    apply: Callable[..., Any],
    policy: Policy | None = None,
) -> Aggregate:
    """An aggregate: commands are checked against the state and produce events, and events
    fold into the state.

    An input is a command: a string, a mapping with a ``"command"`` (or ``"type"``) key, or
    a ``(name, payload)`` pair. ``commands[name](state, command)`` returns the event it
    causes, ``None`` (nothing happens), or ``rf.reject(reason)`` to refuse it; the event is
    folded in with ``apply(state, event) -> new state``. Commands are handled one at a time,
    in arrival order, each against the state the previous one left. The component ``name``
    holds the state (``init`` before any event) and produces it after each command;
    ``<name>.events`` produces each event, ``<name>.rejected`` each refusal
    (``{"command", "reason"}``; an unknown command is refused too). A handler that raises
    fails that command (see ``wf.failures()``); the state is unchanged. Handlers and
    ``apply`` may declare run-context parameters (``limit=rf.context("limit")``), read from
    the entries ``<name>.handle``, then ``name``, then ``_global``.

    Raises:
        WorkflowDefinitionError: no commands, a name that is not a string, a function that
            is ``async def``, cannot take its arguments, or declares a meta-condition.
    """
    return Aggregate(name, init, commands, apply, policy)


# --- process manager -----------------------------------------------------------------------


class _ProcessDecider:
    """Events against the coordination state: ``(event, record) -> record``."""

    __slots__ = ("calls", "complete", "handlers", "index", "process")

    def __init__(
        self,
        process: str,
        handlers: Mapping[str, Callable[..., Any]],
        complete: Callable[..., Any] | None,
    ) -> None:
        self.process = process
        self.handlers = dict(handlers)
        self.complete = complete
        fns = [*self.handlers.values(), *([complete] if complete is not None else [])]
        self.calls = _Calls(fns)  # complete, when given, is the last
        self.index = {name: i for i, name in enumerate(self.handlers)}

    def labels(self) -> list[str]:
        """What each function of :attr:`calls` is, for error messages."""
        return [*(f"the handler of event {name!r}" for name in self.handlers), "complete"]

    def __call__(self, event: Any, record: Mapping[str, Any], **context: Any) -> dict[str, Any]:
        state, done = record["state"], record["done"]
        name = name_of(event, ("event", "type"))
        out = {"state": state, "changed": False, "command": None, "done": done}
        out["completed"] = False
        i = self.index.get(name) if name is not None and not done else None
        if i is None:  # not an event it handles, or the process is complete
            return out
        calls = self.calls
        updates, command = _decision(self.process, name, calls.call(i, context, state, event))
        if updates:
            out.update(state={**state, **updates}, changed=True)
        out["command"] = command
        if self.complete is not None and calls.call(len(self.handlers), context, out["state"]):
            out.update(done=True, completed={"process": self.process, "state": out["state"]})
        return out

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.process, self.handlers, self.complete)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ProcessDecider, (self.process, self.handlers, self.complete))


def _decision(process: str, event: str | None, result: Any) -> tuple[Any, Any]:
    """A handler's return value as ``(state updates, command)``."""
    if result is None:
        return None, None
    if isinstance(result, Mapping):
        return result, None
    if isinstance(result, tuple) and len(result) == 2:
        updates, command = result
        if updates is None or isinstance(updates, Mapping):
            return updates, command
    raise TypeError(
        f"the handler of {event!r} in process manager {process!r} returned "
        f"{type(result).__name__}: return None, a dict of state updates, or "
        "(updates or None, command)"
    )


class ProcessManager(Composite):
    """Coordinates a multi-step process from the events it receives
    (see :func:`process_manager`)."""

    kind = "process_manager"

    def __init__(
        self,
        name: str,
        init: Any,
        on: Mapping[str, Callable[..., Any]],
        complete: Callable[[Any], Any] | None,
        policy: Policy | None,
    ) -> None:
        super().__init__(name, policy)
        _check_handlers("process manager", name, "on", "event", on)
        if complete is not None:
            _check_plain("process manager", name, "complete", complete, "(state)")
        if not callable(init) and not isinstance(init, Mapping):
            raise WorkflowDefinitionError(
                f"process manager {name!r}: init= must be a dict (or a function returning "
                f"one), got {type(init).__name__}",
                component=name,
            )
        self.init = init
        """The coordination state before any event (a dict)."""
        self.on = dict(on)
        """Handlers by event name."""
        self.complete = complete
        """``complete(state) -> bool``: the process is complete."""
        self._decider = _ProcessDecider(name, self.on, complete)
        self._context = self._decider.calls.context("process manager", name, self._decider.labels())

    def _lower(self, parents: tuple[str, ...]) -> Parts:
        name = self.name
        fields = {"changed": False, "command": None, "done": False, "completed": False}
        parts = _shared_parts(name, parents, self._decider, self.init, fields, self._context)
        handle = (f"{name}.handle",)
        commands = Rule(_Key("command", True), _Key("command"), f"{name}.commands")
        completed = Rule(_Key("completed", True), _Key("completed"), f"{name}.completed")
        parts += [(commands, handle), (completed, handle)]
        return parts


def process_manager(
    *,
    name: str,
    init: Any,
    on: Mapping[str, Callable[..., Any]],
    complete: Callable[[Any], Any] | None = None,
    policy: Policy | None = None,
) -> ProcessManager:
    """A process manager: reacts to events from other components and issues commands.

    An input is an event (a string, an ``rf.Signal``, a mapping with an ``"event"`` or
    ``"type"`` key, or a ``(name, payload)`` pair). ``on[name](state, event)`` returns
    ``None``, a dict of updates merged into the state, or ``(updates, command)``; a command
    that is not ``None`` is produced by ``<name>.commands`` (hang the steps that carry it
    out under it). Events it has no handler for leave it unchanged. Once ``complete(state)``
    is true, ``<name>.completed`` produces ``{"process": name, "state": ...}`` once and
    later events are ignored. The component ``name`` holds the state (``init``, a dict,
    before any event) and produces it after each event. Handlers and ``complete`` may
    declare run-context parameters, read as for :func:`aggregate`.
    """
    return ProcessManager(name, init, on, complete, policy)
