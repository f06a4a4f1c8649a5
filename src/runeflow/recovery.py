"""Loading a workflow instance back from a store.

``load_workflow`` rebuilds an instance from its stored log (after the latest snapshot, when
there is one) using the code of its definition.
"""

from __future__ import annotations

from typing import Any, Literal

from runeflow.model.workflow import Workflow
from runeflow.stores.base import Store

__all__ = ["Rehydration", "load_workflow"]

Rehydration = Literal["full", "hybrid", "lazy"]
"""``full``: every fact value is loaded; ``hybrid``: only values still needed (pending
inputs, the frontier, join and reduce buffers, accumulator states); ``lazy``: none until a
runnable needs one."""


def load_workflow(
    store: Store,
    workflow_id: str,
    definition: Any,
    *,
    rehydration: Rehydration = "full",
    migrate: bool = False,
) -> Workflow:
    """Rebuild instance ``workflow_id`` from ``store`` with the code of ``definition``."""
    if rehydration not in ("full", "hybrid", "lazy"):
        raise ValueError(
            f"rehydration must be 'full', 'hybrid' or 'lazy', not {rehydration!r}"
        )
    return Workflow.from_events(store.stream(workflow_id), definition=definition, migrate=migrate)
