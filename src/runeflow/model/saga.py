"""``rf.saga``: actions in order, compensated in reverse when one fails.

A saga is lowered to a chain of steps that pass one record along: the saga's input, the
results so far, and whether it is still running or compensating. For steps ``a, b, c``::

    <name>.a -> <name>.b -> <name>.c -> <name>.undo.b -> <name>.undo.a -> <name>

Each action runs while the saga is running; when one fails, the saga turns to
compensating, the later actions pass the record on untouched, and the compensations of the
completed steps run in reverse order (the last step has none: it never completes before a
failure). ``<name>`` produces the outcome. Every action and every compensation is its own
runnable, checkpointed like any other: after a crash, what was checkpointed never runs
again, and a compensation in flight runs again (so compensations should be idempotent,
e.g. keyed by ``rf.context("idempotency_key")`` or the runnable id).

An action fails in two ways. Its own exception is caught in the call (:class:`_Action`)
and aborts the saga at once, so runner policies do not retry it. Anything else that makes
the action's step fail for good (a timeout, a result the store cannot keep, a dead worker
process, a dispatch error, a missing run-context key, a hook that raised) comes to the
workflow as that step's final failure, after the retries its policy allows; the step is an
:class:`_ActionStep`, which the workflow asks for the value to produce instead
(``Component.absorbs_failures``): the record that aborts the saga. A compensation's
exception is a failure like any step's, retried by its policy (``rf.saga(policy=...)``),
and a compensation that fails for good leaves the saga failed, visible in ``failures()``.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.components import CallSpec, Component, Step, _call_spec, _refuse_meta
from runeflow.model.events import ErrorInfo
from runeflow.model.policy import Policy
from runeflow.model.stateful import Composite, Parts

__all__ = ["Saga", "saga"]

SagaStep = tuple[str, Callable[..., Any], Callable[..., Any] | None]


def _call(fn: Callable[..., Any], args: tuple[Any, ...], context: Mapping[str, Any]) -> Any:
    result = fn(*args, **context)
    if inspect.iscoroutine(result):  # an async def action: run it here
        from runeflow._aio import run_coroutine

        result = run_coroutine(result)
    return result


class _Action:
    """A saga step's action: runs while the saga is running; an exception aborts it."""

    __slots__ = ("first", "fn", "saga", "step", "with_results")

    def __init__(
        self, saga: str, step: str, fn: Callable[..., Any], first: bool, with_results: bool
    ) -> None:
        self.saga, self.step, self.fn = saga, step, fn
        self.first, self.with_results = first, with_results

    def __call__(self, value: Any, **context: Any) -> dict[str, Any]:
        record = _start(value) if self.first else value
        if record["status"] != "running":
            return dict(record)
        results = record["results"]
        args = (record["input"], dict(results)) if self.with_results else (record["input"],)
        try:
            result = _call(self.fn, args, context)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            return self._abort(record, error, "".join(traceback.format_exception(exc)))
        return {**record, "results": {**results, self.step: result}}

    def aborted(self, value: Any, error: ErrorInfo) -> dict[str, Any]:
        """The record after this action failed for good outside its own call (a timeout, a
        result the store cannot keep, a crashed worker, a dispatch error...)."""
        record = _start(value) if self.first else value
        if record["status"] != "running":
            return dict(record)
        kind = error.type.rpartition(".")[2]
        return self._abort(record, f"{kind}: {error.message}", error.traceback)

    def _abort(self, record: Mapping[str, Any], error: str, trace: str) -> dict[str, Any]:
        failed = {"step": self.step, "error": error, "traceback": trace}
        return {**record, "status": "compensating", "failed": failed}

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.saga, self.step, self.fn, self.first, self.with_results)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Action, (self.saga, self.step, self.fn, self.first, self.with_results))


class _ActionStep(Step):
    """The step running a saga's action: whatever makes it fail for good (its action
    raising, a timeout, a result the store cannot keep, a crashed worker, a dispatch
    error...), it produces the record that aborts the saga, so the compensations run."""

    __slots__ = ()
    absorbs_failures = True

    def failure_value(self, value: Any, error: ErrorInfo) -> Any:
        """The aborting record, from the action's input record and the error."""
        assert isinstance(self.fn, _Action)
        return self.fn.aborted(value, error)


