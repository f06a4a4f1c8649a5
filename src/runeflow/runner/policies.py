"""Per-component policies: retries with backoff, timeouts, failure handling, executor choice.

A runner holds a table of policies matched against each component, most specific first:
its exact name, then a name pattern (``"fetch_*"``, shell-style), then its kind
(``"kind:map"``), then the default (``"*"``)::

    rf.Runner(policies={
        "charge_card": rf.Policy(max_retries=3, backoff="exponential", timeout=10),
        "fetch_*": rf.Policy(max_retries=5, backoff="jitter", base_delay=0.2),
        "kind:map": rf.Policy(executor="processes"),
        "*": rf.Policy(on_failure="halt"),
    })
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.components import Component
from runeflow.model.events import ErrorInfo
from runeflow.model.runnable import Runnable

if TYPE_CHECKING:
    from runeflow.runner.executors import Executor

__all__ = ["Backoff", "OnFailure", "Policies", "Policy"]

Backoff = Literal["none", "linear", "exponential", "jitter"]
"""``none``: retry at once; ``linear``: base * attempt; ``exponential``: base * 2^(attempt-1);
``jitter``: a random delay between 0 and the exponential one ("full jitter")."""

OnFailure = Literal["skip", "halt"]
"""``skip``: the failed component's downstream is skipped for that input and the rest of the
instance carries on; ``halt``: the instance stops dispatching and is marked ``failed``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """How the runner treats one component's runnables."""

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
    executor: str | Executor | None = None
    """Run this component on another executor (``"inline"``, ``"threads"``,
    ``"processes"``, ``"asyncio"`` or an instance)."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise WorkflowDefinitionError("max_retries must be 0 or more")
        if self.backoff not in ("none", "linear", "exponential", "jitter"):
            raise WorkflowDefinitionError(
                f"backoff must be none, linear, exponential or jitter, not {self.backoff!r}"
            )
        if self.on_failure not in ("skip", "halt"):
            raise WorkflowDefinitionError(
                f"on_failure must be skip or halt, not {self.on_failure!r}"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise WorkflowDefinitionError("timeout must be a positive number of seconds")

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


class Policies:
    """A policy table, resolved per component and cached."""

    def __init__(self, table: Mapping[str, Policy] | Policy | None = None) -> None:
        if isinstance(table, Policy):
            table = {"*": table}
        self._exact: dict[str, Policy] = {}
        self._patterns: list[tuple[str, Policy]] = []
        self._kinds: dict[str, Policy] = {}
        self._default = DEFAULT_POLICY
        for key, policy in (table or {}).items():
            if not isinstance(policy, Policy):
                raise WorkflowDefinitionError(
                    f"policy for {key!r} must be an rf.Policy, got {type(policy).__name__}"
                )
            if key == "*":
                self._default = policy
            elif key.startswith("kind:"):
                self._kinds[key[5:]] = policy
            elif any(ch in key for ch in "*?["):
                self._patterns.append((key, policy))
            else:
                self._exact[key] = policy
        self._cache: dict[tuple[str, str], Policy] = {}

    def for_component(self, component: Component) -> Policy:
        """The policy that applies to ``component``."""
        key = (component.name, component.kind)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(*key)
            self._cache[key] = hit
        return hit

    def _resolve(self, name: str, kind: str) -> Policy:
        if name in self._exact:
            return self._exact[name]
        for pattern, policy in self._patterns:
            if fnmatch.fnmatchcase(name, pattern):
                return policy
        return self._kinds.get(kind, self._default)

    def is_trivial(self) -> bool:
        """True when every component gets the default policy and it does nothing special."""
        return (
            not self._exact
            and not self._patterns
            and not self._kinds
            and self._default == DEFAULT_POLICY
        )
