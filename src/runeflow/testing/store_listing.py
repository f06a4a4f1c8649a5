"""Conformance cases for listing a page at a time (:meth:`Store.list_page`,
:meth:`Store.count_instances`, :meth:`Store.workflow_names`): part of
:class:`~runeflow.testing.store_contract.StoreContract`.

Every case compares the store's answer with what :meth:`Store.list` says, filtered and
ordered as :mod:`runeflow.stores.listing` defines, so an indexed implementation must give
exactly what the reference one gives.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from runeflow.errors import UsageError
from runeflow.stores import listing
from runeflow.stores.base import InstanceMeta, Store
from runeflow.stores.listing import InstanceFilter, InstancePage, PageKey

__all__ = ["ListingContract"]

_STATUSES = ("running", "waiting", "idle", "failed", "stopped")


def _newest_first(metas: list[InstanceMeta]) -> list[str]:
    ordered = sorted(metas, key=lambda m: (m.created_at, m.workflow_id), reverse=True)
    return [m.workflow_id for m in ordered]


def _walk(store: Store, where: InstanceFilter, limit: int) -> tuple[list[str], list[InstancePage]]:
    """Follow ``next`` from the first page to the end; return the ids and the pages."""
    ids: list[str] = []
    pages: list[InstancePage] = []
    key: PageKey | None = None
    while True:
        page = store.list_page(where, after=key, limit=limit)
        pages.append(page)
        ids += [m.workflow_id for m in page.instances]
        if page.next is None:
            return ids, pages
        assert len(pages) < 1000, "next keeps pointing somewhere: the listing never ends"
        key = page.next


def _walk_back(store: Store, where: InstanceFilter, limit: int, key: PageKey | None) -> list[str]:
    """Follow ``previous`` back to the first page; return the ids in display order."""
    ids: list[str] = []
    while key is not None:
        page = store.list_page(where, before=key, limit=limit)
        ids = [m.workflow_id for m in page.instances] + ids
        key = page.previous
    return ids


class ListingContract:
    """Listing cases every store must pass (needs a ``store`` fixture)."""

    def _populate(self, store: Store, count: int = 23, prefix: str = "") -> list[str]:
        """``count`` instances of workflows ``alpha``/``beta`` with every status, in turn."""
        tag = prefix or f"ls-{uuid.uuid4().hex[:6]}-"
        ids = []
        for i in range(count):
            wid = f"{tag}{i:03d}"
            name = "alpha" if i % 2 else "beta"
            assert store.create(
                wid, definition_name=name, definition_hash="h", status=_STATUSES[i % 5]
            )
            ids.append(wid)
        return ids

    def test_list_page_newest_first_both_ways(self, store: Store) -> None:
        self._populate(store)
        expected = _newest_first(store.list())
        for limit in (1, 4, 23, 50):
            ids, pages = _walk(store, InstanceFilter(), limit)
            assert ids == expected
            assert pages[0].previous is None
            assert all(len(p.instances) == limit for p in pages[:-1])
            assert (
                _walk_back(store, InstanceFilter(), limit, pages[-1].previous)
                == (expected[: len(expected) - len(pages[-1].instances)])
            )
        first = store.list_page(limit=5)
        assert [m.workflow_id for m in first.instances] == expected[:5]
        assert store.list_page(limit=5, after=first.next).previous is not None
        metas = {m.workflow_id: m for m in store.list()}
        assert all(m == metas[m.workflow_id] for m in first.instances)

    @pytest.mark.parametrize(
        "where",
        [
            InstanceFilter(statuses=("failed",)),
            InstanceFilter(statuses=("waiting", "idle")),
            InstanceFilter(statuses=("idle", "idle")),
            InstanceFilter(workflow="alpha"),
            InstanceFilter(workflow="alpha", statuses=("running", "stopped")),
            InstanceFilter(workflow="nobody"),
            InstanceFilter(statuses=("unknown",)),
        ],
        ids=repr,
    )
    def test_list_page_filters(self, store: Store, where: InstanceFilter) -> None:
        self._populate(store)
        expected = _newest_first([m for m in store.list() if where.matches(m)])
        for limit in (2, 7, 100):
            ids, pages = _walk(store, where, limit)
            assert ids == expected
            back = _walk_back(store, where, limit, pages[-1].previous)
            assert back == expected[: len(expected) - len(pages[-1].instances)]

    def test_list_page_by_id_prefix(self, store: Store) -> None:
        tag = f"px-{uuid.uuid4().hex[:6]}"
        ids = self._populate(store, 12, prefix=f"{tag}-a%_")
        ids += self._populate(store, 3, prefix=f"{tag}-b")
        ids += self._populate(store, 2, prefix=f"{tag}-a")  # "-a000", "-a001": not "-a%_"
        ids += self._populate(store, 2, prefix=f"{tag}-é")
        for prefix in (f"{tag}-a%_", f"{tag}-a", f"{tag}-", f"{tag}-é", f"{tag}-z", f"{tag}-a%_01"):
            where = InstanceFilter(id_prefix=prefix)
            expected = sorted(i for i in ids if i.startswith(prefix))
            for limit in (1, 5, 50):
                got, pages = _walk(store, where, limit)
                assert got == expected, prefix
                back = _walk_back(store, where, limit, pages[-1].previous)
                assert back == expected[: len(expected) - len(pages[-1].instances)]

    def test_list_page_prefix_with_filters_is_bounded_and_complete(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With an id prefix, other filters are checked over a bounded number of rows per
        page: pages may come back short, but following ``next`` finds every match."""
        monkeypatch.setattr(listing, "SCAN_LIMIT", 4)
        tag = f"sc-{uuid.uuid4().hex[:6]}-"
        ids = self._populate(store, 30, prefix=tag)
        where = InstanceFilter(id_prefix=tag, statuses=("failed",), workflow="beta")
        expected = sorted(i for i in ids if where.matches(store.get(i)))
        assert expected
        got, pages = _walk(store, where, 2)
        assert got == expected
        assert all(len(p.instances) <= 2 for p in pages)

    def test_list_page_skips_instances_deleted_between_pages(self, store: Store) -> None:
        self._populate(store, 10)
        first = store.list_page(limit=4)
        gone = first.instances[-1].workflow_id
        store.delete(gone)
        expected = [i for i in _newest_first(store.list())][3:7]
        second = store.list_page(after=first.next, limit=4)
        assert [m.workflow_id for m in second.instances] == expected
        assert gone not in [m.workflow_id for m in store.list_page(limit=50).instances]

    def test_empty_store_lists_nothing(self, store: Store) -> None:
        page = store.list_page()
        assert (page.instances, page.next, page.previous) == ([], None, None)
        assert store.count_instances() == 0
        assert store.workflow_names() == []

    def test_count_instances_counts_up_to_a_cap(self, store: Store) -> None:
        self._populate(store)
        metas = store.list()

        def count(test: Callable[[InstanceMeta], bool]) -> int:
            return sum(1 for m in metas if test(m))

        assert store.count_instances() == len(metas)
        assert store.count_instances(cap=5) == 5
        assert store.count_instances(status="idle") == count(lambda m: m.status == "idle")
        assert store.count_instances(workflow="alpha") == count(
            lambda m: m.definition_name == "alpha"
        )
        assert store.count_instances(status="failed", workflow="beta") == count(
            lambda m: (m.status, m.definition_name) == ("failed", "beta")
        )
        assert store.count_instances(status="failed", workflow="beta", cap=1) == 1
        assert store.count_instances(status="unknown") == 0

    def test_workflow_names(self, store: Store) -> None:
        self._populate(store)
        store.create("zz-other", definition_name="gamma", definition_hash="h")
        assert store.workflow_names() == ["alpha", "beta", "gamma"]
        assert store.workflow_names(limit=2) == ["alpha", "beta"]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"after": (1.0, "a"), "before": (2.0, "b")},
            {"after": "not-a-key"},
            {"before": (1.0,)},
            {"limit": 0},
            {"limit": listing.MAX_PAGE + 1},
            {"limit": True},
            {"where": InstanceFilter(statuses="failed")},  # type: ignore[arg-type]
            {"where": InstanceFilter(statuses=tuple(f"s{i}" for i in range(40)))},
            {"where": InstanceFilter(id_prefix=None)},  # type: ignore[arg-type]
        ],
        ids=repr,
    )
    def test_list_page_refuses_bad_arguments(self, store: Store, kwargs: dict[str, Any]) -> None:
        with pytest.raises(UsageError):
            store.list_page(**kwargs)

    def test_count_instances_refuses_bad_arguments(self, store: Store) -> None:
        cases: list[dict[str, Any]] = [{"cap": 0}, {"cap": 1.5}, {"status": 3}]
        for kwargs in cases:
            with pytest.raises(UsageError):
                store.count_instances(**kwargs)
