"""Workflow components: steps, rules, maps, reduces, accumulators, state machines, waits.

A component wraps plain Python functions. It knows how its function is called (its *call
spec*: how many input values it takes, which parameters come from the run context) and it
has a content hash (see :mod:`runeflow.model.hashing`). How facts reach a component and what
it produces is the workflow's business (:mod:`runeflow.model.workflow`); a component only
says how to turn its inputs into a :class:`~runeflow.model.runnable.Runnable` and how to
read the result.
"""

from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.hashing import callable_digest, digest, stable_repr
from runeflow.model.policy import Policy

__all__ = [
    "Accumulator",
    "AwaitEvent",
    "CallSpec",
    "Component",
    "ContextValue",
    "Halt",
    "Join",
    "Map",
    "Reduce",
    "Rule",
    "StateMachine",
    "Step",
    "accumulator",
    "await_event",
    "context",
    "halt",
    "map",
    "reduce",
    "rule",
    "state_machine",
    "step",
]

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()
_VARARGS = inspect.CO_VARARGS


class ContextValue:
    """Marks a parameter to be filled from the run context (see :func:`context`)."""

    __slots__ = ("default", "key")

    def __init__(self, key: str, default: Any = _MISSING) -> None:
        self.key = key
        self.default = default

    @property
    def required(self) -> bool:
        """True when the key has no default."""
        return self.default is _MISSING

    def __repr__(self) -> str:
        return f"rf.context({self.key!r})"


def context(key: str, default: Any = _MISSING) -> Any:
    """Declare a parameter filled from the run context at prepare time.

    Use it as a parameter default: ``def charge(order, api_key=rf.context("api_key")): ...``.
    The value comes from ``run_context[component_name][key]``, else
    ``run_context["_global"][key]``, else ``default``. Run context is never hashed or logged.
    """
    return ContextValue(key, default)


@dataclass(frozen=True, slots=True)
class CallSpec:
    """How a function takes its inputs."""

    min_args: int
    """Positional inputs it requires."""
    max_args: float
    """Positional inputs it accepts (``inf`` with ``*args``)."""
    context: tuple[tuple[str, ContextValue], ...]
    """``(parameter, marker)`` for each run-context parameter."""
    is_async: bool
    """True for ``async def`` functions."""

    def accepts(self, n: int) -> bool:
        """Whether ``n`` positional inputs fit."""
        return self.min_args <= n <= self.max_args


_SPEC_CACHE: dict[int, tuple[types.CodeType, CallSpec]] = {}


def _call_spec(fn: Callable[..., Any]) -> CallSpec:
    if type(fn) is types.FunctionType and not fn.__defaults__ and not fn.__kwdefaults__:
        code = fn.__code__
        hit = _SPEC_CACHE.get(id(code))
        if hit is not None and hit[0] is code:
            return hit[1]
        spec = _spec_from_code(fn, code, 0)
        _SPEC_CACHE[id(code)] = (code, spec)
        return spec
    target: Any = fn
    drop = 0
    if isinstance(fn, types.MethodType):
        target, drop = fn.__func__, 1
    elif not isinstance(fn, types.FunctionType | type) and isinstance(
        vars(type(fn)).get("__call__"), types.FunctionType
    ):
        target, drop = vars(type(fn))["__call__"], 1
    target_code: Any = getattr(target, "__code__", None)
    if isinstance(target_code, types.CodeType):
        return _spec_from_code(target, target_code, drop)
    return _spec_from_signature(fn)


