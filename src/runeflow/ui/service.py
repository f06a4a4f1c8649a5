"""What the dashboard shows and does, as plain data: no web framework here.

Every page and JSON endpoint calls one method of :class:`Dashboard`, which reads the store
through the read-only view (:mod:`runeflow.view`, :mod:`runeflow.viewdata`) and acts through
:class:`~runeflow.runner.client.Client`, so a bad request fails with the same
:class:`~runeflow.errors.RuneflowError` the API and the CLI raise.

Listing is one :meth:`~runeflow.stores.base.Store.list_page` (indexed) plus bounded counts;
each listed instance's summary (steps, failures, what it waits for) is folded from its log
once into counters (:class:`~runeflow.view.InstanceSummary`: nothing per fact) and then
kept, refreshed by folding only the events appended since. Summaries not ready within
:attr:`Dashboard.summary_budget` seconds come back ``null``, for the page to ask again
(``summaries``), so a page costs about the same however long the logs are.

Cached views and summaries are shared by every request: each is brought up to date and
read under its own lock (:class:`_Cache`), so an answer is never built from one that
another request is folding new events into.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar

from runeflow.drawing import STATE_STYLES, to_dot, to_mermaid, to_svg
from runeflow.errors import RuneflowError, UsageError, WorkflowNotFoundError
from runeflow.model.facts import ROOT
from runeflow.runner.client import Client
from runeflow.runner.info import Status
from runeflow.stores.base import InstanceMeta, Store
from runeflow.stores.listing import InstanceFilter, PageKey
from runeflow.view import (
    InstanceSummary,
    InstanceView,
    load_summary,
    load_view,
    refresh_summary,
    refresh_view,
)
from runeflow.viewdata import (
    event_data,
    event_failure,
    meta_dict,
    step_rows,
    summary_dict,
    to_jsonable,
)

__all__ = ["Dashboard", "ReadOnlyError"]

_STATUSES = [s.value for s in Status]
_ACTIVE = (Status.RUNNING.value, Status.WAITING.value, Status.IDLE.value)
_MAX_ID_TEXT = 255


class ReadOnlyError(RuneflowError):
    """The dashboard was started read-only (``--read-only``): it takes no actions."""

    def __init__(self) -> None:
        super().__init__(
            "this dashboard is read-only (runeflow ui --read-only): it sends no events and "
            "stops, retries or recovers nothing; use the CLI or a dashboard started without "
            "--read-only"
        )


_F = TypeVar("_F", InstanceView, InstanceSummary)
_R = TypeVar("_R")


@dataclass(slots=True)
class _Entry(Generic[_F]):
    """A cached view or summary (``None`` until first read) and the lock under which it is
    read and brought up to date."""

    folded: _F | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Cache(Generic[_F]):
    """Views or summaries of instances, least recently used dropped first, each brought up
    to date when asked for (only new events are read).

    Every read goes through :meth:`read` or :meth:`peek` with a function that builds the
    answer: it runs under the entry's lock, so no other request folds events into what it
    reads (the folded dicts are not safe to iterate while they change).
    """

    def __init__(
        self,
        size: int,
        load: Callable[[InstanceMeta | str], _F],
        refresh: Callable[[_F], _F],
    ) -> None:
        self.size = size
        self._load: Callable[[InstanceMeta | str], _F] = load
        self._refresh: Callable[[_F], _F] = refresh
        self._entries: OrderedDict[str, _Entry[_F]] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, meta: InstanceMeta, build: Callable[[_F], _R]) -> _R | None:
        """``build(cached)`` when the cached one is current for ``meta`` (no store read);
        else ``None``."""
        with self._lock:
            entry = self._entries.get(meta.workflow_id)
        if entry is None:
            return None
        with entry.lock:
            folded = entry.folded
            if folded is None or _state(folded.meta, folded.cursor) != _state(meta, meta.cursor):
                return None
            return build(folded)

    def read(self, instance: InstanceMeta | str, build: Callable[[_F], _R]) -> _R:
        """``build(it)`` for the instance's view or summary, read or brought up to date now
        (``instance``: its id, or its metadata as just read).

        Raises:
            WorkflowNotFoundError: the instance is gone (it is dropped from the cache).
            StoreError: its log cannot be read.
        """
        workflow_id = _id_of(instance)
        with self._lock:
            entry = self._entries.get(workflow_id)
            if entry is None:
                entry = self._entries[workflow_id] = _Entry()
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(workflow_id)
        with entry.lock:
            try:
                if entry.folded is None:
                    entry.folded = self._load(instance)
                else:
                    entry.folded = self._refresh(entry.folded)
            except WorkflowNotFoundError:
                with self._lock:
                    if self._entries.get(workflow_id) is entry:
                        del self._entries[workflow_id]
                raise
            return build(entry.folded)


class Dashboard:
    """The dashboard over one store: listings, instance details, facts, and the actions.

    Args:
        store: the store to show.
        read_only: refuse every action (:class:`ReadOnlyError`).
        summary_budget: seconds a listing may spend folding logs for summaries; the rest
            come back ``null`` (ask :meth:`summaries`).
        page_size: instances per page unless a request asks for another size.
    """

    def __init__(
        self,
        store: Store,
        *,
        read_only: bool = False,
        summary_budget: float = 0.15,
        page_size: int = 50,
    ) -> None:
        self.store = store
        self.read_only = read_only
        self.summary_budget = summary_budget
        self.page_size = page_size
        self.client = Client(store)
        self._summaries: _Cache[InstanceSummary] = _Cache(
            4096, lambda at: load_summary(store, at), lambda s: refresh_summary(store, s)
        )
        self._details: _Cache[InstanceView] = _Cache(
            64,
            lambda at: load_view(store, _id_of(at), values=False, events=False),
            lambda view: refresh_view(store, view),
        )

    # --- the instances page -----------------------------------------------------------------

    def instances(self, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """``GET /api/instances``: one page of instances with their summaries, the keys of
        the pages around it, bounded counts per status, and the workflow names.

        Query parameters: ``status`` (repeatable), ``workflow``, ``q`` (id prefix),
        ``after`` / ``before`` (a page's ``next`` / ``previous``), ``limit``.

        Raises:
            UsageError: a malformed parameter (a page key that was not given out here...).
        """
        statuses = tuple(s for s in query.get("status", []) if s)
        workflow = _one(query, "workflow") or None
        prefix = _one(query, "q").strip()
        if len(prefix) > _MAX_ID_TEXT:
            raise UsageError("q: an id prefix is at most 255 characters")
        where = InstanceFilter(statuses=statuses, workflow=workflow, id_prefix=prefix)
        limit = _limit(_one(query, "limit"), self.page_size)
        after, before = _key(_one(query, "after"), "after"), _key(_one(query, "before"), "before")
        page = self.store.list_page(where, after=after, before=before, limit=limit)
        rows = self._rows(page.instances)
        counts = {s: self.store.count_instances(status=s, workflow=workflow) for s in _STATUSES}
        return {
            "instances": rows,
            "next": _token(page.next),
            "previous": _token(page.previous),
            "counts": {"all": self.store.count_instances(workflow=workflow), **counts},
            "count_cap": 10_000,
            "workflows": self.store.workflow_names(),
            "filter": {"status": list(statuses), "workflow": workflow, "q": prefix},
            "limit": limit,
            "by_id": bool(prefix),
        }

    def summaries(self, ids: Iterable[str]) -> dict[str, Any]:
        """``GET /api/summaries?id=...``: the summaries a listing left ``null``, within the
        same time budget (those still not ready are ``null`` again)."""
        deadline = time.monotonic() + self.summary_budget
        out: dict[str, Any] = {}
        for n, workflow_id in enumerate(list(dict.fromkeys(ids))[: self.page_size * 2]):
            if n and time.monotonic() > deadline:  # always one, so that asking again helps
                out[workflow_id] = None
                continue
            try:
                out[workflow_id] = self._summaries.read(workflow_id, summary_dict)
            except RuneflowError as exc:
                out[workflow_id] = {"unreadable": str(exc)}
        return {"summaries": out}

    def _rows(self, metas: list[InstanceMeta]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.summary_budget
        rows: list[dict[str, Any]] = []
        folded = False
        for meta in metas:
            summary: Any = self._summaries.peek(meta, summary_dict)
            if summary is None and (not folded or time.monotonic() <= deadline):
                folded = True
                try:
                    summary = self._summaries.read(meta, summary_dict)
                except WorkflowNotFoundError:
                    continue  # deleted since the page was read
                except RuneflowError as exc:
                    summary = {"unreadable": str(exc)}
            rows.append(meta_dict(meta) | {"summary": summary})
        return rows

    # --- the instance page ------------------------------------------------------------------

    def instance(self, workflow_id: str, since: str = "") -> dict[str, Any]:
        """``GET /api/instances/{id}``: the instance, its graph with each component's state,
        failures with tracebacks, open waits and timers, facts (without values), the latest
        events, and which actions it takes. With ``since`` equal to the ``version`` of a
        previous answer and nothing changed: ``{"unchanged": true}``.

        Raises:
            WorkflowNotFoundError: no such instance.
            StoreError: its log cannot be read.
        """
        return self._details.read(workflow_id, lambda view: self._detail(view, since))

    def _detail(self, view: InstanceView, since: str) -> dict[str, Any]:
        """:meth:`instance`'s answer, built under the view's lock."""
        meta = view.meta
        version = _version(meta, view)
        if since and since == version:
            return {"unchanged": True, "version": version}
        nodes = view.nodes()
        name = meta.definition_name
        last = {component: fid for fid, component in _fact_components(view)}
        outputs = view.outputs or {n: n for n in view.sinks()}
        return {
            "version": version,
            "instance": meta_dict(meta) | {"summary": summary_dict(view)},
            "retry_of": meta.metadata.get("retry_of"),
            "failures": [event_failure(f) for f in view.failures],
            "steps": step_rows(view),
            "open_waits": [
                {
                    "wait_id": w.wait_id,
                    "step": w.component,
                    "events": list(w.events),
                    "timeout": w.timeout,
                }
                for w in view.open_waits.values()
            ],
            "timers": [
                {
                    "timer_id": t.timer_id,
                    "step": t.component,
                    "event": t.event,
                    "fire_at": t.fire_at,
                }
                for t in view.timers.values()
            ],
            "outputs": [
                {"port": port, "component": c, "fact_id": last.get(c)}
                for port, c in outputs.items()
            ],
            "facts": _facts(view),
            "events": self.events(meta.workflow_id, after=max(0, view.cursor - 50), limit=50),
            "graph": {
                "svg": to_svg(name, nodes),
                "mermaid": to_mermaid(name, nodes),
                "dot": to_dot(name, nodes),
                "states": {s: {"fill": f, "stroke": k} for s, (f, k) in STATE_STYLES.items()},
            },
            "actions": self._actions(view),
            "read_only": self.read_only,
        }

    def events(self, workflow_id: str, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """``GET /api/events/{id}?after=N&limit=M``: events ``after+1`` to ``after+limit``
        of the log (fact values left out: load them with :meth:`fact`)."""
        if not 1 <= limit <= 500 or after < 0:
            raise UsageError("events: after must be 0 or more, limit from 1 to 500")
        stream = self.store.stream(workflow_id, after=after, values=False)
        events = [
            {"n": after + i, "kind": e.kind, "data": event_data(e)}
            for i, e in enumerate(islice(stream, limit), start=1)
        ]
        total = self.store.cursor(workflow_id)
        return {"after": after, "events": events, "total": total}

    def fact(self, workflow_id: str, fact_id: str) -> dict[str, Any]:
        """``GET /api/facts/{id}?fact=FACT_ID``: one fact's value, loaded now.

        Raises:
            WorkflowNotFoundError: no such instance, or no such fact in it.
            StoreError: the value cannot be read or decoded (an untrusted type, damage).
        """
        ref = self._details.read(
            workflow_id, lambda view: next((f for f in view.facts if f.id == fact_id), None)
        )
        if ref is None:
            raise WorkflowNotFoundError(
                workflow_id, f"instance {workflow_id!r} has no fact {fact_id!r}"
            )
        value = to_jsonable(self.store.load_fact(fact_id))
        text = json.dumps(value, ensure_ascii=False, indent=2)
        out = {
            "id": fact_id,
            "component": "input" if ref.component == ROOT else ref.component,
            "parents": list(ref.parents),
            "size": len(text),
            "truncated": len(text) > _MAX_VALUE_TEXT,
        }
        if out["truncated"]:
            return out | {"value": None, "text": text[:_MAX_VALUE_TEXT]}
        return out | {"value": value, "text": text}

    def graph_svg(self, workflow_id: str) -> str:
        """``GET /api/graph/{id}``: the instance's graph as an SVG drawing."""
        return self._details.read(
            workflow_id, lambda view: to_svg(view.meta.definition_name, view.nodes())
        )

    def _actions(self, view: InstanceView) -> dict[str, bool]:
        if self.read_only:
            return dict.fromkeys(("resume", "stop", "retry", "recover"), False)
        status = view.meta.status
        inputs = any(f.component == ROOT for f in view.facts)
        return {
            "resume": status in _ACTIVE and bool(view.open_waits),
            "stop": status in _ACTIVE,
            "retry": status in (Status.FAILED.value, Status.STOPPED.value) and inputs,
            "recover": status == Status.FAILED.value and not view.failures,
        }

    # --- actions: through rf.Client, the API's checked paths ------------------------------

    def resume(self, workflow_id: str, body: Any) -> dict[str, Any]:
        """``POST /api/resume/{id}`` with ``{"event", "payload", "step"}``: deliver an event
        to an open wait (:meth:`Client.resume`: checked against the stored waits)."""
        with self._acting():
            event = _text_field(body, "event", required=True) or ""
            step = _text_field(body, "step")
            payload = body.get("payload")
            self.client.resume(workflow_id, event, payload, step=step)
        return {"ok": True, "id": workflow_id, "done": f"event {event!r} sent"}

    def stop(self, workflow_id: str, body: Any) -> dict[str, Any]:
        """``POST /api/stop/{id}``: stop the instance (:meth:`Client.stop`)."""
        with self._acting():
            _object(body)
            self.client.stop(workflow_id)
        return {"ok": True, "id": workflow_id, "done": "stopped"}

    def retry(self, workflow_id: str, body: Any) -> dict[str, Any]:
        """``POST /api/retry/{id}`` with ``{"id": NEW_ID}`` (optional): a new instance with
        the same inputs (:meth:`Client.retry`)."""
        with self._acting():
            new_id = _text_field(body, "id")
            created = self.client.retry(workflow_id, new_id)
        return {"ok": True, "id": created, "done": f"retried as {created!r}"}

    def recover(self, workflow_id: str, body: Any) -> dict[str, Any]:
        """``POST /api/recover/{id}``: hand the instance back to the serving runners
        (:meth:`Client.recover`)."""
        with self._acting():
            _object(body)
            self.client.recover(workflow_id)
        return {"ok": True, "id": workflow_id, "done": "handed back to the workers"}

    @contextmanager
    def _acting(self) -> Iterator[None]:
        if self.read_only:
            raise ReadOnlyError()
        yield


def _state(meta: InstanceMeta, cursor: int) -> tuple[Any, ...]:
    """What a cached view or summary must share with an instance's row to be current."""
    return (meta.created_at, cursor, meta.status, meta.error)


def _id_of(instance: InstanceMeta | str) -> str:
    return instance if isinstance(instance, str) else instance.workflow_id


def _version(meta: InstanceMeta, view: InstanceView) -> str:
    return json.dumps(
        [meta.created_at, view.cursor, meta.status, meta.error, meta.owner, meta.updated_at]
    )


def _fact_components(view: InstanceView) -> list[tuple[str, str]]:
    return [(f.id, f.component) for f in view.facts]


_MAX_FACTS = 500
_MAX_VALUE_TEXT = 200_000


def _facts(view: InstanceView) -> dict[str, Any]:
    """The latest facts (ids, producers, parents: no values), at most :data:`_MAX_FACTS`."""
    shown = view.facts[-_MAX_FACTS:]
    return {
        "total": len(view.facts),
        "items": [
            {"id": f.id, "component": "input" if f.component == ROOT else f.component}
            | {"parents": list(f.parents)}
            for f in shown
        ],
    }


def _one(query: Mapping[str, Sequence[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[-1]


def _limit(text: str, default: int) -> int:
    if not text:
        return default
    try:
        limit = int(text)
    except ValueError:
        raise UsageError(f"limit must be a whole number, not {text[:20]!r}") from None
    if not 1 <= limit <= 500:
        raise UsageError(f"limit must be from 1 to 500, not {limit}")
    return limit


def _token(key: PageKey | None) -> str | None:
    """A page key as an opaque URL-safe token."""
    if key is None:
        return None
    created, workflow_id = key
    if isinstance(created, float) and not math.isfinite(created):
        created = str(created)  # JSON has no NaN or infinity
    data = json.dumps([created, workflow_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _key(token: str, name: str) -> PageKey | None:
    """Read back a token from :func:`_token`.

    Raises:
        UsageError: it is not one.
    """
    if not token:
        return None
    refused = UsageError(f"{name}: not a page key given out by this dashboard")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, workflow_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise refused from None
    if not _storable_text(workflow_id):
        raise refused
    if isinstance(created, str) and created in ("inf", "-inf", "nan"):
        return (float(created), workflow_id)
    if type(created) is int and abs(created) < 2**53:
        return (float(created), workflow_id)  # the stores keep creation times as floats
    if type(created) is float or _storable_text(created):
        return (created, workflow_id)  # text: a damaged row's creation time, as stored
    raise refused


def _storable_text(value: Any) -> bool:
    """Whether ``value`` is text a store can take as a query parameter (no lone surrogate)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object")
    return body


def _text_field(body: Any, name: str, *, required: bool = False) -> str | None:
    value = _object(body).get(name)
    if value is None or value == "":
        if required:
            raise UsageError(f"{name!r} is required")
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name!r} must be text, not {type(value).__name__}")
    return value
