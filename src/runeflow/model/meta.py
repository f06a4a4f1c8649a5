"""Meta-conditions: rule conditions that read the workflow's own state.

Declared like ``rf.context``, as parameter defaults of a rule's condition::

    def ready(order, paid=rf.step_ran("charge"), stock=rf.state_of("inventory")):
        return paid and stock.get(order["sku"], 0) > 0

* ``rf.state_of("acc")``: the current state of an accumulator, state machine or state-based
  component (its initial state before any input);
* ``rf.step_ran("name")``: whether a component has produced a value yet;
* ``rf.fact_count("name")``: how many values it has produced.

They are resolved while planning, when the condition is evaluated, from the state the
workflow has at that moment, and the decision is logged (``condition_satisfied`` or
``condition_rejected``): a workflow rebuilt from its log, in memory or from a store, holds
the very same decisions and never evaluates a condition again. Each read draws an edge from
the component read to the rule (``runeflow graph`` draws it dashed), and the component must
exist when the rule is added; ``state_of`` needs a stateful one. Only rule conditions may
declare them: elsewhere it is a ``WorkflowDefinitionError``.
"""

from __future__ import annotations

from typing import Any

from runeflow.model.components import MetaKind, MetaRef

__all__ = ["MetaKind", "MetaRef", "fact_count", "state_of", "step_ran"]


def state_of(component: str) -> Any:
    """Declare a condition parameter holding ``component``'s current state.

    ``component`` is an accumulator, a state machine or a state-based component
    (``rf.fsm``, ``rf.aggregate``, ``rf.process_manager``); before its first input the
    parameter holds its initial state.
    """
    return MetaRef("state_of", component)


def step_ran(component: str) -> Any:
    """Declare a condition parameter that is ``True`` once ``component`` produced a value."""
    return MetaRef("step_ran", component)


def fact_count(component: str) -> Any:
    """Declare a condition parameter holding how many values ``component`` has produced."""
    return MetaRef("fact_count", component)