def _start(value: Any) -> dict[str, Any]:
    return {"status": "running", "input": value, "results": {}, "failed": None, "compensated": {}}


class _Compensation:
    """Undoes a completed step while the saga is compensating; otherwise passes the record."""

    __slots__ = ("fn", "step", "with_results")

    def __init__(self, step: str, fn: Callable[..., Any], with_results: bool) -> None:
        self.step, self.fn, self.with_results = step, fn, with_results

    def __call__(self, record: Mapping[str, Any], **context: Any) -> dict[str, Any]:
        results = record["results"]
        if record["status"] != "compensating" or self.step not in results:
            return dict(record)
        args = (record["input"], dict(results)) if self.with_results else (results[self.step],)
        result = _call(self.fn, args, context)
        return {**record, "compensated": {**record["compensated"], self.step: result}}

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.step, self.fn, self.with_results)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Compensation, (self.step, self.fn, self.with_results))


class _Outcome:
    """The saga's production: completed with its results, or aborted."""

    __slots__ = ("on_abort", "on_complete", "saga")

    def __init__(
        self,
        saga: str,
        on_complete: Callable[..., Any] | None,
        on_abort: Callable[..., Any] | None,
    ) -> None:
        self.saga, self.on_complete, self.on_abort = saga, on_complete, on_abort

    def __call__(self, record: Mapping[str, Any]) -> Any:
        results = dict(record["results"])
        if record["status"] == "running":
            if self.on_complete is not None:
                return _call(self.on_complete, (results,), {})
            return {"saga": self.saga, "status": "completed", "results": results}
        failed, compensated = dict(record["failed"]), dict(record["compensated"])
        if self.on_abort is not None:
            return _call(self.on_abort, (failed, compensated), {})
        return {
            "saga": self.saga,
            "status": "aborted",
            "failed_step": failed["step"],
            "error": failed["error"],
            "results": results,
            "compensated": compensated,
        }

    def _rf_digest_parts(self) -> tuple[Any, ...]:
        return (self.saga, self.on_complete, self.on_abort)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Outcome, (self.saga, self.on_complete, self.on_abort))


class Saga(Composite):
    """Actions in order, compensated in reverse on failure (see :func:`saga`)."""

    kind = "saga"

    def __init__(
        self,
        name: str,
        steps: Sequence[Sequence[Any]],
        on_complete: Callable[..., Any] | None,
        on_abort: Callable[..., Any] | None,
        policy: Policy | None,
    ) -> None:
        super().__init__(name, policy)
        if policy is not None and policy.fallback is not None:
            raise WorkflowDefinitionError(
                f"saga {name!r}: a policy fallback= would replace the record its parts pass "
                "along, and the saga could no longer compensate: leave fallback out (an "
                "action that fails for good aborts the saga; shape the outcome with on_abort)",
                component=name,
            )
        self.steps = _check_steps(name, steps)
        """``(name, action, compensation)`` per step, in order."""
        self._specs = [
            (
                _user_spec(name, f"the action of {step!r}", action, (1, 2)),
                _user_spec(name, f"the compensation of {step!r}", undo, (1, 2))
                if i < len(self.steps) - 1 and undo is not None
                else None,
            )
            for i, (step, action, undo) in enumerate(self.steps)
        ]
        for what, fn in (("on_complete", on_complete), ("on_abort", on_abort)):
            if fn is not None:
                spec = _user_spec(name, what, fn, (1,) if what == "on_complete" else (2,))
                if spec.context:
                    raise WorkflowDefinitionError(
                        f"saga {name!r}: {what} reads the run context, which it does not get: "
                        "read it in a step under the saga instead",
                        component=name,
                    )
        self.on_complete = on_complete
        """``on_complete(results)``: the production of a completed saga."""
        self.on_abort = on_abort
        """``on_abort(failure, compensated)``: the production of an aborted saga."""

    def _lower(self, parents: tuple[str, ...]) -> Parts:
        name = self.name
        parts: Parts = []
        above = parents
        for i, (step, action, _) in enumerate(self.steps):
            spec = self._specs[i][0]
            runner = _Action(name, step, action, i == 0, spec.accepts(2))
            above = _add(parts, _ActionStep(runner, f"{name}.{step}"), spec, above)
        for i in range(len(self.steps) - 2, -1, -1):
            step, _, compensation = self.steps[i]
            undo_spec = self._specs[i][1]
            assert compensation is not None and undo_spec is not None
            undo = _Compensation(step, compensation, undo_spec.accepts(2))
            above = _add(parts, Step(undo, f"{name}.undo.{step}"), undo_spec, above)
        outcome = _Outcome(name, self.on_complete, self.on_abort)
        parts.append((Step(outcome, name), above))
        return parts


