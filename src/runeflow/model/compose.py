"""Composing workflows: merging one into another, and removing components.

``wf.merge(other)`` adds ``other``'s components, edges, output ports and policies to ``wf``;
``wf.remove(name, ...)`` takes components out with their edges. Both check everything
before changing anything, so a refused call leaves the workflow as it was. The checks live
here; :class:`~runeflow.model.workflow.Workflow` logs what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from runeflow.errors import InstanceStateError, WorkflowDefinitionError
from runeflow.model import events as ev
from runeflow.model.components import Rule
from runeflow.model.facts import ROOT
from runeflow.model.folding import Folding
from runeflow.model.graph import Graph
from runeflow.model.policy import Policies

__all__ = ["merged_graph", "pending_work", "removal_order"]


def merged_graph(graph: Graph, other: Graph) -> tuple[Graph, list[str]]:
    """Return a copy of ``graph`` with ``other`` merged in, and the names it added.

    Raises:
        WorkflowDefinitionError: a component of the same name differs (its code, kind or
            parents), an output port names two components, or a policy key two policies.
    """
    merged = graph.copy()
    added: list[str] = []
    for event in other.build_events():
        if not isinstance(event, ev.ComponentAdded):
            continue
        name = event.name
        mine = merged.components.get(name)
        if mine is not None:
            _check_same(merged, other, name)
            continue
        component = other.components[name]
        merged._check_parents(component, event.parents)
        if isinstance(component, Rule):
            merged._check_reads(component)
        merged._insert(component, event.parents)
        added.append(name)
    for port, name in other.outputs.items():
        if merged.outputs.get(port, name) != name:
            raise WorkflowDefinitionError(
                f"cannot merge workflow {other.name!r} into {graph.name!r}: output port "
                f"{port!r} names {merged.outputs[port]!r} in one and {name!r} in the other; "
                "rename the port in one of them",
                component=name,
            )
        merged.outputs[port] = name
    merged.outputs_checked = graph.outputs_checked and other.outputs_checked
    merged.policies = _merged_policies(graph, other)
    return merged, added


def _check_same(merged: Graph, other: Graph, name: str) -> None:
    mine, theirs = merged.components[name], other.components[name]
    if mine.kind != theirs.kind:
        why = f"it is a {mine.kind} in one and a {theirs.kind} in the other"
    elif mine.hash != theirs.hash:
        why = "their code or options differ (their content hashes do)"
    elif merged.parents[name] != other.parents[name]:
        why = f"its parents are {list(merged.parents[name])} in one and "
        why += f"{list(other.parents[name])} in the other"
    else:
        return
    raise WorkflowDefinitionError(
        f"cannot merge workflow {other.name!r} into {merged.name!r}: both have a component "
        f"{name!r}, but {why}; components of the same name must be identical: rename one "
        "of them (name=...)",
        component=name,
    )


def _merged_policies(graph: Graph, other: Graph) -> Policies | None:
    if other.policies is None:
        return graph.policies
    if graph.policies is None:
        return other.policies
    table = graph.policies.table()
    for key, policy in other.policies.table().items():
        if table.setdefault(key, policy) != policy:
            raise WorkflowDefinitionError(
                f"cannot merge workflow {other.name!r} into {graph.name!r}: their policies "
                f"for {key!r} differ; give them the same policy, or set it on one side only"
            )
    return Policies(table)


def removal_order(graph: Graph, names: Sequence[str]) -> list[str]:
    """Check that ``names`` can be removed together; return them children first.

    Raises:
        WorkflowDefinitionError: an unknown name, or a component that something left in the
            graph still depends on (a child, a rule reading it, an output port).
    """
    going = set(names)
    for name in names:
        if name == ROOT or name not in graph.components:
            known = ", ".join(graph.components) or "none"
            raise WorkflowDefinitionError(
                f"cannot remove {name!r}: workflow {graph.name!r} has no such component "
                f"(components: {known})",
                component=name,
            )
        _check_nothing_depends_on(graph, name, going)
    order = [n for n in graph.components if n in going]  # parents before children
    return order[::-1]


def _check_nothing_depends_on(graph: Graph, name: str, going: set[str]) -> None:
    left = [c for c in graph.children[name] if c not in going]
    if left:
        raise WorkflowDefinitionError(
            f"cannot remove {name!r}: it feeds {left}, which would be left without that "
            f"parent; remove them together (wf.remove({name!r}, {', '.join(map(repr, left))}))",
            component=name,
        )
    readers = [r for r in graph.readers.get(name, ()) if r not in going]
    if readers:
        raise WorkflowDefinitionError(
            f"cannot remove {name!r}: the condition of {readers} reads it (a meta-condition); "
            "remove those rules too, or first change their conditions",
            component=name,
        )
    ports = [port for port, target in graph.outputs.items() if target == name]
    if ports:
        raise WorkflowDefinitionError(
            f"cannot remove {name!r}: output port(s) {ports} of workflow {graph.name!r} name "
            "it; build the workflow with other outputs=",
            component=name,
        )


def pending_work(wf: Folding, names: Iterable[str]) -> None:
    """Raise ``InstanceStateError`` if any of ``names`` has work pending in ``wf``."""
    going = set(names)
    found: dict[str, list[str]] = {}

    def note(name: str, what: str) -> None:
        if name in going and what not in found.setdefault(name, []):
            found[name].append(what)

    for label, acts in (
        ("ready to run", wf._pending.values()),
        ("a condition to evaluate", wf._matches.values()),
        ("running", wf._in_flight.values()),
    ):
        for act in acts:
            note(act.component.name, label)
    for name, queue in wf._acc_queue.items():
        note(name, "queued inputs" if queue else "running")
    for wait in wf._waits.values():
        note(wait.component, "an open wait")
    for name, _scope in wf._joins:
        note(name, "a join waiting for facts")
    for name, _fan_out in wf._fanin:
        note(name, "a fan-in waiting for elements")
    if found:
        what = "; ".join(f"{n!r}: {', '.join(w)}" for n, w in found.items())
        raise InstanceStateError(
            f"cannot remove from workflow {wf.name!r} while there is pending work ({what}): "
            "let it finish (react_until_satisfied, or wait for the runner), then remove"
        )