def _spec_from_code(fn: Any, code: types.CodeType, drop: int) -> CallSpec:
    names = code.co_varnames[: code.co_argcount]
    defaults = fn.__defaults__ or ()
    ctx: list[tuple[str, ContextValue]] = []
    n_ctx_pos = 0
    first_default = len(names) - len(defaults)
    for name, value in zip(names[first_default:], defaults, strict=True):
        if isinstance(value, ContextValue):
            ctx.append((name, value))
            n_ctx_pos += 1
    for name, value in (fn.__kwdefaults__ or {}).items():
        if isinstance(value, ContextValue):
            ctx.append((name, value))
    min_args = max(first_default - drop, 0)
    max_args: float = float("inf") if code.co_flags & _VARARGS else len(names) - drop - n_ctx_pos
    is_async = bool(code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR))
    return CallSpec(min_args, max_args, tuple(ctx), is_async)


def _spec_from_signature(fn: Callable[..., Any]) -> CallSpec:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return CallSpec(0, float("inf"), (), False)
    min_args, max_args, ctx = 0, 0.0, []
    for p in sig.parameters.values():
        if isinstance(p.default, ContextValue):
            ctx.append((p.name, p.default))
        elif p.kind is p.VAR_POSITIONAL:
            max_args = float("inf")
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            max_args += 1
            min_args += p.default is p.empty
    return CallSpec(min_args, max_args, tuple(ctx), inspect.iscoroutinefunction(fn))


def _fn_name(fn: Callable[..., Any] | None, fallback: str) -> str:
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        return fallback
    return str(name)


class Component:
    """Base of every component. Subclasses set ``kind`` and build their runnables."""

    kind: ClassVar[str] = "component"
    __slots__ = ("auto_named", "fn", "hash", "name", "policy", "spec")

    def __init__(self, fn: Callable[..., Any] | None, name: str | None, options: str = "") -> None:
        if fn is not None and not callable(fn):
            raise WorkflowDefinitionError(
                f"{self.kind} expects a callable, got {type(fn).__name__}", component=name
            )
        self.fn = fn
        self.policy: Policy | None = None
        """How runners run it (retries, timeout, fallback...); not part of its hash."""
        self.spec = _call_spec(fn) if fn is not None else CallSpec(1, 1, (), False)
        self.auto_named = name is None
        fn_digest = callable_digest(fn)
        self.name = name if name is not None else _fn_name(fn, f"{self.kind}_{fn_digest[:8]}")
        _check_name(self.name)
        self.hash = digest(self.kind, self.name, fn_digest, options)

    def renamed(self, name: str) -> Component:
        """Return a copy of this component under another name (and so another hash)."""
        clone = copy.copy(self)
        clone.name = name
        clone.auto_named = False
        clone.hash = digest(self.hash, "renamed", name)
        return clone

    def with_policy(self, policy: Policy | None) -> Self:
        """Attach ``policy`` (see :mod:`runeflow.model.policy`) before the component is added
        to a workflow; return ``self``. The constructors' ``policy=`` calls it."""
        if policy is not None and not isinstance(policy, Policy):
            raise WorkflowDefinitionError(
                f"policy= must be an rf.Policy(...), got {type(policy).__name__}",
                component=self.name,
            )
        self.policy = policy
        return self

    def check_parents(self, parents: Sequence[str]) -> None:
        """Raise ``WorkflowDefinitionError`` if the function cannot take these parents."""
        n = len(parents)
        if n > 1 and not self.spec.accepts(n):
            raise WorkflowDefinitionError(
                f"{self.kind} {self.name!r} joins {n} parents {list(parents)} but its function "
                f"takes {_arity_text(self.spec)}: give it {n} positional parameters, one per "
                "parent, in the order listed",
                component=self.name,
            )
        if n == 1 and self.spec.min_args > 1 and self.spec.max_args < 1:
            raise WorkflowDefinitionError(
                f"{self.kind} {self.name!r} cannot take an input", component=self.name
            )

    def context_keys(self) -> tuple[ContextValue, ...]:
        """The run-context keys this component reads."""
        return tuple(marker for _, marker in self.spec.context)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _arity_text(spec: CallSpec) -> str:
    if spec.max_args == float("inf"):
        return f"at least {spec.min_args} argument(s)"
    if spec.min_args == spec.max_args:
        return f"{spec.min_args} argument(s)"
    return f"{spec.min_args} to {int(spec.max_args)} arguments"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise WorkflowDefinitionError(f"component names must be non-empty strings, got {name!r}")
    if name == "root":
        raise WorkflowDefinitionError(
            "'root' is reserved for the workflow's input node: choose another name",
            component=name,
        )


