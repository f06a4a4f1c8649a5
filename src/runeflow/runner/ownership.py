"""Ownership of instances: leases with fencing tokens, renewal, claims and failover.

A runner owns an instance while it holds the instance's lease in the store. Every grant of a
lease to a new owner increments the instance's fencing token, and every append states the
token the writer holds: the store refuses, in the same transaction, an append from anyone
who is no longer the owner. So a runner that was paused (GC, SIGSTOP, VM suspend, a store
outage) past its lease while another took the instance over cannot write a single event
more; it learns so from a refused append or a refused renewal and stops the instance.

A runner whose lease merely expired, with nobody taking the instance, takes it back under a
new token (``acquire_lease(..., expect=old_token)``) and carries on.

Serving runners claim instances that have work (status ``running``, or a due timer or
command) and no live owner: another host's once its lease expires, a dead process's on this
host at once. Claims are disjoint between concurrent runners (the store guarantees it).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Collection
from pathlib import Path

from runeflow.errors import InstanceStateError, WorkflowNotFoundError
from runeflow.stores.base import Store

__all__ = ["OwnedElsewhereError", "Ownership", "owner_is_dead"]

log = logging.getLogger("runeflow.runner")


class OwnedElsewhereError(InstanceStateError):
    """A live runner owns the instance; commands go to it through the store.

    Attributes:
        owner: the runner holding the lease, when known.
    """

    def __init__(self, workflow_id: str, owner: str | None) -> None:
        super().__init__(
            f"instance {workflow_id!r} is being run by another runner ({owner}); input, "
            "events and stop sent to it are recorded in the store and applied there",
            workflow_id=workflow_id,
        )
        self.owner = owner


class Ownership:
    """One runner's leases on a store.

    Args:
        store: where the leases live.
        ttl: seconds a lease lasts without renewal.
    """

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This runner's name in the store: ``host:pid:random``."""

    def acquire(self, workflow_id: str) -> int:
        """Take the instance's lease (from a dead process of this host too); return the token.

        Raises:
            OwnedElsewhereError: a live runner holds it.
            WorkflowNotFoundError: no such instance.
        """
        token = self.store.acquire_lease(workflow_id, self.owner, self.ttl)
        if token is not None:
            return token
        holder = self.store.lease_owner(workflow_id)
        if holder is not None and owner_is_dead(holder):
            self.store.release_lease(workflow_id, holder)
            token = self.store.acquire_lease(workflow_id, self.owner, self.ttl)
            if token is not None:
                return token
        if holder is None and not self.store.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id)
        raise OwnedElsewhereError(workflow_id, holder)

    def take_back(self, workflow_id: str, token: int) -> int | None:
        """Our lease expired: take it back under a new token if nobody took it meanwhile."""
        return self.store.acquire_lease(workflow_id, self.owner, self.ttl, expect=token)

    def renew(self) -> dict[str, int]:
        """Renew every lease we hold at once; return ``{workflow_id: token}`` renewed."""
        return self.store.renew_leases(self.owner, self.ttl)

    def release(self, workflow_id: str) -> None:
        """Give the instance's lease up (its token stays as it is)."""
        self.store.release_lease(workflow_id, self.owner)

    def claim(
        self, limit: int, timers_due: float, exclude: Collection[str]
    ) -> list[tuple[str, int]]:
        """Lease up to ``limit`` instances with work and no live owner (see the module doc)."""
        if limit <= 0:
            return []
        dead = [o for o in self.store.live_owners() if o != self.owner and owner_is_dead(o)]
        return self.store.claim(
            self.owner,
            self.ttl,
            limit=limit,
            timers_due=timers_due,
            dead_owners=dead,
            exclude=exclude,
        )


def owner_is_dead(owner: str) -> bool:
    """True when a lease owner (``host:pid:...``) ran on this host in a process that is gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(int(pid_text))


def _is_zombie(pid: int) -> bool:
    """A killed process that its parent has not reaped yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
