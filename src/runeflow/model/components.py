"""Workflow components: steps, rules, maps, reduces, accumulators, state machines, waits.

The constructors users call (``rf.step``, ``rf.rule``...) are in
:mod:`runeflow.model.constructors`. A component wraps plain Python functions. It knows how
its function is called (its *call spec*: how many input values it takes, which parameters
come from the run context) and it has a content hash (see :mod:`runeflow.model.hashing`).
How facts reach a component and what it produces is the workflow's business
(:mod:`runeflow.model.workflow`); a component only says how to turn its inputs into a
:class:`~runeflow.model.runnable.Runnable` and how to read the result.
"""

from __future__ import annotations

import copy
import inspect
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.hashing import callable_digest, digest, stable_repr
from runeflow.model.policy import Policy

if TYPE_CHECKING:
    from runeflow.model.events import ErrorInfo

__all__ = [
    "Accumulator",
    "AwaitEvent",
    "CallSpec",
    "Component",
    "ContextValue",
    "Halt",
    "Join",
    "Map",
    "MetaKind",
    "MetaRef",
    "Reduce",
    "Rule",
    "StateMachine",
    "Step",
    "context",
    "halt",
]

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()
_VARARGS = inspect.CO_VARARGS
_FUNCTION = types.FunctionType


class ContextValue:
    """Marks a parameter to be filled from the run context (see :func:`context`).

    Meta-conditions (:mod:`runeflow.model.meta`) are markers of the same family, filled from
    the workflow's state instead; ``is_meta`` tells them apart.
    """

    __slots__ = ("default", "key")
    is_meta: ClassVar[bool] = False
    """True for meta-condition markers (``rf.state_of``...), read from the workflow's state."""

    def __init__(self, key: str, default: Any = _MISSING) -> None:
        if not isinstance(key, str) or not key:
            raise WorkflowDefinitionError(f"rf.context() needs a non-empty key, got {key!r}")
        self.key = key
        self.default = default

    @property
    def required(self) -> bool:
        """True when the key has no default."""
        return self.default is _MISSING

    def __repr__(self) -> str:
        """``rf.context('key')``, with the default when there is one: a component's hash
        covers its functions' defaults through this text, so it covers the default too."""
        if self.required:
            return f"rf.context({self.key!r})"
        return f"rf.context({self.key!r}, default={stable_repr(self.default)})"


MetaKind = Literal["state_of", "step_ran", "fact_count"]
"""``state_of``: a stateful component's state; ``step_ran``: whether a component has produced
a value; ``fact_count``: how many it has produced."""

_META_KINDS = ("state_of", "step_ran", "fact_count")


class MetaRef(ContextValue):
    """A rule-condition parameter filled from the workflow's state (``rf.state_of``...).

    See :mod:`runeflow.model.meta`.
    """

    __slots__ = ("kind", "target")
    is_meta: ClassVar[bool] = True

    def __init__(self, kind: MetaKind, target: str) -> None:
        if kind not in _META_KINDS:
            raise WorkflowDefinitionError(
                f"unknown meta-condition {kind!r}: use one of {_META_KINDS}"
            )
        if not isinstance(target, str) or not target:
            raise WorkflowDefinitionError(
                f"rf.{kind}() needs the name of a component, got {target!r}"
            )
        super().__init__(f"{kind}:{target}")
        self.kind: MetaKind = kind
        """What is read."""
        self.target = target
        """The component read."""

    @property
    def required(self) -> bool:
        """Always resolved from the workflow: never a missing run-context key."""
        return False

    def __repr__(self) -> str:
        return f"rf.{self.kind}({self.target!r})"


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


Hook = Callable[[Any], "Mapping[str, Any] | None"]
"""A ``before``/``after`` hook: called with a :class:`~runeflow.model.runnable.Runnable`;
may return a dict of annotations, which is logged."""