class Step(Component):
    """Calls a function with its input value(s) and produces its return value."""

    kind = "step"
    __slots__ = ()


class Rule(Component):
    """A condition and a reaction: the reaction runs only on inputs the condition accepts.

    A condition that raises ``KeyError``, ``TypeError``, ``AttributeError`` or ``IndexError``
    cannot apply to the input's shape, which counts as a non-match. Any other exception fails
    the rule for that input.
    """

    kind = "rule"
    __slots__ = ("condition", "condition_spec")

    def __init__(
        self, condition: Callable[..., Any], reaction: Callable[..., Any], name: str | None
    ) -> None:
        if not callable(condition):
            raise WorkflowDefinitionError("rule condition must be callable", component=name)
        if inspect.iscoroutinefunction(condition):
            raise WorkflowDefinitionError(
                "rule conditions are evaluated while planning and must be plain functions, "
                "not async def: move the awaiting into the reaction",
                component=name,
            )
        self.condition = condition
        self.condition_spec = _call_spec(condition)
        super().__init__(reaction, name, "cond:" + callable_digest(condition))


class Map(Component):
    """Fans a collection out: one fact per element, each passed through ``fn``.

    ``fn`` may be ``None`` (elements pass unchanged), one function, or a sequence of
    functions/steps applied in order to each element (a small per-element pipeline). Each
    element runs as its own runnable, so elements execute in parallel under a runner.
    """

    kind = "map"
    __slots__ = ("pipeline",)

    def __init__(self, fn: Any, name: str | None) -> None:
        pipeline: tuple[Callable[..., Any], ...]
        if fn is None:
            pipeline = ()
        elif isinstance(fn, Component):
            pipeline = (_require_fn(fn),)
        elif callable(fn):
            pipeline = (fn,)
        elif isinstance(fn, Iterable):
            pipeline = tuple(_require_fn(f) if isinstance(f, Component) else f for f in fn)
        else:
            raise WorkflowDefinitionError(
                f"map expects a function or a list of functions, got {type(fn).__name__}",
                component=name,
            )
        for f in pipeline:
            if not callable(f):
                raise WorkflowDefinitionError(
                    f"map pipeline items must be callable, got {type(f).__name__}", component=name
                )
        self.pipeline = pipeline
        composed: Callable[..., Any] | None = None
        if len(pipeline) == 1:
            composed = pipeline[0]
        elif pipeline:
            composed = Pipeline(pipeline)
        name = name if name is not None else _fn_name(composed, "")
        super().__init__(composed, name or None, "map")
        if composed is None:
            self.spec = CallSpec(1, 1, (), False)


def _require_fn(component: Component) -> Callable[..., Any]:
    if component.fn is None:
        raise WorkflowDefinitionError(f"{component!r} has no function to use in a map")
    return component.fn


class Pipeline:
    """Applies functions in order; picklable when its functions are."""

    __slots__ = ("fns",)

    def __init__(self, fns: Sequence[Callable[..., Any]]) -> None:
        self.fns = tuple(fns)

    def __call__(self, value: Any) -> Any:
        for fn in self.fns:
            value = fn(value)
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pipeline, (self.fns,))


@dataclass(frozen=True, slots=True)
class Halt:
    """Returned by a reducer to stop a reduction early with ``value``."""

    value: Any
    """The final accumulated value."""


def halt(value: Any) -> Halt:
    """Stop a ``reduce`` early: ``return rf.halt(acc)`` from its reducer."""
    return Halt(value)


