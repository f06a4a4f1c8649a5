"""Run the execute phase on a Ray cluster (``pip install "runeflow[ray]"``).

::

    runner = rf.Runner(store=store, executor=rf.RayExecutor(num_gpus=1))   # everything
    heavy = rf.Policy(executor=rf.RayExecutor(num_cpus=4))                 # per component

The runner keeps the log, checkpoints, policies and waits; Ray only executes runnables. See
:mod:`runeflow.runner.cluster` for what travels and how results come back.
"""

from __future__ import annotations

import os
from typing import Any

from runeflow.errors import UsageError
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

__all__ = ["INSTALL_HINT", "RayExecutor"]

INSTALL_HINT = 'the Ray executor needs: pip install "runeflow[ray]"'

_REFUSED = {
    "num_returns": "each task returns one outcome, which runeflow reads",
    "retry_exceptions": retried_by_policy(
        "max_retries= stays meaningful: how often Ray runs a task again when its worker "
        "process dies"
    ),
}
"""Ray task options that make no sense for runeflow's tasks, with what to do instead."""

ray: Any = optional_module("ray", needs="remote")

_address: str | None = None


def _worker_address() -> str:
    global _address
    if _address is None:
        ctx = ray.get_runtime_context()
        _address = f"{ray.util.get_node_ip_address()}/{ctx.get_worker_id()}"
    return _address


def _run_on_ray(component: str, payload: bytes, *values: Any) -> bytes:
    """The task every runnable becomes on a Ray worker."""
    return run_payload(component, payload, values, _worker_address(), ray.cloudpickle.dumps)


class RayExecutor(ClusterExecutor):
    """Executes runnables as Ray tasks.

    Args:
        address: the cluster to connect to (``"auto"``, ``"host:6379"``, or
            ``"ray://host:10001"`` for Ray Client). Without it, ``RAY_ADDRESS`` is used when
            set, else a local Ray is started (``num_cpus`` CPUs) and shut down on
            :meth:`shutdown`. When Ray is already initialised in this process, that
            connection is used.
        num_cpus: CPUs of a local Ray (default: every core).
        large_value_bytes: arguments estimated at this size or more are put into the object
            store once (``ray.put``) and passed by reference (``None``: never).
        connect_timeout: seconds to wait for the cluster's address to accept a connection.
        init_options: more keyword arguments for ``ray.init`` (``runtime_env=``...).
        force_cancel: cancel (on a policy timeout) by killing the worker process rather
            than interrupting the task.
        **remote_options: Ray task options for every runnable (``num_cpus=``, ``num_gpus=``,
            ``resources=``, ``max_retries=``, ``memory=``...). Not ``retry_exceptions=``:
            a step's exception never reaches Ray (it is the runnable's failure, which its
            policy retries: ``rf.Policy(max_retries=...)``); nor ``num_returns=``.

    Raises:
        ImportError: ``ray`` is not installed (the message says what to install).
        ClusterUnavailableError: the address does not accept connections; the message names it.
        UsageError: an invalid Ray option (``retry_exceptions`` and ``num_returns`` too), or
            Ray already connected to another cluster.

    A task whose worker process dies is retried by Ray itself (its ``max_retries`` task
    option, 3 unless set); after that the runnable fails (``WorkerCrashedError``) and its
    policy decides. Task options apply to every runnable of this executor: to give one
    component a GPU, route it to its own ``RayExecutor(num_gpus=1)`` with a policy.
    """

    name = "ray"
    engine = "Ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        large_value_bytes: int | None = LARGE_VALUE_BYTES,
        connect_timeout: float = 10.0,
        init_options: dict[str, Any] | None = None,
        force_cancel: bool = False,
        **remote_options: Any,
    ) -> None:
        if ray is None:
            raise ImportError(INSTALL_HINT)
        check_large_value_bytes(large_value_bytes)
        refuse_options("RayExecutor", remote_options, _REFUSED)
        try:  # checked before connecting
            remote = ray.remote(_run_on_ray)
            self._remote = remote.options(**remote_options) if remote_options else remote
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid Ray task option for RayExecutor: {exc}") from exc
        self.remote_options = remote_options
        """Ray task options used for every runnable."""
        self.force_cancel = force_cancel
        owns = self._init(address, num_cpus, connect_timeout, init_options or {})
        super().__init__(large_value_bytes, ray.cloudpickle, owns=owns)

    def _init(
        self, address: str | None, num_cpus: int | None, timeout: float, options: dict[str, Any]
    ) -> bool:
        """Connect (or reuse this process's connection); return whether Ray was started here."""
        target = address or os.environ.get("RAY_ADDRESS")
        if target:
            probe(target, self.engine, timeout)
        if ray.is_initialized():
            current = str(ray.get_runtime_context().gcs_address)
            if address and not address.startswith("ray://") and address not in ("auto", current):
                raise UsageError(
                    f"Ray is already connected to {current} in this process, not {address!r}: "
                    "one process talks to one Ray cluster"
                )
            self.address = current
            return False
        if target:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, **{"include_dashboard": False, **options})
        self.address = str(ray.get_runtime_context().gcs_address)
        return True

    def _put(self, value: Any) -> Any:
        return ray.put(value)

    def _send(self, key: str, component: str, payload: bytes, refs: list[Any]) -> Any:
        ref = self._remote.remote(component, payload, *refs)
        ref.future().add_done_callback(lambda f: self._arrived(key, f))
        return ref

    def _cancel_task(self, handle: Any) -> None:
        ray.cancel(handle, force=self.force_cancel)

    def _collect(self, items: list[tuple[str, Any]]) -> list[tuple[str, bytes | BaseException]]:
        out: list[tuple[str, bytes | BaseException]] = []
        for key, future in items:  # concurrent futures, already done
            try:
                out.append((key, future.result()))
            except BaseException as exc:  # WorkerCrashedError, TaskCancelledError...
                out.append((key, exc))
        return out

    def _wait_all(self, handles: list[Any]) -> None:
        if handles:
            ray.wait(handles, num_returns=len(handles))

    def _close(self) -> None:
        ray.shutdown()
