"""Per-component policies: retries with backoff, timeouts, failure handling, executor choice.

A policy says *how* a component's runnables are run, not *what* they compute: it is not part
of a component's content hash, so changing a policy is not a definition change (an instance
recovered with the new definition runs with the new policy, and its log still replays).

Policies can be attached where the definition is written, so that every process that runs
the definition behaves the same::

    rf.step(charge, name="charge_card", policy=rf.Policy(max_retries=3, timeout=10))
    rf.workflow(name="orders", steps=[...], policies={"fetch_*": rf.Policy(max_retries=5)})

A policy table (:class:`Policies`) is matched against each component, most specific first:
its exact name, then a name pattern (``"fetch_*"``, shell-style), then its kind
(``"kind:map"``), then the default (``"*"``). How a runner combines its own table with the
definition's is described in :mod:`runeflow.runner.policies`.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.events import ErrorInfo
from runeflow.model.runnable import Runnable

if TYPE_CHECKING:
    from runeflow.model.components import Component

__all__ = ["DEFAULT_POLICY", "Backoff", "OnFailure", "Policies", "Policy"]

Backoff = Literal["none", "linear", "exponential", "jitter"]
"""``none``: retry at once; ``linear``: base * attempt; ``exponential``: base * 2^(attempt-1);
``jitter``: a random delay between 0 and the exponential one ("full jitter")."""

OnFailure = Literal["skip", "halt"]
"""``skip``: the failed component's downstream is skipped for that input and the rest of the
instance carries on (it settles as ``failed`` once nothing else runs); ``halt``: the instance
stops dispatching at once and is marked ``failed``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """How a runner treats one component's runnables."""

    max_retries: int = 0
    """Retries after the first failure (0: none)."""
    backoff: Backoff = "exponential"
    """How the delay between attempts grows."""
    base_delay: float = 0.1
    """Seconds; the first retry's delay for ``linear`` and ``exponential``."""
    max_delay: float = 30.0
    """Upper bound on any delay, in seconds."""
    timeout: float | None = None
    """Seconds an attempt may run. A synchronous step past it is abandoned (its thread cannot
    be killed; its late result is ignored) and reported as a ``TimeoutError``; an async step
    is cancelled. A timeout counts as a failed attempt."""
    on_failure: OnFailure = "skip"
    """What a final failure does to the instance."""
    fallback: Callable[[Runnable, ErrorInfo], Any] | None = None
    """Called with the runnable and its error after the last attempt failed; its return value
    becomes the component's output instead of the failure."""
    executor: Any = None
    """Run this component on another executor: a name (``"inline"``, ``"threads"``,
    ``"processes"``, ``"asyncio"``, ``"dask"``, ``"ray"``) or an
    :class:`~runeflow.runner.executors.Executor` such as ``rf.DaskExecutor(client)``."""

    def __post_init__(self) -> None:
        if type(self.max_retries) is not int or self.max_retries < 0:
            raise WorkflowDefinitionError(
                f"max_retries must be a whole number, 0 or more, not {self.max_retries!r}"
            )
        if self.backoff not in ("none", "linear", "exponential", "jitter"):
            raise WorkflowDefinitionError(
                f"backoff must be none, linear, exponential or jitter, not {self.backoff!r}"
            )
        if self.on_failure not in ("skip", "halt"):
            raise WorkflowDefinitionError(
                f"on_failure must be skip or halt, not {self.on_failure!r}"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise WorkflowDefinitionError("timeout must be a positive number of seconds")
        if self.base_delay < 0 or self.max_delay < 0:
            raise WorkflowDefinitionError("base_delay and max_delay must be 0 or more seconds")
        if self.fallback is not None and not callable(self.fallback):
            raise WorkflowDefinitionError(
                f"fallback must be a function (runnable, error) -> value, not "
                f"{type(self.fallback).__name__}"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        if self.backoff == "none":
            return 0.0
        if self.backoff == "linear":
            raw = self.base_delay * attempt
        else:
            raw = self.base_delay * (2 ** (attempt - 1))
        raw = min(raw, self.max_delay)
        if self.backoff == "jitter":
            raw = (rng or random).uniform(0, raw)
        return raw


DEFAULT_POLICY = Policy()
"""The policy of a component no table names: one attempt, failures skip downstream."""


class Policies:
    """A policy table, resolved per component and cached.

    Args:
        table: ``{key: Policy}`` where a key is a component name, a shell-style name pattern,
            ``"kind:<kind>"`` or ``"*"``; a single :class:`Policy` means ``{"*": policy}``.
    """

    def __init__(self, table: Mapping[str, Policy] | Policy | None = None) -> None:
        if isinstance(table, Policy):
            table = {"*": table}
        if table is not None and not isinstance(table, Mapping):
            raise WorkflowDefinitionError(
                "policies must be a dict {name or pattern: rf.Policy(...)} or one rf.Policy, "
                f"not {type(table).__name__}"
            )
        self._exact: dict[str, Policy] = {}
        self._patterns: list[tuple[str, Policy]] = []
        self._kinds: dict[str, Policy] = {}
        self.default: Policy | None = None
        """The ``"*"`` entry, when the table has one."""
        for key, policy in (table or {}).items():
            if not isinstance(key, str) or not key:
                raise WorkflowDefinitionError(
                    f"policy keys must be component names or patterns, not {key!r}"
                )
            if not isinstance(policy, Policy):
                raise WorkflowDefinitionError(
                    f"policy for {key!r} must be an rf.Policy, got {type(policy).__name__}"
                )
            if key == "*":
                self.default = policy
            elif key.startswith("kind:"):
                self._kinds[key[5:]] = policy
            elif any(ch in key for ch in "*?["):
                self._patterns.append((key, policy))
            else:
                self._exact[key] = policy
        self._cache: dict[tuple[str, str], Policy] = {}

    def named(self, name: str, kind: str) -> Policy | None:
        """The policy an entry other than ``"*"`` gives the component, if any."""
        hit = self._exact.get(name)
        if hit is not None:
            return hit
        for pattern, policy in self._patterns:
            if fnmatch.fnmatchcase(name, pattern):
                return policy
        return self._kinds.get(kind)

    def lookup(self, name: str, kind: str) -> Policy | None:
        """The policy any entry (``"*"`` last) gives the component, if any."""
        hit = self.named(name, kind)
        return hit if hit is not None else self.default

    def for_component(self, component: Component) -> Policy:
        """The policy that applies to ``component`` (:data:`DEFAULT_POLICY` when none)."""
        key = (component.name, component.kind)
        hit = self._cache.get(key)
        if hit is None:
            hit = self.lookup(*key) or DEFAULT_POLICY
            self._cache[key] = hit
        return hit

    def table(self) -> dict[str, Policy]:
        """The table as given: ``{name, pattern, "kind:<kind>" or "*": Policy}``."""
        out: dict[str, Policy] = {**self._exact, **dict(self._patterns)}
        out.update({f"kind:{kind}": policy for kind, policy in self._kinds.items()})
        if self.default is not None:
            out["*"] = self.default
        return out

    def policies(self) -> list[Policy]:
        """Every policy in the table."""
        found = [*self._exact.values(), *(p for _, p in self._patterns), *self._kinds.values()]
        return [*found, self.default] if self.default is not None else found

    def is_empty(self) -> bool:
        """True when the table has no entry at all."""
        return not (self._exact or self._patterns or self._kinds or self.default)

    def is_trivial(self) -> bool:
        """True when every component gets the default policy and it does nothing special."""
        return (
            not self._exact
            and not self._patterns
            and not self._kinds
            and self.default in (None, DEFAULT_POLICY)
        )
