"""Loading a workflow instance back from a store, and saving its snapshots.

``load_workflow`` rebuilds an instance from its latest snapshot (when there is one) plus the
events logged after it, or from the whole log, using the code of its definition. Either way
the result equals folding the whole log.

Rehydration says which fact values are loaded (stores with the ``fact_store`` capability
keep values apart from the log; other stores always give every value):

* ``full``: every value, as the workflow had them;
* ``hybrid``: only the values the workflow needs to go on running (inputs of pending and
  in-flight runnables, facts waiting at joins and reduces, accumulator states, the facts of
  open waits); the others stay :class:`~runeflow.model.facts.FactRef` and are loaded when
  read (``results()``, ``raw_productions()``...);
* ``lazy``: none; each is loaded when a runnable or a reader first needs it.

A snapshot that cannot be read is an error naming the workflow (never a silent fallback);
``use_snapshot=False`` rebuilds from the whole log instead, unless the log was compacted
(``Runner(compact=True)``, :meth:`~runeflow.stores.base.Store.compact`): the events the
snapshot covers are gone then, and both say so instead of rebuilding a wrong state.

A loaded workflow keeps no events in memory (the store has them): its ``event_log()``
holds the build events and what happens after loading.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from runeflow.errors import (
    CodecError,
    DefinitionMismatchError,
    InstanceStateError,
    RuneflowError,
    StoreError,
    StoreUnavailableError,
)
from runeflow.model import events as ev
from runeflow.model.facts import FactRef
from runeflow.model.snapshot import (
    fold_events,
    hot_fact_ids,
    materialize,
    restore_snapshot,
    take_snapshot,
)
from runeflow.model.workflow import Workflow, load_definition
from runeflow.stores.base import Store, gc_paused
from runeflow.stores.integrity import RESTORE_ADVICE

__all__ = ["Rehydration", "load_workflow", "save_snapshot"]

Rehydration = Literal["full", "hybrid", "lazy"]
"""``full``: every fact value is loaded; ``hybrid``: only values still needed (pending
inputs, the frontier, join and reduce buffers, accumulator states, open waits); ``lazy``:
none until a runnable (or a reader) needs one."""

_MODES = ("full", "hybrid", "lazy")


def load_workflow(
    store: Store,
    workflow_id: str,
    definition: Any,
    *,
    rehydration: Rehydration = "full",
    migrate: bool = False,
    use_snapshot: bool = True,
) -> Workflow:
    """Rebuild instance ``workflow_id`` from ``store`` with the code of ``definition``.

    Args:
        store: where the instance is stored.
        workflow_id: the instance.
        definition: a Workflow, a builder returning one, or ``"pkg.mod:attr"``.
        rehydration: which fact values to load (see the module docstring).
        migrate: accept components whose code changed since the instance was stored.
        use_snapshot: start from the latest snapshot when there is one; ``False`` folds the
            whole log (e.g. when a snapshot cannot be read).

    Raises:
        WorkflowNotFoundError: no instance has that id.
        StoreError: the log or the snapshot cannot be read.
        DefinitionMismatchError: the definition does not match what was stored.
    """
    if rehydration not in _MODES:
        raise ValueError(f"rehydration must be 'full', 'hybrid' or 'lazy', not {rehydration!r}")
    defn = load_definition(definition) if definition is not None else None
    with_values = rehydration == "full" or not store.capabilities.fact_store
    stored = None
    if use_snapshot:
        try:
            stored = store.load_snapshot(workflow_id)
        except StoreError as exc:  # damaged: advise use_snapshot=False, if there is a log
            raise _without_log(store, workflow_id, exc) from exc
    if stored is None:
        _check_whole_log(store, workflow_id, use_snapshot)
        wf = _from_log(store, workflow_id, defn, with_values, migrate)
    else:
        full = rehydration == "full"
        wf = _from_snapshot(store, workflow_id, stored, defn, with_values, migrate, full)
    if rehydration == "full":
        materialize(wf, store.load_facts(list(_refs(wf))))
    elif rehydration == "hybrid":
        materialize(wf, store.load_facts(hot_fact_ids(wf)))
    wf.forget_committed()  # the store holds the log; keep only what comes next in memory
    return wf


def save_snapshot(
    store: Store,
    workflow_id: str,
    wf: Workflow,
    *,
    token: int | None = None,
    cursor: int | None = None,
) -> int:
    """Snapshot ``wf`` in ``store`` at the instance's current cursor; return that cursor.

    Stores with the ``fact_store`` capability already hold every appended fact value, so the
    snapshot refers to facts by id (and lists them, so that they stay while it does); other
    stores get the values in the snapshot.

    Args:
        store: where the instance is stored.
        workflow_id: the instance.
        wf: its workflow, every event of which is appended.
        token: the writer's fencing token (see :meth:`Store.save_snapshot`).
        cursor: the instance's cursor when the caller knows it (saves a query).

    Raises:
        InstanceStateError: ``wf`` has events not appended to the store yet (append
            ``wf.uncommitted_events()`` first), so a snapshot would not match the cursor.
        LeaseLostError: ``token`` is stale.
    """
    if wf.has_uncommitted():
        raise InstanceStateError(
            f"workflow {workflow_id!r} has events not yet appended to the store: append "
            "wf.uncommitted_events() before saving a snapshot"
        )
    if cursor is None:
        cursor = store.cursor(workflow_id)
    by_reference = store.capabilities.fact_store
    with gc_paused():  # a large state: the collector would rescan it for every batch of lists
        snapshot = store.codec.encode(take_snapshot(wf, values=not by_reference))
    refs = list(wf._facts) if by_reference else []
    store.save_snapshot(workflow_id, cursor, snapshot, token=token, fact_ids=refs)
    return cursor


def _check_whole_log(store: Store, workflow_id: str, use_snapshot: bool) -> None:
    """Refuse to fold a log whose start was compacted away, saying why and what to do."""
    start = store.get(workflow_id).compacted
    if not start:
        return
    if use_snapshot:
        why = "its snapshot is missing"
        what = f"restore the database from a backup, or delete the instance: {RESTORE_ADVICE}"
    else:
        why = "use_snapshot=False asks for the whole log"
        what = "load it from its snapshot (use_snapshot=True, the default)"
    raise StoreError(
        f"cannot rebuild workflow {workflow_id!r} from its log: events 1-{start} were "
        f"compacted into its snapshot (Runner(compact=True)) and {why}. To go on, {what}",
        workflow_id=workflow_id,
        cursor=1,
    )


def _without_log(store: Store, workflow_id: str, exc: StoreError) -> StoreError:
    """``exc`` (an unreadable snapshot, whose message advises ``use_snapshot=False``), or,
    when the log it covers was compacted away, an error that says so."""
    if isinstance(exc, StoreUnavailableError):
        return exc
    try:
        start = store.get(workflow_id).compacted
    except RuneflowError:
        return exc
    if not start:
        return exc
    return StoreError(
        f"cannot read the snapshot of workflow {workflow_id!r} ({exc}), and the events it "
        f"covers (1-{start}) were compacted away, so the instance cannot be rebuilt without "
        f"it: {RESTORE_ADVICE}",
        workflow_id=workflow_id,
        cursor=exc.cursor,
    )


def _from_log(
    store: Store, workflow_id: str, defn: Workflow | None, values: bool, migrate: bool
) -> Workflow:
    events = store.stream(workflow_id, values=values)
    build: list[ev.Event] = []
    first: ev.Event | None = None
    for event in events:
        if build and not isinstance(event, ev.ComponentAdded):
            first = event
            break
        build.append(event)
    wf = Workflow.from_events(build, definition=defn, migrate=migrate)
    wf.set_fact_loader(store.load_fact)
    if first is not None:
        fold_events(wf, _chain(first, events), defn, migrate=migrate)
    return wf


def _from_snapshot(
    store: Store,
    workflow_id: str,
    stored: tuple[int, bytes],
    defn: Workflow | None,
    values: bool,
    migrate: bool,
    full: bool,
) -> Workflow:
    cursor, data = stored
    try:
        with gc_paused():  # a large snapshot: millions of small objects that form no cycle
            snapshot = store.codec.decode(data)
        if not isinstance(snapshot, Mapping):
            raise CodecError(f"expected a mapping, found {type(snapshot).__name__}")
        # full rehydration: the values kept by reference, fetched at once and put in place
        refs = [rec[0] for rec in snapshot["facts"] if len(rec) == 5] if full else []
    except (RuneflowError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise _unreadable(store, workflow_id, cursor, exc) from exc
    known = store.load_facts(refs) if refs else None  # a missing value names its fact
    try:
        with gc_paused():
            wf = restore_snapshot(
                Workflow, snapshot, defn, migrate=migrate, loader=store.load_fact, values=known
            )
    except DefinitionMismatchError:
        raise
    except (RuneflowError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise _unreadable(store, workflow_id, cursor, exc) from exc
    tail = store.stream(workflow_id, after=cursor, values=values)
    fold_events(wf, tail, defn, migrate=migrate)
    return wf


def _unreadable(store: Store, workflow_id: str, cursor: int, exc: Exception) -> StoreError:
    """The error for a snapshot that cannot be read (see :func:`_without_log`)."""
    error = StoreError(
        f"cannot read the snapshot of workflow {workflow_id!r} at cursor {cursor}: {exc}. "
        "Recover with use_snapshot=False to rebuild from the whole log, or save a new snapshot",
        workflow_id=workflow_id,
        cursor=cursor,
    )
    return _without_log(store, workflow_id, error)


def _refs(wf: Workflow) -> list[str]:
    return [fid for fid, f in wf.facts().items() if type(f) is FactRef]


def _chain(first: ev.Event, rest: Iterator[ev.Event]) -> Iterator[ev.Event]:
    yield first
    yield from rest