class Component:
    """Base of every component. Subclasses set ``kind`` and build their runnables.

    A component is callable: calling it calls its function, so a function decorated with
    ``@rf.step`` (or another constructor) can still be called, and unit-tested, directly.
    """

    kind: ClassVar[str] = "component"
    __slots__ = (
        "after",
        "auto_named",
        "before",
        "fn",
        "group",
        "hash",
        "name",
        "policy",
        "spec",
    )
    fn: Callable[..., Any] | None
    absorbs_failures: ClassVar[bool] = False
    """True when a final failure of one of its runnables is turned into a value by
    :meth:`failure_value` instead of being recorded (a saga's actions)."""

    def __init__(self, fn: Callable[..., Any] | None, name: str | None, options: str = "") -> None:
        if fn is None:
            pass
        elif type(fn) is not _FUNCTION:
            if isinstance(fn, Component):  # rf.step(decorated_function, name=...)
                fn = fn.fn
            if fn is not None and not callable(fn):
                raise WorkflowDefinitionError(
                    f"{self.kind} expects a callable, got {type(fn).__name__}", component=name
                )
        elif fn.__qualname__ == fn.__name__ != "<lambda>":  # a module-level function
            _keep_importable(fn)
        self.fn = fn
        self.policy: Policy | None = None
        """How runners run it (retries, timeout, fallback...); not part of its hash."""
        self.before: Hook | None = None
        """Called with each runnable as it is handed out (see :meth:`with_hooks`)."""
        self.after: Hook | None = None
        """Called with each executed runnable before its result is applied."""
        self.group: str | None = None
        """The state-based component (``rf.saga``...) this is a part of: its run-context
        entry is read after the part's own; not part of the hash."""
        self.spec = _call_spec(fn) if fn is not None else CallSpec(1, 1, (), False)
        self.auto_named = name is None
        fn_digest = callable_digest(fn)
        self.name = name if name is not None else _fn_name(fn, f"{self.kind}_{fn_digest[:8]}")
        _check_name(self.name)
        if self.spec.context:
            _refuse_meta(self.spec, self.kind, self.name)
        self.hash = digest(self.kind, self.name, fn_digest, options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the component's function directly, outside any workflow."""
        if self.fn is None:
            raise TypeError(f"{self.kind} {self.name!r} has no function to call")
        return self.fn(*args, **kwargs)

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        """A component captured by a function is hashed as its own content hash."""
        return (self.hash,)

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

    def with_hooks(self, before: Hook | None = None, after: Hook | None = None) -> Self:
        """Attach hooks that observe this component's runnables; return ``self``.

        Both run on the workflow's side, never in the executor, one at a time: ``before``
        with each runnable as it is handed out (``prepare_for_dispatch``), ``after`` with
        each executed runnable when it comes back, before its result is applied. Either may
        return a dict of annotations, logged as a ``runnable_annotated`` event (read them
        with ``wf.annotations(runnable_id)``). A hook that raises fails that runnable with its
        error. Hooks are not part of the component's hash.
        """
        for which, hook in (("before", before), ("after", after)):
            if hook is not None and not callable(hook):
                raise WorkflowDefinitionError(
                    f"{which}= must be a function taking the runnable, got {type(hook).__name__}",
                    component=self.name,
                )
        if before is not None:
            self.before = before
        if after is not None:
            self.after = after
        return self

    def failure_value(self, value: Any, error: ErrorInfo) -> Any:
        """The value produced instead of a final failure (when :attr:`absorbs_failures`),
        given the input value and the error."""
        raise NotImplementedError

    def context_keys(self) -> tuple[ContextValue, ...]:
        """The run-context keys this component's functions read."""
        return tuple(marker for _, marker in self.spec.context if not marker.is_meta)

    def meta_reads(self) -> tuple[MetaRef, ...]:
        """The meta-conditions (``rf.state_of``...) this component reads (rules only)."""
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _arity_text(spec: CallSpec) -> str:
    if spec.max_args == float("inf"):
        return f"at least {spec.min_args} argument(s)"
    if spec.min_args == spec.max_args:
        return f"{spec.min_args} argument(s)"
    return f"{spec.min_args} to {int(spec.max_args)} arguments"


def _keep_importable(fn: types.FunctionType) -> None:
    """Keep a decorated module-level function reachable by name.

    ``@rf.step`` replaces ``module.price`` by the component, so pickling the function by
    name (``module.price``, for the ``processes`` executor) would find the component. Such a
    function is renamed ``price.fn``, which is where it now lives; a function still bound
    under its own name (``rf.step(price)``) is left alone.
    """
    module = sys.modules.get(fn.__module__)
    if module is not None and vars(module).get(fn.__qualname__) is not fn:
        fn.__qualname__ = f"{fn.__qualname__}.fn"


def _refuse_meta(spec: CallSpec, kind: str, name: str) -> None:
    for param, marker in spec.context:
        if marker.is_meta:
            raise WorkflowDefinitionError(
                f"{kind} {name!r} declares {param}={marker!r}, but meta-conditions are read "
                "only by rule conditions (they are decided while planning and logged): move "
                "the check into a rule's condition",
                component=name,
            )


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
    condition: Callable[..., Any]

    def __init__(
        self, condition: Callable[..., Any], reaction: Callable[..., Any] | None, name: str | None
    ) -> None:
        if isinstance(condition, Rule) and condition.fn is None:  # rf.filter: its predicate
            condition = condition.condition
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
        cond_digest = callable_digest(condition)
        if reaction is None and name is None:  # a filter is named after its predicate
            name = _fn_name(condition, f"filter_{cond_digest[:8]}")
        super().__init__(reaction, name, "cond:" + cond_digest)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the reaction directly (for a filter, its predicate)."""
        if self.fn is None:
            return self.condition(*args, **kwargs)
        return self.fn(*args, **kwargs)

    def context_keys(self) -> tuple[ContextValue, ...]:
        """The run-context keys the condition and the reaction read."""
        cond = tuple(m for _, m in self.condition_spec.context if not m.is_meta)
        return cond + super().context_keys()

    def meta_reads(self) -> tuple[MetaRef, ...]:
        """The meta-conditions the condition reads (``rf.state_of``, ``rf.step_ran``...)."""
        return tuple(m for _, m in self.condition_spec.context if isinstance(m, MetaRef))


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
        elif isinstance(composed, Pipeline):
            self.spec = composed.spec()
            _refuse_meta(self.spec, self.kind, self.name)


def _require_fn(component: Component) -> Callable[..., Any]:
    if component.fn is None:
        raise WorkflowDefinitionError(f"{component!r} has no function to use in a map")
    return component.fn


class Pipeline:
    """Applies functions in order; picklable when its functions are.

    Run-context parameters of its functions are passed as ``"<index>:<parameter>"`` keyword
    arguments (see :meth:`spec`), each handed to its own function.
    """

    __slots__ = ("fns", "params")

    def __init__(self, fns: Sequence[Callable[..., Any]]) -> None:
        self.fns = tuple(fns)
        self.params = tuple(tuple(p for p, _ in _call_spec(fn).context) for fn in self.fns)

    def spec(self) -> CallSpec:
        """One input; the context parameters of every function, keyed by position."""
        ctx = tuple(
            (f"{i}:{param}", marker)
            for i, fn in enumerate(self.fns)
            for param, marker in _call_spec(fn).context
        )
        return CallSpec(1, 1, ctx, False)

    def __call__(self, value: Any, **kwargs: Any) -> Any:
        for i, fn in enumerate(self.fns):
            params = self.params[i]
            if params and kwargs:
                value = fn(value, **{p: kwargs[f"{i}:{p}"] for p in params if f"{i}:{p}" in kwargs})
            else:
                value = fn(value)
        return value

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return self.fns

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

    def __call__(self, values: Sequence[Any], initial: Any, **context: Any) -> Any:
        acc = initial
        reducer = self.reducer
        for value in values:
            acc = reducer(value, acc, **context) if context else reducer(value, acc)
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
