"""Tutorial 8: stores and executors. Where instances are kept; where steps execute.

Stores (``rf.store_from_url``): ``memory://`` (the default: in-process, gone at exit),
``sqlite:///path.db`` (embedded and durable, shared by the processes of one machine: what
the ``runeflow`` command uses by default) and ``postgresql://...`` (several machines; install
``runeflow[postgres]``). Executors: ``threads`` (the default), ``processes`` (CPU-bound
steps; their functions must be importable, i.e. defined at module level), ``asyncio``
(``async def`` steps run on an event loop) and ``inline`` (the caller's thread).

Run it: ``python examples/tutorial_08_stores_and_executors.py``. Set ``RUNEFLOW_PG_URL`` to a
PostgreSQL URL to include that store too.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import runeflow as rf


def crunch(n: int) -> int:
    """CPU-bound: a good fit for the processes executor."""
    return sum(i * i for i in range(n))


def add(value: int, total: int) -> int:
    return total + value


async def fetch(n: int) -> int:
    """I/O-bound and async: a good fit for the asyncio executor."""
    await asyncio.sleep(0.1)
    return n


def build() -> rf.Workflow:
    return (
        rf.workflow(name="crunch", outputs={"total": "total"})
        .add(rf.map(crunch, name="crunch"))
        .add(rf.reduce(add, 0, map="crunch", name="total"), to="crunch")
    )


def build_fetch() -> rf.Workflow:
    return (
        rf.workflow(name="fetch", outputs={"total": "total"})
        .add(rf.map(fetch, name="fetch"))
        .add(rf.reduce(add, 0, map="fetch", name="total"), to="fetch")
    )


workflow = build()


def run_once(store: rf.Store, executor: str, wf: rf.Workflow, value: object, tag: str) -> str:
    with rf.Runner(store=store, executor=executor) as runner:
        start = time.perf_counter()
        workflow_id = runner.start_instance(wf, value, id=f"{tag}{wf.name}-{executor}")
        info = runner.wait(workflow_id, timeout=60)
        total = runner.get_results(info.workflow_id, components=None)["total"]
    return f"{info.status.value}, total={total}, {time.perf_counter() - start:.2f}s"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        urls = ["memory://", f"sqlite:///{Path(tmp) / 'runeflow.db'}"]
        if os.environ.get("RUNEFLOW_PG_URL"):
            urls.append(os.environ["RUNEFLOW_PG_URL"])
        for url in urls:
            store = rf.store_from_url(url)
            # A shared PostgreSQL database may hold other instances: use fresh ids there.
            tag = f"tutorial-{uuid.uuid4().hex[:6]}-" if url.startswith("postgres") else ""
            print(f"{url.split('://')[0]:<10} durable={store.capabilities.durable}")
            for executor in ("inline", "threads", "processes"):
                print(f"  {executor:<9} {run_once(store, executor, workflow, [300_000] * 8, tag)}")
            fetched = run_once(store, "asyncio", build_fetch(), list(range(20)), tag)
            print(f"  {'asyncio':<9} {fetched}")
            ids = [m.workflow_id for m in store.list() if m.workflow_id.startswith(tag)]
            print(f"  stored instances: {ids}")
            if tag:
                for workflow_id in ids:
                    store.delete(workflow_id)
            store.close()

        # A durable store outlives its runner: a new runner (or process) reads it back.
        store = rf.SQLiteStore(Path(tmp) / "runeflow.db")
        with rf.Runner(store=store, workflows=[build]) as runner:
            print("read back later:", runner.get_results("crunch-threads", components=None))


if __name__ == "__main__":
    main()
