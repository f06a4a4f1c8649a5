"""``runeflow graph``'s drawings: the renderers live in :mod:`runeflow.drawing`, shared with
the dashboard."""

from __future__ import annotations

from runeflow.drawing import STATE_STYLES, nodes_of, to_dot, to_mermaid, to_svg

__all__ = ["STATE_STYLES", "nodes_of", "to_dot", "to_mermaid", "to_svg"]
