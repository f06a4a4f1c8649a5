"""A child process for the crash tests: appends batches of events in a loop.

Usage: ``python _helpers_store_worker.py KIND TARGET WORKFLOW_ID BATCHES BATCH_SIZE``, where
KIND is ``sqlite`` (TARGET a file) or ``postgres`` (TARGET ``dsn|schema``). It prints
``ready`` once the workflow exists and then one line per committed append.
"""

from __future__ import annotations

import sys

from runeflow.model.events import FactProduced, RunnableCompleted, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.stores import SQLiteStore, Store


def open_store(kind: str, target: str) -> Store:
    """Open the store the parent test names."""
    if kind == "sqlite":
        return SQLiteStore(target)
    from runeflow.stores.postgres import PostgresStore

    dsn, schema = target.split("|")
    return PostgresStore(dsn, schema=schema)


def batch(workflow_id: str, index: int, size: int) -> list[object]:
    """``size`` events (a multiple of 3): dispatched, produced, completed cycles."""
    events: list[object] = []
    for k in range(size // 3):
        rid = f"{workflow_id}-{index}-{k}"
        fact = Fact(f"f-{rid}", {"batch": index, "k": k, "pad": "x" * 200}, "c", "p", (), ("r",))
        events += [
            RunnableDispatched(runnable_id=rid, component="c"),
            FactProduced(fact=fact, runnable_id=rid),
            RunnableCompleted(runnable_id=rid, component="c"),
        ]
    return events


def main() -> None:
    kind, target, workflow_id, batches, size = sys.argv[1:6]
    store = open_store(kind, target)
    store.create(workflow_id, definition_name="crash", definition_hash="h")
    print("ready", flush=True)
    for index in range(int(batches)):
        cursor = store.append(workflow_id, batch(workflow_id, index, int(size)))  # type: ignore[arg-type]
        print(cursor, flush=True)
    store.close()


if __name__ == "__main__":
    main()
