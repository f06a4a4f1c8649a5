"""Decoding what a store reads back: log rows in checked batches, and fact values.

Mixed into :class:`~runeflow.stores.base.Store`; a store fetches its rows its own way and
hands them to :meth:`LogDecoding._decode_chunk` (or ``_decode_rows``), which checks them
(checksums, rows following each other, see :mod:`runeflow.stores.integrity`) and decodes
them with one JSON parse per batch.
"""

from __future__ import annotations

import builtins
import gc
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from runeflow.codec import Codec, JsonCodec
from runeflow.errors import CodecError, StoreError
from runeflow.model.events import Event
from runeflow.stores.integrity import (
    as_bytes,
    checksum,
    corrupt_log,
    row_checksum_mismatch,
    verified_values,
)

__all__ = ["DECODE_BATCH", "LogDecoding", "LogRow", "gc_paused"]


DECODE_BATCH = 256
"""Log rows decoded together by one JSON parse when streaming."""

LogRow = tuple[int, bytes, Any, int, int | None]
"""A log row as fetched and decoded: ``(first_cursor, blob, fact_ids, last_cursor,
checksum)``. ``fact_ids`` is the store's own (unused here); the checksum is ``None`` for
stores that keep none and for rows written before they were kept. A typeless database may
return other types in any field: the checks say so."""


def _chunks(rows: Iterable[LogRow], size: int) -> Iterator[builtins.list[LogRow]]:
    it = iter(rows)
    while chunk := builtins.list(islice(it, size)):
        yield chunk


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while decoding a batch of stored data.

    Decoding allocates thousands of small containers that cannot form cycles; left on, the
    collector keeps scanning them (and, once they are promoted, the whole heap): measured on
    a 40k-event SQLite replay, that added half again to the time of streaming the log. The
    pause is process-wide but short (one chunk), and is skipped when the collector is
    already off, so a caller that turned it off keeps it off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _log_chunks(rows: Sequence[Any]) -> Iterator[Sequence[LogRow]]:
    """Split fetched :data:`LogRow` rows into decode chunks (slices: no copy per row)."""
    for start in range(0, len(rows), DECODE_BATCH):
        yield rows[start : start + DECODE_BATCH]


def _checksums_match(blobs: builtins.list[bytes], chunk: Sequence[LogRow]) -> bool:
    """Whether every blob of ``chunk`` (``blobs``, in order) matches its row's checksum; rows
    written before checksums were kept (``None``) are not checked. The CRCs are computed and
    compared in C (``map``), which keeps the check to a few percent of a replay."""
    stored = builtins.list(map(_CHECKSUM, chunk))
    if None not in stored:
        return builtins.list(map(zlib.crc32, blobs)) == stored
    crc32 = zlib.crc32
    return all(s is None or crc32(b) == s for b, s in zip(blobs, stored, strict=True))


_BLOB = itemgetter(1)
_CHECKSUM = itemgetter(4)


