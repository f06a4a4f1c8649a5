"""Errors raised by runeflow.

Every error a user can meet derives from :class:`RuneflowError`. Definition errors (a bad
graph, a changed definition) are kept apart from runtime errors (an unknown instance, a store
that cannot be read)::

    RuneflowError
    ├── UsageError                      an argument to the API is invalid (unknown executor...)
    ├── DefinitionError                 a workflow or component is built wrongly
    │   ├── WorkflowDefinitionError     unknown parent, duplicate name, cycle, bad arity
    │   ├── DefinitionMismatchError     a stored log was written by different code
    │   └── UntrustedDefinitionError    an instance names code this runner was not given
    └── RuntimeFailure                  something went wrong while running
        ├── WorkflowNotFoundError       no instance with that id
        ├── InstanceStateError          the instance cannot take that request now
        │   └── LeaseLostError          another runner owns the instance now (fenced)
        ├── RunContextError             a required run-context key is missing
        ├── DispatchError               a runnable cannot be sent to its executor
        │   └── ClusterUnavailableError a Dask or Ray cluster cannot be reached
        ├── StoreError                  the store failed or holds unreadable data
        │   └── StoreUnavailableError   the store cannot be reached now (retried)
        └── CodecError                  a value cannot be encoded or decoded

Errors carry the fields they talk about (``workflow_id``, ``component``...) as attributes, and
their message says what to do about the problem.
"""

from __future__ import annotations

__all__ = [
    "ClusterUnavailableError",
    "CodecError",
    "DefinitionError",
    "DefinitionMismatchError",
    "DispatchError",
    "InstanceStateError",
    "LeaseLostError",
    "RunContextError",
    "RuneflowError",
    "RuntimeFailure",
    "StoreError",
    "StoreUnavailableError",
    "UntrustedDefinitionError",
    "UsageError",
    "WorkflowDefinitionError",
    "WorkflowNotFoundError",
]


class RuneflowError(Exception):
    """Root of every error raised by runeflow."""


class UsageError(RuneflowError, ValueError, TypeError):
    """An argument to a runeflow function is invalid (an unknown executor name, a wrong type).

    It is a ``ValueError`` and a ``TypeError`` too, so code written against the built-in
    exceptions keeps working.
    """


class DefinitionError(RuneflowError):
    """A workflow or one of its components is defined wrongly."""


class WorkflowDefinitionError(DefinitionError, ValueError):
    """The graph is invalid: unknown parent, duplicate name, cycle or impossible arity.

    Attributes:
        component: the name of the component at fault, when there is one.
    """

    def __init__(self, message: str, *, component: str | None = None) -> None:
        super().__init__(message)
        self.component = component


class DefinitionMismatchError(DefinitionError):
    """A stored log does not match the definition offered to rebuild it.

    Attributes:
        component: the component whose hash (or presence) differs.
        stored_hash: the hash recorded in the log, if any.
        current_hash: the hash of the definition's component, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        component: str,
        stored_hash: str | None = None,
        current_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.component = component
        self.stored_hash = stored_hash
        self.current_hash = current_hash


class UntrustedDefinitionError(DefinitionError):
    """An instance names a definition this runner was not given and may not import.

    Attributes:
        workflow_name: the instance's workflow name.
        path: the import path recorded with the instance, if any.
    """

    def __init__(self, workflow_name: str, path: str | None) -> None:
        if path is None:
            how = "and records no import path"
        else:
            how = f"and records the import path {path!r}, which this runner does not trust"
        super().__init__(
            f"no definition registered for workflow {workflow_name!r} {how}: give the runner "
            f"the definition (Runner(workflows=[...]), runner.register(...), or `runeflow "
            f"worker --workflows MODULE:ATTR`), or trust its module explicitly "
            f"(Runner(trusted_modules=[...]), `--trust MODULE`); runeflow never imports code "
            "named only by store contents"
        )
        self.workflow_name = workflow_name
        self.path = path


class RuntimeFailure(RuneflowError):
    """Something went wrong while running workflows (as opposed to defining them)."""


class WorkflowNotFoundError(RuntimeFailure, LookupError):
    """No workflow instance has the given id, in the runner or in its store.

    Attributes:
        workflow_id: the id that was asked for.
    """

    def __init__(self, workflow_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"no workflow instance with id {workflow_id!r}: check the id, or start it first "
            "with start_workflow()/start_instance()"
        )
        self.workflow_id = workflow_id


class InstanceStateError(RuntimeFailure):
    """The instance exists but cannot take this request in its current state.

    Attributes:
        workflow_id: the instance concerned.
        status: its status when the request was refused.
    """

    def __init__(self, message: str, *, workflow_id: str | None = None, status: str | None = None):
        super().__init__(message)
        self.workflow_id = workflow_id
        self.status = status


class LeaseLostError(InstanceStateError):
    """A write was refused: another runner took the instance over (its fencing token moved on).

    The runner that gets it stops the instance at once and writes nothing more; the new owner
    carries on from the store.

    Attributes:
        token: the fencing token the refused write stated.
    """

    def __init__(self, workflow_id: str, token: int | None = None, detail: str = "") -> None:
        super().__init__(
            f"instance {workflow_id!r} is owned by another runner now (this write stated "
            f"fencing token {token}{detail}): nothing was written; it carries on there",
            workflow_id=workflow_id,
        )
        self.token = token


class RunContextError(RuntimeFailure, KeyError):
    """A component needs a run-context key that was not supplied.

    Attributes:
        component: the component that declared the key.
        key: the missing key.
    """

    def __init__(self, *, component: str, key: str) -> None:
        super().__init__(
            f"component {component!r} needs run-context key {key!r}: pass "
            f"run_context={{{component!r}: {{{key!r}: ...}}}} or put it under '_global'"
        )
        self.component = component
        self.key = key

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DispatchError(RuntimeFailure):
    """A runnable cannot be sent to its executor (e.g. its function cannot be pickled).

    Attributes:
        component: the component concerned.
    """

    def __init__(self, message: str, *, component: str | None = None) -> None:
        super().__init__(message)
        self.component = component


class ClusterUnavailableError(DispatchError):
    """A Dask scheduler or Ray cluster cannot be reached at the address given.

    Attributes:
        address: the address that was tried.
    """

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


class StoreError(RuntimeFailure):
    """The store failed, or holds data that cannot be read.

    Attributes:
        workflow_id: the instance whose data is concerned, when known.
        cursor: the position in its log, when known.
    """

    def __init__(
        self, message: str, *, workflow_id: str | None = None, cursor: int | None = None
    ) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.cursor = cursor


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now (connection lost, server restarting, locked).

    Transient: runners retry with capped, jittered backoff and never give an instance up
    because of it. Whether a write that failed this way was committed is unknown.
    """


class CodecError(RuntimeFailure, TypeError):
    """A value cannot be encoded, or stored bytes cannot be decoded.

    Attributes:
        type_name: the qualified name of the type at fault, when known.
    """

    def __init__(self, message: str, *, type_name: str | None = None) -> None:
        super().__init__(message)
        self.type_name = type_name
