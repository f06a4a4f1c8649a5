"""How a runner picks each component's policy: its own table, then the definition's.

Policies can be declared with the definition (``rf.step(..., policy=...)``,
``rf.workflow(..., policies={...})``; see :mod:`runeflow.model.policy`) and on the runner
(``rf.Runner(policies={...})``). For each component the first of these that applies wins:

1. the runner's entry for its exact name, a name pattern or its kind (``"kind:map"``);
2. the component's own ``policy=``;
3. the workflow's ``policies=`` table (exact name, pattern, kind, then its ``"*"``);
4. the runner's ``"*"`` entry;
5. the default: one attempt, and a failure skips the component's downstream.

So a runner can override a definition for the components it names, while a recovered
instance in a process given no ``policies=`` behaves as the definition says::

    rf.Runner(policies={
        "charge_card": rf.Policy(max_retries=3, backoff="exponential", timeout=10),
        "fetch_*": rf.Policy(max_retries=5, backoff="jitter", base_delay=0.2),
        "kind:map": rf.Policy(executor="processes"),
        "*": rf.Policy(on_failure="halt"),
    })
"""

from __future__ import annotations

from runeflow.model.components import Component
from runeflow.model.policy import DEFAULT_POLICY, Backoff, OnFailure, Policies, Policy

__all__ = ["DEFAULT_POLICY", "Backoff", "OnFailure", "Policies", "Policy", "resolve_policy"]


def resolve_policy(runner: Policies, workflow: Policies | None, component: Component) -> Policy:
    """The policy ``component`` runs with (see the module docstring for the order)."""
    name, kind = component.name, component.kind
    hit = runner.named(name, kind)
    if hit is not None:
        return hit
    if component.policy is not None:
        return component.policy
    if workflow is not None:
        hit = workflow.lookup(name, kind)
        if hit is not None:
            return hit
    return runner.default or DEFAULT_POLICY
