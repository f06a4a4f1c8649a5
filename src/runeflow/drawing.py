"""Drawing a workflow graph: Mermaid or Graphviz DOT text (``runeflow graph``), and an SVG
drawing laid out here (the dashboard), all from the same description: the nodes of a
definition (:func:`nodes_of`) or of an instance's view (:meth:`InstanceView.nodes`).

Each component kind has its own shape; the workflow's input is a circle. A join's edges are
numbered with the argument position each parent fills. What a rule's condition reads of the
workflow (meta-conditions: ``rf.state_of``, ``rf.step_ran``, ``rf.fact_count``) is drawn as
a dashed edge from the component read, labelled with the kind of read. When the nodes carry
an instance's state (``runeflow graph --id``), nodes are colored by it and labelled with its
counts.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

from runeflow.model.facts import ROOT
from runeflow.model.workflow import Workflow
from runeflow.view import NodeInfo

__all__ = ["STATE_STYLES", "nodes_of", "to_dot", "to_mermaid", "to_svg"]

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


# --- SVG ------------------------------------------------------------------------------------

_NODE_H = 46
_DUMMY_H = 10
_H_GAP = 56
_V_GAP = 18
_CHAR_W = 7.2
_MAX_LABEL = 34
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def to_svg(name: str, nodes: Sequence[NodeInfo], *, legend: bool = True) -> str:
    """Render ``nodes`` as a standalone SVG drawing, laid out left to right in layers.

    The layout is the layered (Sugiyama) kind Graphviz draws: each component one layer to
    the right of its farthest parent, long edges routed through the layers between, the
    order in each layer improved by barycenter sweeps. Shapes and colors are those of
    :func:`to_mermaid` and :func:`to_dot`. Every text is escaped (a component name is
    stored data), so the drawing can be inlined in a page; it holds no script and no style
    element, only presentation attributes. Each node is a ``<g data-component="NAME">``.
    """
    layout = _Layout(nodes)
    width, height = layout.size()
    legend_h = 28 if legend and any(n.state for n in nodes) else 0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height + legend_h:.0f}" viewBox="0 0 {width:.0f} {height + legend_h:.0f}" '
        f'role="img" aria-label="{_xml(f"workflow {name}")}" font-family="Helvetica, Arial, '
        f'sans-serif" font-size="12">',
        f"<title>{_xml(f'workflow {name}')}</title>",
        '<defs><marker id="rf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#6b7280"/></marker></defs>',
    ]
    out += layout.edges_svg()
    out += layout.reads_svg()
    out += layout.nodes_svg()
    if legend_h:
        out += _legend_svg(sorted({n.state for n in nodes if n.state}), height + 8)
    out.append("</svg>")
    return "\n".join(out) + "\n"


class _Layout:
    """Layers, order and coordinates of a graph's nodes (``ROOT`` included) and of the
    dummy points that route edges across layers."""

    def __init__(self, nodes: Sequence[NodeInfo]) -> None:
        self.info = {n.name: n for n in nodes}
        names = [ROOT, *(n.name for n in nodes if n.name != ROOT)]
        self.layer: dict[str, int] = {}
        for node_name in names:  # parents come first in a sound log; a bad one cannot loop
            parents = [p for p in self._parents(node_name) if p in self.layer]
            self.layer[node_name] = 1 + max((self.layer[p] for p in parents), default=-1)
        self.chains: list[tuple[str, str, int, list[str]]] = []
        layers: dict[int, list[str]] = {}
        for node_name in names:
            layers.setdefault(self.layer[node_name], []).append(node_name)
        for parent, child, position in _edges(nodes):
            if parent not in self.layer or child not in self.layer:
                continue
            dummies = []
            for depth in range(self.layer[parent] + 1, self.layer[child]):
                dummy = f"\0{len(self.chains)}:{depth}"
                layers.setdefault(depth, []).append(dummy)
                self.layer[dummy] = depth
                dummies.append(dummy)
            self.chains.append((parent, child, position, dummies))
        self.layers = [layers[i] for i in sorted(layers)]
        self._order()
        self._place()

    def _parents(self, node_name: str) -> tuple[str, ...]:
        node = self.info.get(node_name)
        return node.parents if node is not None and node_name != ROOT else ()

    def _order(self) -> None:
        """Barycenter sweeps: each node moves toward the mean position of its neighbours in
        the layer just swept (down, then up), four times."""
        up: dict[str, list[str]] = {}
        down: dict[str, list[str]] = {}
        for parent, child, _, dummies in self.chains:
            path = [parent, *dummies, child]
            for a, b in itertools.pairwise(path):
                down.setdefault(a, []).append(b)
                up.setdefault(b, []).append(a)
        for _ in range(4):
            for layers, links in ((self.layers, up), (self.layers[::-1], down)):
                for before, layer in itertools.pairwise(layers):
                    _sweep(before, layer, links)

    def _place(self) -> None:
        self.box: dict[str, tuple[float, float, float, float]] = {}
        x = 16.0
        heights = [self._stack(layer) for layer in self.layers]
        tallest = max(heights, default=0.0)
        for layer, stack in zip(self.layers, heights, strict=True):
            width = max(self._width(n) for n in layer)
            y = 16 + (tallest - stack) / 2
            for node in layer:
                h = self._height(node)
                w = self._width(node)
                self.box[node] = (x + (width - w) / 2, y, w, h)
                y += h + _V_GAP
            x += width + _H_GAP
        self.width = x - _H_GAP + 16
        self.height = tallest + 32

    def _stack(self, layer: list[str]) -> float:
        return sum(self._height(n) for n in layer) + _V_GAP * (len(layer) - 1)

    def _height(self, node: str) -> float:
        if node.startswith("\0"):
            return _DUMMY_H
        return 40.0 if node == ROOT else _NODE_H

    def _width(self, node: str) -> float:
        if node.startswith("\0"):
            return 8.0
        if node == ROOT:
            return 40.0
        first, second = _svg_lines(self.info[node])
        return max(96.0, 26 + _CHAR_W * max(len(first), len(second)))

    def size(self) -> tuple[float, float]:
        return self.width, self.height

    def edges_svg(self) -> list[str]:
        routes = []
        for parent, child, position, dummies in self.chains:
            px, py, pw, ph = self.box[parent]
            points = [(px + pw, py + ph / 2)]
            for dummy in dummies:
                dx, dy, dw, dh = self.box[dummy]
                points.append((dx + dw / 2, dy + dh / 2))
            routes.append((child, position, points))
        ends = self._ends(routes)
        out = []
        for i, (_, position, points) in enumerate(routes):
            points.append(ends[i])
            path = f"M {points[0][0]:.1f} {points[0][1]:.1f}"
            for (x1, y1), (x2, y2) in itertools.pairwise(points):
                mid = (x2 - x1) / 2
                path += f" C {x1 + mid:.1f} {y1:.1f} {x2 - mid:.1f} {y2:.1f} {x2:.1f} {y2:.1f}"
            out.append(
                f'<path d="{path}" fill="none" stroke="#6b7280" stroke-width="1.3" '
                'marker-end="url(#rf-arrow)"/>'
            )
            if position:
                lx, ly = points[-1]
                out.append(
                    f'<text x="{lx - 10:.1f}" y="{ly - 3:.1f}" font-size="10" '
                    f'fill="#1f2937" text-anchor="end">{position}</text>'
                )
        return out

    def _ends(self, routes: list[tuple[str, int, list[tuple[float, float]]]]) -> list[Any]:
        """Where each edge meets its child: the edges into one node spread down its left
        side in the order they arrive from (so joins show each argument apart)."""
        into: dict[str, list[int]] = {}
        for i, (child, _, _) in enumerate(routes):
            into.setdefault(child, []).append(i)
        ends: list[Any] = [None] * len(routes)
        for child, edges in into.items():
            cx, cy, _, ch = self.box[child]
            edges.sort(key=lambda i: routes[i][2][-1][1])
            for slot, i in enumerate(edges):
                ends[i] = (cx - 2, cy + ch * (slot + 1) / (len(edges) + 1))
        return ends

    def reads_svg(self) -> list[str]:
        """Meta-conditions: a dashed edge from the component read to the rule reading it,
        labelled with the kind of read (they take no part in the layout)."""
        out = []
        ids = {name: name for name in self.box if not name.startswith("\0")}
        for source, rule, what in _reads(list(self.info.values()), ids):
            sx, sy, sw, sh = self.box[source]
            rx, ry, rw, _ = self.box[rule]
            x1, y1, x2, y2 = sx + sw / 2, sy + sh, rx + rw / 2, ry
            bend = max(30.0, abs(x2 - x1) / 3)
            out.append(
                f'<path d="M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + bend:.1f} {x2:.1f} '
                f'{y2 - bend:.1f} {x2:.1f} {y2:.1f}" fill="none" stroke="#7c3aed" '
                'stroke-width="1.2" stroke-dasharray="4 3" marker-end="url(#rf-arrow)"/>'
                f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2:.1f}" font-size="10" '
                f'fill="#6d28d9" text-anchor="middle">{_xml(what)}</text>'
            )
        return out

    def nodes_svg(self) -> list[str]:
        out = []
        for node, (x, y, w, h) in self.box.items():
            if node.startswith("\0"):
                continue
            if node == ROOT:
                out.append(
                    f'<g data-component="{ROOT}"><title>the workflow\'s input</title>'
                    f'<circle cx="{x + w / 2:.1f}" cy="{y + h / 2:.1f}" r="{h / 2:.1f}" '
                    'fill="#f3f4f6" stroke="#4b5563" stroke-width="1.3"/>'
                    f'<text x="{x + w / 2:.1f}" y="{y + h / 2 + 4:.1f}" text-anchor="middle" '
                    'font-size="10" fill="#111827">input</text></g>'
                )
                continue
            out.append(_node_svg(self.info[node], x, y, w, h))
        return out


def _sweep(before: list[str], layer: list[str], links: dict[str, list[str]]) -> None:
    """Sort ``layer`` by the mean position of each node's neighbours in ``before`` (a node
    without any keeps its place)."""
    index = {n: i for i, n in enumerate(before)}
    current = {n: i for i, n in enumerate(layer)}

    def center(node: str) -> float:
        near = [index[n] for n in links.get(node, ()) if n in index]
        return sum(near) / len(near) if near else current[node]

    layer.sort(key=lambda n: (center(n), current[n]))


def _svg_lines(node: NodeInfo) -> tuple[str, str]:
    """The two text lines of a node: its name, then its counts (or its kind)."""
    detail = ", ".join(f"{k} {v}" for k, v in node.counts.items()) if node.counts else ""
    second = detail or (node.state or node.kind)
    if node.state and node.state != "pending" and not detail:
        second = node.state
    return _cut(_one_line(node.name)), _cut(f"{node.kind} · {second}" if node.state else node.kind)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _node_svg(node: NodeInfo, x: float, y: float, w: float, h: float) -> str:
    fill, stroke = STATE_STYLES[node.state or "pending"]
    if node.state is None:
        fill, stroke = "#ffffff", "#4b5563"
    dash = ' stroke-dasharray="5 3"' if node.state == "skipped" else ""
    width = "2.4" if node.state in ("failed", "running", "waiting") else "1.4"
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}'
    first, second = _svg_lines(node)
    counts = ", ".join(f"{k} {v}" for k, v in node.counts.items())
    title = f"{node.name} ({node.kind}){': ' + node.state if node.state else ''}"
    title += f" ({counts})" if counts else ""
    state = f' data-state="{node.state}"' if node.state else ""
    return (
        f'<g data-component="{_xml(node.name)}" data-kind="{_xml(node.kind)}"{state}>'
        f"<title>{_xml(title)}</title>{_shape(node.kind, x, y, w, h, paint)}"
        f'<text x="{x + w / 2:.1f}" y="{y + 19:.1f}" text-anchor="middle" font-weight="bold" '
        f'fill="#111827">{_xml(first)}</text>'
        f'<text x="{x + w / 2:.1f}" y="{y + 35:.1f}" text-anchor="middle" font-size="10.5" '
        f'fill="#374151">{_xml(second)}</text></g>'
    )


def _shape(kind: str, x: float, y: float, w: float, h: float, paint: str) -> str:
    """The outline of a component kind (as in :data:`_MERMAID_SHAPES`)."""
    r, b = x + w, y + h
    if kind == "rule":  # a diamond stretched to hold its label
        points = [
            (x, y + h / 2),
            (x + 12, y),
            (r - 12, y),
            (r, y + h / 2),
            (r - 12, b),
            (x + 12, b),
        ]
        return _polygon(points, paint)
    if kind == "map":  # a parallelogram
        return _polygon([(x + 10, y), (r, y), (r - 10, b), (x, b)], paint)
    if kind == "reduce":  # a trapezium, narrow end down
        return _polygon([(x, y), (r, y), (r - 10, b), (x + 10, b)], paint)
    if kind == "accumulator":  # a cylinder
        return (
            f'<path d="M {x:.1f} {y + 5:.1f} A {w / 2:.1f} 5 0 0 1 {r:.1f} {y + 5:.1f} '
            f"L {r:.1f} {b - 5:.1f} A {w / 2:.1f} 5 0 0 1 {x:.1f} {b - 5:.1f} Z "
            f'M {x:.1f} {y + 5:.1f} A {w / 2:.1f} 5 0 0 0 {r:.1f} {y + 5:.1f}" {paint}/>'
        )
    if kind == "state_machine":  # a box with a double border
        return (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" {paint}/>'
            f'<rect x="{x + 4:.1f}" y="{y + 4:.1f}" width="{w - 8:.1f}" height="{h - 8:.1f}" '
            f'{paint.replace("fill=", "data-fill=")} fill="none"/>'
        )
    if kind == "await":  # a stadium: waits for something outside
        return (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{h / 2:.1f}" '
            f"{paint}/>"
        )
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" {paint}/>'


def _polygon(points: list[tuple[float, float]], paint: str) -> str:
    text = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polygon points="{text}" {paint}/>'


def _legend_svg(states: list[str], y: float) -> list[str]:
    out, x = [], 16.0
    for state in states:
        fill, stroke = STATE_STYLES[state]
        dash = ' stroke-dasharray="4 2"' if state == "skipped" else ""
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="14" height="14" rx="3" fill="{fill}" '
            f'stroke="{stroke}"{dash}/><text x="{x + 19:.1f}" y="{y + 11:.1f}" '
            f'fill="#374151">{state}</text>'
        )
        x += 30 + _CHAR_W * len(state)
    return out


def _xml(text: str) -> str:
    """``text`` escaped for XML text and attribute values (characters XML cannot hold
    become U+FFFD)."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)
