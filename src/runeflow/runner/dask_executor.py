"""Run the execute phase on a Dask cluster (``pip install "runeflow[dask]"``).

::

    from dask.distributed import Client

    client = Client("tcp://scheduler:8786")
    heavy = rf.Policy(executor=rf.DaskExecutor(client))          # per component
    runner = rf.Runner(store=store, executor=rf.DaskExecutor(client))   # or everything

The runner keeps the log, checkpoints, policies and waits; Dask only executes runnables. See
:mod:`runeflow.runner.cluster` for what travels and how results come back.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from runeflow.errors import ClusterUnavailableError, UsageError
from runeflow.runner.cluster import (
    LARGE_VALUE_BYTES,
    ClusterExecutor,
    check_large_value_bytes,
    optional_module,
    probe,
    refuse_options,
    retried_by_policy,
    run_payload,
)

__all__ = ["INSTALL_HINT", "DaskExecutor"]

INSTALL_HINT = 'the Dask executor needs: pip install "runeflow[dask]"'

distributed: Any = optional_module("distributed", needs="Client")

_RESERVED = frozenset({"key", "pure", "actor", "actors"})
"""``client.submit`` options the executor sets itself."""

_REFUSED = {
    "retries": retried_by_policy(
        "A task whose worker dies is run again by Dask itself, up to the scheduler's "
        "distributed.scheduler.allowed-failures setting"
    )
}
"""``client.submit`` options that would do nothing, with what to do instead."""


def _run_on_dask(component: str, payload: bytes, *values: Any) -> bytes:
    """The task every runnable becomes on a Dask worker."""
    address = distributed.get_worker().address
    return run_payload(component, payload, values, address, _cloudpickle().dumps)


def _cloudpickle() -> Any:
    return importlib.import_module("cloudpickle")


class DaskExecutor(ClusterExecutor):
    """Executes runnables as tasks on a Dask ``distributed`` cluster.

    Args:
        client: a connected ``distributed.Client``; this executor never closes it.
        address: a scheduler to connect to (``"tcp://host:8786"``) when no client is given.
            Without either, ``DASK_SCHEDULER_ADDRESS`` (Dask's ``scheduler-address``
            setting) is used when set, else a local cluster is started (``n_workers``
            processes of one thread each) and closed on :meth:`shutdown`.
        n_workers: worker processes of a local cluster (default: one per core).
        large_value_bytes: arguments estimated at this size or more are scattered to the
            cluster once and passed by reference (``None``: never).
        connect_timeout: seconds to wait for the scheduler.
        **submit_options: passed to ``client.submit`` for every runnable (``resources=``,
            ``workers=``, ``priority=``, ``allow_other_workers=``...). Not ``retries=``:
            a step's exception never reaches Dask (it is the runnable's failure, which its
            policy retries: ``rf.Policy(max_retries=...)``).

    Raises:
        ImportError: ``distributed`` is not installed (the message says what to install).
        ClusterUnavailableError: the scheduler cannot be reached; the message names it.
        UsageError: both ``client`` and ``address``, a submit option runeflow sets itself
            (``key``, ``pure``, ``actor``), or ``retries``.

    A task whose worker dies is run again elsewhere by Dask itself, up to Dask's
    ``distributed.scheduler.allowed-failures`` times; after that the runnable fails with
    ``KilledWorker`` and its policy decides. Cancelling (a policy timeout) releases the task;
    Dask cannot interrupt one already running, whose result is then ignored.
    """

    name = "dask"
    engine = "Dask"

    def __init__(
        self,
        client: Any = None,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        large_value_bytes: int | None = LARGE_VALUE_BYTES,
        connect_timeout: float = 10.0,
        **submit_options: Any,
    ) -> None:
        if distributed is None:
            raise ImportError(INSTALL_HINT)
        if client is not None and address is not None:
            raise UsageError("give DaskExecutor a client or an address, not both")
        reserved = sorted(_RESERVED & submit_options.keys())
        if reserved:
            raise UsageError(
                f"DaskExecutor sets {', '.join(reserved)} itself: leave them out of its options"
            )
        refuse_options("DaskExecutor", submit_options, _REFUSED)
        check_large_value_bytes(large_value_bytes)
        self.submit_options = submit_options
        """Options passed to ``client.submit``."""
        self._cluster: Any = None
        owns = client is None
        if client is None:
            client = self._connect(address, n_workers, connect_timeout)
        self.client = client
        """The ``distributed.Client`` tasks are submitted through."""
        self.address = str(client.scheduler.address)
        super().__init__(large_value_bytes, _cloudpickle(), owns=owns)

    def _connect(self, address: str | None, n_workers: int | None, timeout: float) -> Any:
        if address is None:
            address = importlib.import_module("dask").config.get("scheduler-address", None)
        if address is None:
            self._cluster = distributed.LocalCluster(
                n_workers=n_workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            return distributed.Client(self._cluster, set_as_default=False)
        probe(str(address), self.engine, timeout)  # refused at once, not after the timeout
        try:
            return distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailableError(
                f"cannot reach the Dask scheduler at {address!r} within {timeout:g}s ({exc}): "
                "check the address and that the scheduler is running, or give no address to "
                "start a local cluster",
                address=str(address),
            ) from exc

    def _put(self, value: Any) -> Any:
        return self.client.scatter([value], hash=False)[0]

    def _send(self, key: str, component: str, payload: bytes, refs: list[Any]) -> Any:
        future = self.client.submit(
            _run_on_dask, component, payload, *refs, key=key, pure=False, **self.submit_options
        )
        future.add_done_callback(lambda f: self._arrived(key, f))
        return future

    def _cancel_task(self, handle: Any) -> None:
        handle.cancel()

    def _collect(self, items: list[tuple[str, Any]]) -> list[tuple[str, bytes | BaseException]]:
        finished = [(key, f) for key, f in items if f.status == "finished"]
        out: list[tuple[str, bytes | BaseException]] = []
        if finished:
            try:  # one round trip for every result that arrived together
                values = self.client.gather([f for _, f in finished])
                out += zip([key for key, _ in finished], values, strict=True)
            except Exception:  # one of them went away meanwhile: fetch them one by one
                out += [(key, self._one(f)) for key, f in finished]
        out += [(key, self._one(f)) for key, f in items if f.status != "finished"]
        for _, future in items:
            # Tell the scheduler now, before the result is handed over, that its value is no
            # longer wanted. Left to the future's garbage collection, the release could reach
            # the scheduler after the steps that follow were submitted: a worker dying then
            # would make Dask recompute a step whose result is already checkpointed.
            future.release()
        return out

    def _one(self, future: Any) -> bytes | BaseException:
        try:  # raises what ended the task: KilledWorker, a cancellation...
            return future.result()  # type: ignore[no-any-return]
        except BaseException as exc:
            return exc

    def _wait_all(self, handles: list[Any]) -> None:
        # distributed.wait needs a default client, which this executor's may not be
        for _ in distributed.as_completed(handles, loop=self.client.loop):
            pass

    def _close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