class Reduce(Component):
    """Folds the elements of one fan-out of ``map`` in element order.

    The reducer takes ``(value, accumulated)`` and returns the new accumulated value, or
    ``rf.halt(acc)`` to stop early. Elements dropped on the way (a rule that did not match)
    are left out; if an element failed, the reduce is skipped for that fan-out.
    """

    kind = "reduce"
    __slots__ = ("initial", "map_name")

    def __init__(self, fn: Callable[..., Any], initial: Any, map_name: str, name: str | None):
        if not isinstance(map_name, str) or not map_name:
            raise WorkflowDefinitionError(
                "reduce needs map='<name of the map it gathers>'", component=name
            )
        self.initial = initial
        self.map_name = map_name
        super().__init__(fn, name, f"reduce:{map_name}:{stable_repr(initial)}")

    def check_parents(self, parents: Sequence[str]) -> None:
        """A reduce gathers a single stream of elements."""
        if len(parents) != 1:
            raise WorkflowDefinitionError(
                f"reduce {self.name!r} takes one parent (the map or a step after it), "
                f"not {list(parents)}",
                component=self.name,
            )


class Fold:
    """The work of a reduce runnable: fold values in order, honouring ``rf.halt``."""

    __slots__ = ("reducer",)

    def __init__(self, reducer: Callable[..., Any]) -> None:
        self.reducer = reducer

    def __call__(self, values: Sequence[Any], initial: Any) -> Any:
        acc = initial
        for value in values:
            acc = self.reducer(value, acc)
            if isinstance(acc, Halt):
                return acc.value
        return acc

    def __reduce__(self) -> tuple[Any, ...]:
        return (Fold, (self.reducer,))


class Accumulator(Component):
    """Carries state across inputs: ``state = reducer(value, state)`` for each input.

    Inputs are applied one at a time in arrival order; each produces a fact holding the new
    state. ``init`` is the initial state, or a zero-argument callable returning it.
    """

    kind = "accumulator"
    __slots__ = ("init",)

    def __init__(self, reducer: Callable[..., Any], init: Any, name: str | None) -> None:
        self.init = init
        init_repr = "fn:" + callable_digest(init) if callable(init) else stable_repr(init)
        super().__init__(reducer, name, f"init:{init_repr}")

    def initial_state(self) -> Any:
        """Compute the initial state."""
        return self.init() if callable(self.init) else copy.deepcopy(self.init)

    def check_parents(self, parents: Sequence[str]) -> None:
        """An accumulator takes one stream of inputs."""
        if len(parents) != 1:
            raise WorkflowDefinitionError(
                f"{self.kind} {self.name!r} takes one parent, not {list(parents)}",
                component=self.name,
            )


class StateMachine(Accumulator):
    """An accumulator whose reactor rules see each new state.

    ``reactors`` are rules (or plain functions, treated as steps) added under the state
    machine; they receive the state after every transition.
    """

    kind = "state_machine"
    __slots__ = ("reactors",)

    def __init__(
        self,
        reducer: Callable[..., Any],
        init: Any,
        reactors: Sequence[Component | Callable[..., Any]],
        name: str | None,
    ) -> None:
        super().__init__(reducer, init, name)
        built: list[Component] = []
        for i, r in enumerate(reactors):
            if isinstance(r, Component):
                built.append(r)
            elif callable(r):
                built.append(Step(r, f"{self.name}.reactor_{i}"))
            else:
                raise WorkflowDefinitionError(
                    f"state machine reactors must be rules or functions, got {type(r).__name__}",
                    component=self.name,
                )
        self.reactors = tuple(built)


