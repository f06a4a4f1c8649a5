"""The bad-data part of the store conformance suite: damaged stores never yield wrong values.

:class:`~runeflow.testing.store_contract.StoreContract` includes these cases. They need a
way to damage the store under test from outside, as a failing disk or a hand-made ``UPDATE``
would: a :class:`Corrupter`, returned by the ``corrupt`` fixture. Without one (the default:
``None``) they skip, saying so. For example::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def corrupt(self, store):
            return MyStoreCorrupter(store)  # implements Corrupter
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol

import pytest

from runeflow.codec import default_codec
from runeflow.errors import StoreError
from runeflow.model.events import Event, FactProduced, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.stores.base import Store

__all__ = ["Corrupter", "CorruptionContract", "Damage"]

Damage = Literal["metadata", "status", "timestamp"]
"""What :meth:`Corrupter.instance_row` damages in an instance row."""

Change = Callable[[bytes], bytes]


class Corrupter(Protocol):
    """Changes a store's data behind its back (for tests)."""

    def event_row(
        self, workflow_id: str, cursor: int, change: Change, *, rechecksum: bool = False
    ) -> None:
        """Replace the blob of the stored row holding event ``cursor`` with ``change(blob)``.

        With ``rechecksum``, the row's checksum is updated to match, as if a faulty writer
        (not damaged storage) had written the row.
        """

    def drop_event_row(self, workflow_id: str, cursor: int) -> None:
        """Delete the stored row holding event ``cursor``."""

    def fact_value(self, fact_id: str, change: Change, *, rechecksum: bool = False) -> None:
        """Replace the stored value of fact ``fact_id`` (where the store keeps it) with
        ``change(value)``; ``rechecksum`` as for :meth:`event_row` (a value kept under its
        content hash keeps it: the hash is its checksum)."""

    def snapshot(self, workflow_id: str, change: Change) -> None:
        """Replace the stored snapshot of ``workflow_id`` with ``change(snapshot)``."""

    def instance_row(self, workflow_id: str, damage: Damage) -> bool:
        """Damage the instance's row: its ``metadata`` (no longer a JSON object), its
        ``status`` (a value runeflow never writes) or a ``timestamp`` (``created_at`` no
        longer a finite number). Return ``False`` if the store cannot hold such a value."""


def _flip(old: bytes, new: bytes) -> Change:
    def change(data: bytes) -> bytes:
        assert old in data, f"{old!r} not in the stored bytes {data[:200]!r}"
        return data.replace(old, new, 1)

    return change


def _cycle(i: int, value: Any) -> list[Event]:
    rid = f"run-{i:06d}"
    fact = Fact(f"fact-{i:06d}-{uuid.uuid4().hex[:6]}", value, "price", "h" * 16, (), ("r",))
    return [
        RunnableDispatched(runnable_id=rid, component="price"),
        FactProduced(fact=fact, runnable_id=rid),
    ]


