"""Listing instances a page at a time: filters, keyset positions and bounded counts.

A store may hold hundreds of thousands of instances; a dashboard or a script that pages
through them must never make the store read them all. :meth:`Store.list_page
<runeflow.stores.base.Store.list_page>` returns one page, newest first, and the positions
(:data:`PageKey`) from which the pages around it start; the durable stores answer it from
indexes (schema version 5 on SQLite, 6 on PostgreSQL), reading about as many rows as the
page holds.
:meth:`~runeflow.stores.base.Store.count_instances` counts up to a cap, so a count costs at
most that many index entries.

With an id prefix the page is ordered by id instead (the id index answers it); a status or
workflow filter on top of a prefix is checked row by row over at most :data:`SCAN_LIMIT`
ids per page, so such a page may come back short (even empty) while ``next`` says where
to go on.

This module also holds the reference implementation for stores without an index of their
own (``Store``'s default methods): it filters :meth:`~runeflow.stores.base.Store.list` in
Python, which reads every instance.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from runeflow.errors import UsageError
from runeflow.stores.integrity import STATUSES

if TYPE_CHECKING:
    from runeflow.stores.base import InstanceMeta

__all__ = [
    "COUNT_CAP",
    "MAX_PAGE",
    "SCAN_LIMIT",
    "IndexedListing",
    "InstanceFilter",
    "InstancePage",
    "ListingStatements",
    "PageKey",
    "check_count_args",
    "check_page_args",
    "indexed_page",
    "page_from_rows",
    "page_in_memory",
    "prefix_end",
    "status_ranges",
]

PageKey = tuple[Any, str]
"""A position in a listing: ``(created_at, workflow_id)`` of an instance, ``created_at`` as
the store keeps it (a float, unless the row is damaged). A page's ``next`` and ``previous``
keys are passed back as ``after=`` and ``before=``."""

MAX_PAGE = 500
"""The largest page :meth:`~runeflow.stores.base.Store.list_page` returns."""

SCAN_LIMIT = 2000
"""With an id prefix and a status or workflow filter, the ids examined per page at most."""

_MAX_STATUSES = 16

COUNT_CAP = 10_000
"""The default cap of :meth:`~runeflow.stores.base.Store.count_instances`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InstanceFilter:
    """Which instances a listing holds; every field left empty matches all."""

    statuses: tuple[str, ...] = ()
    """Only instances with one of these statuses (all statuses when empty)."""
    workflow: str | None = None
    """Only instances of this workflow (its definition name)."""
    id_prefix: str = ""
    """Only instances whose id starts with this (case-sensitive); the listing is then
    ordered by id rather than newest first."""

    def matches(self, meta: InstanceMeta) -> bool:
        """Whether ``meta`` passes the filter."""
        return (
            (not self.statuses or meta.status in self.statuses)
            and (self.workflow is None or meta.definition_name == self.workflow)
            and meta.workflow_id.startswith(self.id_prefix)
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class InstancePage:
    """One page of a listing."""

    instances: list[InstanceMeta] = field(default_factory=list)
    """The instances, newest first (by id, with an id prefix). A row that cannot be read
    whole comes flagged, as in :meth:`~runeflow.stores.base.Store.list`."""
    next: PageKey | None = None
    """Pass as ``after=`` for the following page; ``None`` when nothing follows."""
    previous: PageKey | None = None
    """Pass as ``before=`` for the page before this one; ``None`` on the first page."""


def check_page_args(
    where: InstanceFilter,
    after: PageKey | None,
    before: PageKey | None,
    limit: int,
    *,
    numeric_keys: bool = False,
) -> None:
    """Refuse arguments no listing can answer.

    Args:
        numeric_keys: the store keeps every ``created_at`` as a number, so a key's must be
            one too.

    Raises:
        UsageError: both ``after`` and ``before``, a key that is not ``(created_at,
            workflow_id)`` (with ``numeric_keys``, a ``created_at`` that is not a number), a
            limit out of 1..:data:`MAX_PAGE`, or a filter of the wrong types.
    """
    if after is not None and before is not None:
        raise UsageError("give after= or before= (a page's next or previous key), not both")
    for name, key in (("after", after), ("before", before)):
        if key is not None and not (isinstance(key, tuple) and len(key) == 2):
            raise UsageError(
                f"{name}= must be a page key (created_at, workflow_id) from a page's next or "
                f"previous, not {key!r}"
            )
        if numeric_keys and key is not None and type(key[0]) not in (int, float):
            raise UsageError(f"a page key's created_at must be a number, not {key[0]!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be a whole number from 1 to {MAX_PAGE}, not {limit!r}")
    if not isinstance(where.statuses, tuple) or not all(isinstance(s, str) for s in where.statuses):
        raise UsageError(f"statuses must be a tuple of status names, not {where.statuses!r}")
    if len(where.statuses) > _MAX_STATUSES:
        raise UsageError(f"give at most {_MAX_STATUSES} statuses, not {len(where.statuses)}")
    if where.workflow is not None and not isinstance(where.workflow, str):
        raise UsageError(f"workflow must be a workflow name, not {where.workflow!r}")
    if not isinstance(where.id_prefix, str):
        raise UsageError(f"id_prefix must be text, not {where.id_prefix!r}")


def check_count_args(status: str | None, workflow: str | None, cap: int) -> None:
    """Refuse arguments :meth:`~runeflow.stores.base.Store.count_instances` cannot answer.

    Raises:
        UsageError: a status or workflow that is not text, or a cap that is not a positive
            whole number.
    """
    for name, value in (("status", status), ("workflow", workflow)):
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{name} must be text or None, not {value!r}")
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise UsageError(f"cap must be a positive whole number, not {cap!r}")


StatusRange = tuple[str, tuple[str, ...]]
"""A range of the status index: ``("=", (s,))``, ``("<", (s,))``, ``(">", (s,))`` or
``("><", (low, high))`` (strictly between)."""


def status_ranges(statuses: tuple[str, ...]) -> list[StatusRange]:
    """The ranges of the ``(status, ...)`` indexes a listing reads: one per status asked
    for; with none, one per runeflow status and the gaps around them, where a status no
    runeflow writes (a damaged row) would sit. Each range is read in page order and the
    ranges merged, so no index in page order alone is needed (one index fewer to write)."""
    if statuses:
        return [("=", (s,)) for s in dict.fromkeys(statuses)]
    known = sorted(STATUSES)
    ranges: list[StatusRange] = [("=", (s,)) for s in known]
    ranges.append(("<", (known[0],)))
    ranges += [("><", (low, high)) for low, high in itertools.pairwise(known)]
    ranges.append((">", (known[-1],)))
    return ranges


def prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (``None``: no bound),
    so that ``prefix <= id < prefix_end(prefix)`` selects the ids with that prefix from an
    index ordered by code point (SQLite's BINARY collation, PostgreSQL's ``"C"``)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored: skip past them
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def page_from_rows(
    rows: Sequence[Any],
    key_of: Callable[[Any], PageKey],
    *,
    limit: int,
    after: PageKey | None,
    before: PageKey | None,
    exhausted: bool = True,
    resume: PageKey | None = None,
) -> tuple[list[Any], PageKey | None, PageKey | None]:
    """Cut fetched rows into a page and the keys around it.

    ``rows`` were fetched in display order after ``after`` (or from the start), or in
    reverse display order before ``before``, up to ``limit + 1`` of them. ``exhausted`` is
    ``False`` when the store stopped looking before it found them all (a bounded scan);
    ``resume`` is then where it stopped, in the fetch direction.

    Returns:
        ``(rows of the page in display order, next, previous)``.
    """
    more = len(rows) > limit or not exhausted
    page = list(rows[:limit])
    stop = key_of(page[-1]) if len(rows) > limit else resume
    if before is None:
        following = stop if more else None
        previous = (key_of(page[0]) if page else after) if after is not None else None
        return page, following, previous
    page.reverse()
    earlier = stop if more else None
    following = key_of(page[-1]) if page else before
    return page, following, earlier


T = TypeVar("T")


def page_in_memory(
    items: Iterable[T],
    where: InstanceFilter,
    *,
    after: PageKey | None,
    before: PageKey | None,
    limit: int,
    key_of: Callable[[T], PageKey],
    matches: Callable[[T], bool],
) -> tuple[list[T], PageKey | None, PageKey | None]:
    """A page of ``items`` (instances in any order, each with its ``key_of`` and whether it
    ``matches`` the filter), ordered in Python: one pass over them all, no sort of them all
    (the reference behaviour the indexed stores match).

    Returns:
        ``(the page's items in display order, next, previous)``.
    """
    by_id = bool(where.id_prefix)
    key = after if after is not None else before

    def position(item: T) -> tuple[Any, ...]:
        created_at, workflow_id = key_of(item)
        return (workflow_id,) if by_id else (created_at, workflow_id)

    bound = None if key is None else ((key[1],) if by_id else (key[0], key[1]))
    # display order: newest first (created_at, id descending), or by id ascending
    ascending = by_id == (before is None)
    wanted = [
        item
        for item in items
        if matches(item)
        and (bound is None or (position(item) > bound if ascending else position(item) < bound))
    ]
    pick = heapq.nsmallest if ascending else heapq.nlargest
    rows = pick(limit + 1, wanted, key=position)
    return page_from_rows(rows, key_of, limit=limit, after=after, before=before)


def indexed_page(
    where: InstanceFilter | None,
    after: PageKey | None,
    before: PageKey | None,
    limit: int,
    *,
    select_page_keys: Callable[[tuple[str, ...], bool, bool, bool], str],
    select_ids_by_prefix: Callable[[bool, bool], str],
    fetch: Callable[[str, list[Any]], Sequence[Any]],
    rows_by_id: Callable[[list[Any]], list[InstanceMeta]],
) -> InstancePage:
    """A page read from a SQL store's listing indexes: the keys of the page's instances
    from the index of the filter (by id, with a prefix), then their rows by id.

    Args:
        where, after, before, limit: as for :meth:`~runeflow.stores.base.Store.list_page`.
        select_page_keys: the store's statement for the keys of a page, given the status
            ranges' operators (:func:`status_ranges`), whether a workflow is given, whether
            a key is, and the direction.
        select_ids_by_prefix: the store's statement for ids in a prefix range, given
            whether the range has an upper bound, and the direction.
        fetch: runs a statement with its parameters and returns the rows.
        rows_by_id: the instances with the given ids, in that order.
    """
    where = where if where is not None else InstanceFilter()
    check_page_args(where, after, before, limit)
    if where.id_prefix:
        return _page_by_id(where, after, before, limit, select_ids_by_prefix, fetch, rows_by_id)
    key = after if after is not None else before
    ranges = status_ranges(where.statuses)
    query = select_page_keys(
        tuple(op for op, _ in ranges), where.workflow is not None, key is not None, before is None
    )
    rest = [*(key or ()), limit + 1]
    name = [where.workflow] if where.workflow is not None else []
    params = [p for _, values in ranges for p in (*name, *values, *rest)]
    keys = fetch(query, [*params, limit + 1])
    rows, following, previous = page_from_rows(
        keys, lambda r: (r[0], r[1]), limit=limit, after=after, before=before
    )
    metas = rows_by_id([r[1] for r in rows])
    return InstancePage(instances=metas, next=following, previous=previous)


def _page_by_id(
    where: InstanceFilter,
    after: PageKey | None,
    before: PageKey | None,
    limit: int,
    select_ids_by_prefix: Callable[[bool, bool], str],
    fetch: Callable[[str, list[Any]], Sequence[Any]],
    rows_by_id: Callable[[list[Any]], list[InstanceMeta]],
) -> InstancePage:
    """A page ordered by id, from the id index; a status or workflow filter is checked on
    at most :data:`SCAN_LIMIT` rows."""
    end = prefix_end(where.id_prefix)
    start = before[1] if before is not None else after[1] if after is not None else ""
    filtered = bool(where.statuses) or where.workflow is not None
    scan = SCAN_LIMIT if filtered else limit + 1
    query = select_ids_by_prefix(end is not None, before is None)
    rows = fetch(query, [where.id_prefix, *([end] if end else []), start, scan])
    matching = [
        r
        for r in rows
        if (not where.statuses or r[1] in where.statuses)
        and (where.workflow is None or r[2] == where.workflow)
    ]
    picked, following, previous = page_from_rows(
        matching[: limit + 1],
        lambda r: (r[3], r[0]),
        limit=limit,
        after=after,
        before=before,
        exhausted=len(rows) < scan or len(matching) > limit,
        resume=(rows[-1][3], rows[-1][0]) if rows else None,
    )
    metas = rows_by_id([r[0] for r in picked])
    return InstancePage(instances=metas, next=following, previous=previous)


class ListingStatements(Protocol):
    """A SQL store's listing statements (its SQL module: see ``_sqlite_sql``)."""

    SELECT_WORKFLOW_NAMES: str
    """The distinct workflow names, in order, at most ``limit`` (the only parameter)."""

    def select_page_keys(
        self, ranges: tuple[str, ...], workflow: bool, keyed: bool, newest_first: bool
    ) -> str:
        """The keys of a page: see :func:`indexed_page`."""

    def select_ids_by_prefix(self, bounded: bool, forward: bool) -> str:
        """Ids in a prefix range: see :func:`indexed_page`."""

    def count_instances(self, status: bool, workflow: bool) -> str:
        """A bounded count: the status and workflow when given, then the cap."""


class IndexedListing:
    """The listing methods of a SQL store (``list_page``, ``count_instances``,
    ``workflow_names``) answered from its listing indexes. Put it before ``Store`` in the
    store's bases and provide the three hooks."""

    _listing_sql: ListingStatements
    """The store's listing statements."""

    def _listing_read(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """Run a read-only statement; return its rows."""
        raise NotImplementedError

    def _rows_by_id(self, ids: list[Any]) -> list[InstanceMeta]:
        """The instances with these ids, in this order (see
        :func:`runeflow.stores._rows.metas_in_order`)."""
        raise NotImplementedError

    def list_page(
        self,
        where: InstanceFilter | None = None,
        *,
        after: PageKey | None = None,
        before: PageKey | None = None,
        limit: int = 50,
    ) -> InstancePage:
        """See :meth:`Store.list_page`: two indexed queries (the page's keys, then its rows)."""
        return indexed_page(
            where,
            after,
            before,
            limit,
            select_page_keys=self._listing_sql.select_page_keys,
            select_ids_by_prefix=self._listing_sql.select_ids_by_prefix,
            fetch=self._listing_read,
            rows_by_id=lambda ids: self._rows_by_id(ids) if ids else [],
        )

    def count_instances(
        self, *, status: str | None = None, workflow: str | None = None, cap: int = COUNT_CAP
    ) -> int:
        """See :meth:`Store.count_instances` (reads at most ``cap`` index entries)."""
        check_count_args(status, workflow, cap)
        query = self._listing_sql.count_instances(status is not None, workflow is not None)
        params = [x for x in (status, workflow) if x is not None]
        return int(self._listing_read(query, [*params, cap])[0][0])

    def workflow_names(self, limit: int = 200) -> list[str]:
        """See :meth:`Store.workflow_names` (one index probe per name)."""
        rows = self._listing_read(self._listing_sql.SELECT_WORKFLOW_NAMES, [limit])
        return [row[0] for row in rows if type(row[0]) is str]
