"""Drawing a workflow graph as Mermaid or Graphviz DOT text (for ``runeflow graph``).

Each component kind has its own shape; the workflow's input is a circle. A join's edges are
numbered with the argument position each parent fills. What a rule's condition reads of the
workflow (meta-conditions: ``rf.state_of``, ``rf.step_ran``, ``rf.fact_count``) is drawn as
a dashed edge from the component read, labelled with the kind of read. When the nodes carry
an instance's state (``runeflow graph --id``), nodes are colored by it and labelled with its
counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runeflow.model.facts import ROOT
from runeflow.model.workflow import Workflow
from runeflow.view import NodeInfo

__all__ = ["STATE_STYLES", "nodes_of", "to_dot", "to_mermaid"]

STATE_STYLES: dict[str, tuple[str, str]] = {
    "ran": ("#d3f0da", "#2e7d32"),
    "running": ("#cfe2ff", "#1565c0"),
    "waiting": ("#fff1c2", "#b7791f"),
    "failed": ("#f8d3d6", "#c62828"),
    "skipped": ("#e9ecef", "#6c757d"),
    "pending": ("#ffffff", "#9e9e9e"),
}
"""``state -> (fill color, stroke color)``."""

# kind -> (opening, closing) of a Mermaid node; https://mermaid.js.org/syntax/flowchart.html
_MERMAID_SHAPES: dict[str, tuple[str, str]] = {
    "step": ("[", "]"),
    "rule": ("{", "}"),
    "map": ("[/", "/]"),
    "reduce": ("[\\", "\\]"),
    "accumulator": ("[(", ")]"),
    "state_machine": ("[[", "]]"),
    "await": ("{{", "}}"),
    ROOT: ("((", "))"),
}

_DOT_SHAPES: dict[str, str] = {
    "step": "box",
    "rule": "diamond",
    "map": "parallelogram",
    "reduce": "invtrapezium",
    "accumulator": "cylinder",
    "state_machine": "component",
    "await": "hexagon",
    ROOT: "circle",
}


def nodes_of(wf: Workflow) -> list[NodeInfo]:
    """The components of a workflow definition, without instance state."""
    return [
        NodeInfo(
            name=c["name"], kind=c["kind"], parents=tuple(c["parents"]), reads=tuple(c["reads"])
        )
        for c in wf.graph.describe()["components"]
    ]


def to_mermaid(name: str, nodes: Sequence[NodeInfo]) -> str:
    """Render ``nodes`` as a Mermaid flowchart (``flowchart LR``)."""
    ids = _ids(nodes)
    lines = ["flowchart LR", f"    %% workflow {_one_line(name)}"]
    lines.append(f'    {ids[ROOT]}(("input"))')
    for node in nodes:
        opening, closing = _MERMAID_SHAPES.get(node.kind, ("[", "]"))
        label = _label(node, "<br/>", _mermaid_text)
        lines.append(f'    {ids[node.name]}{opening}"{label}"{closing}')
    for parent, child, position in _edges(nodes):
        arrow = f"-->|{position}|" if position else "-->"
        lines.append(f"    {ids[parent]} {arrow} {ids[child]}")
    for source, rule, what in _reads(nodes, ids):
        lines.append(f"    {ids[source]} -.->|{what}| {ids[rule]}")
    states = sorted({n.state for n in nodes if n.state is not None})
    for state in states:
        fill, stroke = STATE_STYLES[state]
        dash = ",stroke-dasharray:4 3" if state == "skipped" else ""
        lines.append(f"    classDef {state} fill:{fill},stroke:{stroke}{dash}")
    for state in states:
        members = ",".join(ids[n.name] for n in nodes if n.state == state)
        lines.append(f"    class {members} {state}")
    return "\n".join(lines) + "\n"


def to_dot(name: str, nodes: Sequence[NodeInfo]) -> str:
    """Render ``nodes`` as a Graphviz ``digraph`` (``dot -Tsvg`` draws it)."""
    ids = _ids(nodes)
    lines = [
        f"digraph {_dot_text(name)} {{",
        "    rankdir=LR;",
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
        f'    {ids[ROOT]} [label="input", shape=circle];',
    ]
    for node in nodes:
        label = _dot_text(_label(node, "\n", str))
        attrs = [f"label={label}", f"shape={_DOT_SHAPES.get(node.kind, 'box')}"]
        if node.state is not None:
            fill, stroke = STATE_STYLES[node.state]
            style = "filled,dashed" if node.state == "skipped" else "filled"
            attrs += [f'style="{style}"', f'fillcolor="{fill}"', f'color="{stroke}"']
        lines.append(f"    {ids[node.name]} [{', '.join(attrs)}];")
    for parent, child, position in _edges(nodes):
        label = f' [label="{position}"]' if position else ""
        lines.append(f"    {ids[parent]} -> {ids[child]}{label};")
    for source, rule, what in _reads(nodes, ids):
        lines.append(f'    {ids[source]} -> {ids[rule]} [style=dashed, label="{what}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ids(nodes: Sequence[NodeInfo]) -> dict[str, str]:
    """Safe node ids (``n0``, ``n1``...): component names may hold any character."""
    ids = {ROOT: "input"}
    ids.update({node.name: f"n{i}" for i, node in enumerate(nodes)})
    return ids


def _edges(nodes: Sequence[NodeInfo]) -> list[tuple[str, str, int]]:
    """``(parent, child, position)``; the position is 0 unless the child is a join."""
    out = []
    for node in nodes:
        join = len(node.parents) > 1
        for i, parent in enumerate(node.parents, start=1):
            out.append((parent, node.name, i if join else 0))
    return out


def _reads(nodes: Sequence[NodeInfo], ids: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(component read, rule, kind of read)`` for every meta-condition drawn."""
    out = []
    for node in nodes:
        for read in node.reads:
            what, _, source = read.partition(":")
            if source in ids:
                out.append((source, node.name, what))
    return out


def _label(node: NodeInfo, newline: str, escape: Callable[[str], str]) -> str:
    if node.state is None:
        return escape(node.name)
    detail = ", ".join(f"{k} {v}" for k, v in node.counts.items()) or node.state
    return f"{escape(node.name)}{newline}{escape(detail)}"


def _mermaid_text(text: str) -> str:
    """Escape text for a quoted Mermaid label (entity codes for what Mermaid would parse)."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return " ".join(text.split())


def _dot_text(text: str) -> str:
    """Quote text as a DOT string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _one_line(text: str) -> str:
    return " ".join(text.split())