class AwaitEvent(Component):
    """Parks its input until an external event (or its timeout) arrives.

    It then produces a :class:`~runeflow.model.facts.Signal` carrying the event's name and
    payload, on which downstream steps and rules can branch.
    """

    kind = "await"
    __slots__ = ("events", "timeout")

    def __init__(self, name: str, events: Sequence[str], timeout: float | None) -> None:
        if not name:
            raise WorkflowDefinitionError("await_event needs a name=")
        if isinstance(events, str):
            events = [events]
        evs = tuple(events)
        if not evs or not all(isinstance(e, str) and e for e in evs):
            raise WorkflowDefinitionError(
                "await_event needs events=[...] naming the events it accepts", component=name
            )
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise WorkflowDefinitionError(
                f"await_event timeout must be a positive number of seconds, got {timeout!r}",
                component=name,
            )
        if timeout is not None and "timeout" not in evs:
            evs = (*evs, "timeout")
        self.events = evs
        self.timeout = float(timeout) if timeout is not None else None
        super().__init__(None, name, f"await:{evs}:{self.timeout}")

    def check_parents(self, parents: Sequence[str]) -> None:
        """A wait takes one input."""
        if len(parents) != 1:
            raise WorkflowDefinitionError(
                f"await_event {self.name!r} takes one parent, not {list(parents)}",
                component=self.name,
            )


@dataclass(frozen=True, slots=True)
class Join:
    """Describes a component fed by several parents (``add(child, to=[a, b, ...])``).

    The child runs once it has a fact from every parent within the same scope (the same
    input and fan-out element) and receives their values positionally, in this order.
    """

    component: str
    """The joining component."""
    parents: tuple[str, ...]
    """Its parents, in argument order."""


# --- constructors -------------------------------------------------------------------------


def step(fn: Callable[..., Any], *, name: str | None = None, policy: Policy | None = None) -> Step:
    """Wrap a function (plain or ``async def``) as a step.

    A step with one parent gets the parent's value; one that takes no parameters is called
    without arguments; one that takes ``n > 1`` parameters under a single parent gets the
    parent's value unpacked. Under a join it gets one value per parent. ``policy`` says how
    runners run it (retries, timeout, fallback...), wherever the definition is run.
    """
    return Step(fn, name).with_policy(policy)


def rule(
    *,
    condition: Callable[..., Any],
    reaction: Callable[..., Any],
    name: str | None = None,
    policy: Policy | None = None,
) -> Rule:
    """Build a rule: ``reaction`` runs on inputs for which ``condition`` is true.

    ``policy`` applies to the reaction (conditions run while planning).
    """
    return Rule(condition, reaction, name).with_policy(policy)


def map(fn: Any = None, *, name: str | None = None, policy: Policy | None = None) -> Map:
    """Fan out a collection: one fact per element, through ``fn`` (or a list of functions).

    ``policy`` applies to each element's runnable.
    """
    return Map(fn, name).with_policy(policy)


def reduce(
    fn: Callable[..., Any],
    initial: Any = None,
    *,
    map: str,
    name: str | None = None,
    policy: Policy | None = None,
) -> Reduce:
    """Fold the elements of a fan-out of the map named ``map``, in order."""
    return Reduce(fn, initial, map, name).with_policy(policy)


def accumulator(
    reducer: Callable[..., Any],
    *,
    init: Any = None,
    name: str | None = None,
    policy: Policy | None = None,
) -> Accumulator:
    """Carry state across inputs: ``state = reducer(value, state)``."""
    return Accumulator(reducer, init, name).with_policy(policy)


def state_machine(
    *,
    init: Any,
    reducer: Callable[..., Any],
    reactors: Sequence[Component | Callable[..., Any]] = (),
    name: str | None = None,
    policy: Policy | None = None,
) -> StateMachine:
    """An accumulator plus reactor rules that see each new state.

    ``policy`` applies to the reducer; give reactors their own with ``rf.rule(policy=...)``.
    """
    machine = StateMachine(reducer, init, reactors, name)
    return machine.with_policy(policy)


def await_event(*, name: str, events: Sequence[str], timeout: float | None = None) -> AwaitEvent:
    """A step that waits for one of ``events`` (or for ``timeout`` seconds)."""
    return AwaitEvent(name, events, timeout)