class CorruptionContract:
    """Damaged data raises :class:`~runeflow.errors.StoreError` naming what is damaged."""

    @pytest.fixture
    def corrupt(self, store: Store) -> Corrupter | None:
        """Override to return a :class:`Corrupter` for ``store``; ``None`` skips these cases."""
        return None

    @staticmethod
    def _corrupter(corrupt: Corrupter | None) -> Corrupter:
        if corrupt is None:
            pytest.skip(
                "no Corrupter for this store (its `corrupt` fixture returns None): its data "
                "cannot be changed from outside the process, or the test module provides none"
            )
        return corrupt

    def _logged(
        self, store: Store, rows: int, value: Callable[[int], Any] = lambda i: i
    ) -> tuple[str, list[Event]]:
        """An instance with ``rows`` log rows of two events each (row ``i`` produces a fact
        of value ``value(i)``); return its id and its log."""
        wid = f"wf-{uuid.uuid4().hex[:12]}"
        assert store.create(wid, definition_name="orders", definition_hash="abc")
        events: list[Event] = []
        for i in range(rows):
            cycle = _cycle(i, value(i))
            store.append(wid, cycle)
            events += cycle
        return wid, events

    @staticmethod
    def _fails_at(store: Store, wid: str, cursor: int, good: list[Event], values: bool) -> str:
        """Stream ``wid``: the events before ``cursor`` come, then a StoreError naming it."""
        stream = store.stream(wid, values=values)
        seen = [next(stream) for _ in range(cursor - 1)]
        with pytest.raises(StoreError) as info:
            seen.append(next(stream))
        if values:
            assert seen == good[: cursor - 1]
        else:  # facts come as references
            assert [type(e) for e in seen] == [type(e) for e in good[: cursor - 1]]
        assert (info.value.workflow_id, info.value.cursor) == (wid, cursor)
        assert wid in str(info.value) and f"event {cursor}" in str(info.value)
        return str(info.value)

    def test_damaged_event_row_is_never_read(self, store: Store, corrupt: Any) -> None:
        """A changed log row fails at its position, even when it still decodes."""
        damage = self._corrupter(corrupt)
        wid, events = self._logged(store, 3)
        other, other_events = self._logged(store, 2)
        damage.event_row(wid, 4, _flip(b"run-000001", b"sun-000001"))  # still valid JSON
        for values in (True, False):
            message = self._fails_at(store, wid, 3, events, values)
            assert "corrupt" in message and "checksum" in message
        assert list(store.stream(wid, after=4)) == events[4:]
        assert list(store.stream(other)) == other_events

    def test_missing_event_row_is_reported(self, store: Store, corrupt: Any) -> None:
        """A deleted log row is reported as missing events, not skipped."""
        damage = self._corrupter(corrupt)
        wid, events = self._logged(store, 3)
        damage.drop_event_row(wid, 3)
        assert "missing" in self._fails_at(store, wid, 3, events, values=False)

    def test_row_that_does_not_decode_names_its_position(self, store: Store, corrupt: Any) -> None:
        """A row with a matching checksum that cannot be decoded, or holds the wrong
        number of events, fails naming its position."""
        damage = self._corrupter(corrupt)
        wid, events = self._logged(store, 3)
        damage.event_row(wid, 3, lambda _: b'[1, ["no such event kind"]]', rechecksum=True)
        self._fails_at(store, wid, 3, events, values=True)
        one = default_codec.encode_events([events[2]])  # the row says it holds two
        damage.event_row(wid, 3, lambda _: one, rechecksum=True)
        assert "holds 1" in self._fails_at(store, wid, 3, events, values=True)

    @pytest.mark.parametrize("size", ["inline", "content"])
    def test_damaged_fact_value_is_never_read(self, store: Store, corrupt: Any, size: str) -> None:
        """A changed fact value fails ``load_fact`` naming the fact, and a stream naming
        the event that needs it."""
        damage = self._corrupter(corrupt)

        def value(i: int) -> Any:  # only the damaged fact's value holds 12345
            n = 12345 if i == 1 else 11111
            return n if size == "inline" else {"text": "x" * 100, "n": n}

        wid, events = self._logged(store, 2, value)
        produced = events[3]
        assert isinstance(produced, FactProduced)
        fact_id = produced.fact.id
        damage.fact_value(fact_id, _flip(b"12345", b"12346"))
        for load in (store.load_fact, lambda fid: store.load_facts([fid])):
            with pytest.raises(StoreError, match="corrupt") as info:
                load(fact_id)
            assert fact_id in str(info.value)
        assert fact_id in self._fails_at(store, wid, 3, events, values=True)
        assert len(list(store.stream(wid, values=False))) == 4  # the log itself is sound
        if size == "inline":  # a value written wrongly, with a matching checksum
            damage.fact_value(fact_id, lambda _: b"{not json", rechecksum=True)
            with pytest.raises(StoreError, match=fact_id):
                store.load_fact(fact_id)
            assert fact_id in self._fails_at(store, wid, 3, events, values=True)

    def test_damaged_snapshot_is_never_read(self, store: Store, corrupt: Any) -> None:
        """A changed snapshot fails naming the workflow and the snapshot's cursor."""
        damage = self._corrupter(corrupt)
        wid, _ = self._logged(store, 1)
        store.save_snapshot(wid, 2, b'{"format": 1, "n": 12345}')
        damage.snapshot(wid, _flip(b"12345", b"12346"))
        with pytest.raises(StoreError, match="corrupt") as info:
            store.load_snapshot(wid)
        assert (info.value.workflow_id, info.value.cursor) == (wid, 2)
        store.save_snapshot(wid, 2, b"a new one")
        assert store.load_snapshot(wid) == (2, b"a new one")

    @pytest.mark.parametrize("damage", ["metadata", "status", "timestamp"])
    def test_list_flags_a_damaged_instance_row(
        self, store: Store, corrupt: Any, damage: Damage
    ) -> None:
        """``list`` returns a damaged instance row flagged; ``get`` refuses it."""
        corrupter = self._corrupter(corrupt)
        ids = []
        for _ in range(3):
            wid = f"wf-{uuid.uuid4().hex[:12]}"
            store.create(wid, definition_name="n", definition_hash="h", metadata={"k": 1})
            ids.append(wid)
        bad = ids[1]
        if not corrupter.instance_row(bad, damage):
            pytest.skip(f"this store's schema cannot hold a damaged {damage}")
        store.set_error(bad, "a runner's error")
        metas = {m.workflow_id: m for m in store.list() if m.workflow_id in ids}
        assert set(metas) == set(ids)
        flagged = metas[bad].error or ""
        assert flagged.startswith("unreadable ") or flagged.startswith("unknown status")
        assert flagged.endswith("; a runner's error")
        if damage == "metadata":
            assert metas[bad].metadata == {} and flagged.startswith("unreadable metadata: ")
        for wid in (ids[0], ids[2]):
            assert (metas[wid].error, metas[wid].metadata) == (None, {"k": 1})
        paged = {m.workflow_id: m for m in store.list_page(limit=50).instances}
        assert set(ids) <= set(paged) and paged[bad].error == flagged
        with pytest.raises(StoreError) as info:
            store.get(bad)
        assert info.value.workflow_id == bad and bad in str(info.value)
        assert store.get(ids[0]).metadata == {"k": 1}
        assert {ids[0], ids[2]} <= {m.workflow_id for m in store.list("running")}
        store.delete(bad)
        assert bad not in {m.workflow_id for m in store.list()}