def _add(parts: Parts, step: Step, spec: CallSpec, above: tuple[str, ...]) -> tuple[str, ...]:
    step.spec = CallSpec(1, 1, spec.context, False)  # the user's run-context parameters
    parts.append((step, above))
    return (step.name,)


def _user_spec(saga: str, what: str, fn: Any, arities: tuple[int, ...]) -> CallSpec:
    if not callable(fn):
        raise WorkflowDefinitionError(
            f"saga {saga!r}: {what} must be a function, got {type(fn).__name__}",
            component=saga,
        )
    spec = _call_spec(fn)
    _refuse_meta(spec, "saga", saga)
    if not any(spec.accepts(n) for n in arities):
        takes = " or ".join(f"{n} argument(s)" for n in arities)
        raise WorkflowDefinitionError(
            f"saga {saga!r}: {what} must take {takes} (see rf.saga)", component=saga
        )
    return spec


def _function(fn: Any) -> Any:
    """A decorated function (a component) stands for its function."""
    return fn.fn if isinstance(fn, Component) and fn.fn is not None else fn


def _check_steps(name: str, steps: Any) -> list[SagaStep]:
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise WorkflowDefinitionError(
            f"saga {name!r} needs steps=[(name, action, compensation), ...]", component=name
        )
    out: list[SagaStep] = []
    seen: set[str] = set()
    for i, item in enumerate(steps):
        last = i == len(steps) - 1
        if not isinstance(item, tuple | list) or len(item) not in (2, 3):
            raise WorkflowDefinitionError(
                f"saga {name!r}: step {i + 1} must be (name, action, compensation), or "
                f"(name, action) for the last step; got {item!r}",
                component=name,
            )
        step, action = item[0], _function(item[1])
        compensation = _function(item[2]) if len(item) == 3 else None
        if not isinstance(step, str) or not step or step in seen:
            raise WorkflowDefinitionError(
                f"saga {name!r}: step names must be unique non-empty strings, got {step!r}",
                component=name,
            )
        seen.add(step)
        if compensation is None and not last:
            raise WorkflowDefinitionError(
                f"saga {name!r}: step {step!r} has no compensation, but every step except "
                "the last needs one: the function that undoes it when a later step fails "
                "(called with the saga's input and the results so far, or with its own "
                "result alone); if it leaves nothing to undo, pass lambda *_: None",
                component=name,
            )
        out.append((step, action, compensation))
    return out


def saga(
    *,
    name: str,
    steps: Sequence[Sequence[Any]],
    on_complete: Callable[..., Any] | None = None,
    on_abort: Callable[..., Any] | None = None,
    policy: Policy | None = None,
) -> Saga:
    """A saga: ``steps=[(name, action, compensation), ...]`` run in order.

    Each action is called with the saga's input and a dict of the results so far (step name
    -> result), or with the input alone if it takes one parameter; it may be ``async def``
    and may read the run context. When an action fails for good (it raises; or, after the
    retries its policy allows, it times out, returns what the store cannot keep, loses its
    worker process...), the compensations of the steps that completed run in reverse order,
    each called with the input and the results so far (or with its own step's result
    alone); every step but the last needs one. The
    component ``name`` produces the outcome: ``{"saga", "status": "completed", "results"}``
    or ``{"saga", "status": "aborted", "failed_step", "error", "results", "compensated"}``,
    or what ``on_complete(results)`` / ``on_abort(failure, compensated)`` return instead
    (``failure`` is ``{"step", "error", "traceback"}``). See :mod:`runeflow.model.saga`
    for durability and retries.

    Raises:
        WorkflowDefinitionError: no steps, a duplicate step name, a missing compensation,
            a function that cannot take the arguments it is given, or a policy with a
            ``fallback``.
    """
    return Saga(name, steps, on_complete, on_abort, policy)