class LogDecoding:
    """Checked, batched decoding of log rows and fact values (mixed into ``Store``)."""

    if TYPE_CHECKING:
        codec: Codec
        _events_codec: JsonCodec

        def load_fact(self, fact_id: str) -> Any:
            """See :meth:`Store.load_fact`."""

    def _decode_rows(
        self,
        workflow_id: str,
        rows: Iterable[LogRow],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterator[Event]:
        """Decode the log rows after position ``after``, in order, skipping events up to it.

        Rows are decoded :data:`DECODE_BATCH` at a time (see :meth:`_decode_chunk`).
        """
        position = after
        for chunk in _chunks(rows, DECODE_BATCH):
            yield from self._decode_chunk(workflow_id, chunk, position, load_value)
            position = chunk[-1][3]

    def _decode_chunk(
        self,
        workflow_id: str,
        chunk: Sequence[LogRow],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterable[Event]:
        """Decode a few rows with one JSON parse and return their events after ``after``.

        ``chunk`` holds the next rows of the log after position ``after`` (the events read
        so far, or skipped). Rows are checked (checksums, and that they follow each other
        from ``after + 1`` on); a chunk that fails a check or the batch decode is decoded
        row by row, so the error names the first bad row. Streams call this directly and
        ``yield from`` the list, which saves a generator layer per event on long replays.
        """
        blobs = builtins.list(map(_BLOB, chunk))
        first = chunk[0][0]
        events: builtins.list[Event] | None = None
        try:
            with gc_paused():  # checks included: their garbage would trigger collections
                counts = [r[3] - r[0] + 1 for r in chunk]
                if first <= after + 1 and _checksums_match(blobs, chunk):
                    events = self._events_codec.decode_event_batch(
                        blobs, counts, load_value=load_value
                    )
        except (CodecError, StoreError, TypeError):  # TypeError: a position not a number
            pass
        if events is None:
            # lazily, so the rows before the damaged one are still yielded first
            return self._decode_each(workflow_id, chunk, after, load_value)
        # Each blob holds as many events as its row's positions say (decode_event_batch
        # checks it), so this finds a row missing, or two overlapping, within the chunk.
        if len(events) != chunk[-1][3] - first + 1:
            return self._decode_each(workflow_id, chunk, after, load_value)
        if first <= after:
            return events[after - first + 1 :]
        return events

    def _decode_each(
        self,
        workflow_id: str,
        rows: Iterable[LogRow],
        after: int,
        load_value: Callable[[str], Any] | None,
    ) -> Iterator[Event]:
        """Check and decode rows one by one; raise at the first bad one, naming it."""
        decode = self._events_codec.decode_events
        expected, start = after + 1, True
        for first, stored, _, last, crc in rows:
            blob = as_bytes(stored)
            if type(first) is not int or type(last) is not int or last < first:
                why = f"a row holds the positions {first!r} to {last!r}"
                raise corrupt_log(workflow_id, expected, why)
            if first > expected:
                why = f"events {expected}-{first - 1} are missing before the row of {first}-{last}"
                raise corrupt_log(workflow_id, expected, why)
            if first < expected and not start:
                why = f"the row of events {first}-{last} overlaps the row before it"
                raise corrupt_log(workflow_id, first, why)
            if crc is not None and checksum(blob) != crc:
                raise row_checksum_mismatch(workflow_id, first, last)
            try:
                events = decode(blob, load_value=load_value)
            except (CodecError, StoreError) as exc:
                raise StoreError(
                    f"cannot read event {first} of workflow {workflow_id!r}: {exc}. The log "
                    "is left as it is; other workflows stay readable",
                    workflow_id=workflow_id,
                    cursor=first,
                ) from exc
            if len(events) != last - first + 1:
                why = f"the row said to hold events {first}-{last} holds {len(events)}"
                raise corrupt_log(workflow_id, first, why)
            if first <= after:
                events = events[after - first + 1 :]
            yield from events
            expected, start = last + 1, False

    def _value_loader(self, rows: builtins.list[Any]) -> Callable[[str], Any]:
        """Return a loader of the values a stream batch needs, fetched as ``(fact_id, value,
        check)`` rows (see :func:`~runeflow.stores.integrity.verified_values`).

        The values are checked and decoded now; one that fails raises its error only when
        the stream asks for it, so that the error names the event that needs it. A fact not
        fetched (appended as a ``FactRef``: its value was saved apart) is loaded alone.
        """
        with gc_paused():
            found, errors = verified_values(rows)
            values = self._decode_values(found, errors)

        def load(fact_id: str) -> Any:
            if fact_id in values:
                return values.pop(fact_id)
            if fact_id in errors:
                raise errors[fact_id]
            return self.load_fact(fact_id)

        return load

    def _checked_values(self, rows: builtins.list[Any], fact_ids: Sequence[str]) -> dict[str, Any]:
        """Check and decode the values of ``fact_ids`` from fetched ``(fact_id, value,
        check)`` rows (see :func:`~runeflow.stores.integrity.verified_values`).

        Raises:
            StoreError: a value is missing, corrupt or cannot be decoded (naming the fact).
        """
        found, errors = verified_values(rows)
        for fact_id in fact_ids:
            if fact_id in errors:
                raise errors[fact_id]
        missing = [fid for fid in fact_ids if fid not in found]
        if len(missing) == 1 and len(fact_ids) == 1:
            raise StoreError(f"no value is stored for fact {missing[0]!r}")
        if missing:
            raise StoreError(f"no value is stored for fact {missing[0]!r} ({len(missing)} missing)")
        return self._decode_values({fid: found[fid] for fid in fact_ids})

    def _decode_values(
        self, found: dict[str, bytes], errors: dict[str, StoreError] | None = None
    ) -> dict[str, Any]:
        """Decode many stored values (with one JSON parse when the codec allows it).

        With ``errors``, a value that cannot be decoded is left out and its error put there
        instead of raised.
        """
        codec = self.codec
        if isinstance(codec, JsonCodec) and len(found) > 1:
            try:
                with gc_paused():
                    values = codec.decode(b"[" + b",".join(found.values()) + b"]")
            except CodecError:
                values = None  # decode one by one to name the unreadable value
            if type(values) is builtins.list and len(values) == len(found):
                return dict(zip(found, values, strict=True))
        decoded: dict[str, Any] = {}
        for fact_id, data in found.items():
            try:
                decoded[fact_id] = self._decode_value(fact_id, data)
            except StoreError as exc:
                if errors is None:
                    raise
                errors[fact_id] = exc
        return decoded

    def _decode_value(self, fact_id: str, data: bytes) -> Any:
        """Decode a stored fact value, turning codec errors into a StoreError."""
        try:
            return self.codec.decode(data)
        except CodecError as exc:
            raise StoreError(f"cannot read the value of fact {fact_id!r}: {exc}") from exc
