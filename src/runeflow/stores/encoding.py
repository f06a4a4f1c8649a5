"""Encoding an append before any lock is taken: the event blob, and fact values kept apart.

Mixed into :class:`~runeflow.stores.base.Store`; stores call ``_encode_append`` outside
their transaction, so a value that cannot be encoded fails before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from runeflow.codec import Codec, JsonCodec
from runeflow.errors import CodecError
from runeflow.model.events import ComponentAdded, Event, WorkflowCreated
from runeflow.model.runstate import EventBatch

if TYPE_CHECKING:
    from runeflow.stores.base import Capabilities

__all__ = ["INLINE_VALUE_LIMIT", "AppendEncoding", "EncodedAppend", "content_hash", "content_key"]


def content_hash(data: bytes) -> str:
    """Return the content address of an encoded value (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()


INLINE_VALUE_LIMIT = 64
"""Encoded values up to this many bytes are kept in the fact's own row, not addressed by
content: a content reference (a 64-character hash) would be no shorter than the value, so
deduplicating them cannot save space, and skipping the content row makes a checkpoint one
write cheaper. Longer values are stored once per distinct content."""


def content_key(data: bytes) -> str | None:
    """Return the content hash under which ``data`` is stored, or ``None`` to keep it inline."""
    return None if len(data) <= INLINE_VALUE_LIMIT else content_hash(data)


@dataclass(kw_only=True, slots=True)  # not frozen: frozen dataclasses are slow to create
class EncodedAppend:
    """One ``append`` call, encoded before any lock is taken."""

    blob: bytes
    """The events, as one blob."""
    count: int
    """Number of events."""
    fact_ids: tuple[str, ...]
    """Ids of the facts whose values were kept out of the blob."""
    contents: dict[str, bytes]
    """Encoded fact values by content hash (each distinct value once)."""
    fact_hashes: dict[str, str]
    """Content hash of each fact id's value, for values kept in the content table."""
    inline: dict[str, bytes] = field(default_factory=dict)
    """Encoded values no longer than :data:`INLINE_VALUE_LIMIT`, by fact id; stores keep
    them in the fact's own row instead of the content table."""

    @property
    def fact_ids_text(self) -> str | None:
        """The fact ids as stored in a log row (``None`` when there are none)."""
        return json.dumps(self.fact_ids, separators=(",", ":")) if self.fact_ids else None


CHECKED_VALUES = 1024
"""Encodings :meth:`AppendEncoding.check_value` keeps until an append uses them."""

BUILD_CACHE_SIZE = 256
"""Definitions whose encoded build events a store keeps (cleared when full)."""


def join_blobs(first: bytes, second: bytes) -> bytes:
    """One event blob holding the events of two (``[v,a,b]`` + ``[v,c]`` → ``[v,a,b,c]``)."""
    head, _, tail = second.partition(b",")
    if not tail:  # the second holds no event
        return first
    if first.endswith(b"]") and head == first[: len(head)]:
        return first[:-1] + b"," + tail
    raise CodecError("cannot join event blobs of different formats")


class AppendEncoding:
    """Turns an append's events into an :class:`EncodedAppend` (mixed into ``Store``)."""

    if TYPE_CHECKING:
        codec: Codec
        _events_codec: JsonCodec
        capabilities: ClassVar[Capabilities]

    _build_blobs: dict[int, tuple[tuple[Event, ...], bytes]]
    _checked: dict[int, tuple[Any, bytes]]

    def check_value(self, value: Any) -> None:
        """Encode ``value`` now, raising :class:`~runeflow.errors.CodecError` when the store
        cannot keep it; the bytes are kept for the append that stores this very object
        (a step's result is checked before it is applied), so it is encoded once."""
        data = self.codec.encode(value)
        checked = self._checked
        if len(checked) >= CHECKED_VALUES:
            checked.clear()
        checked[id(value)] = (value, data)  # the entry keeps the object, so its id stays its own

    def _encode_append(self, events: Sequence[Event]) -> EncodedAppend:
        """Encode one append: the blob, and the fact values kept apart from it."""
        if type(events) is EventBatch:
            events = events.events()  # made once here, then read as a list
        if events and type(events[0]) is WorkflowCreated:
            return self._encode_with_build(events)
        return self._encode_events(events)

    def _encode_with_build(self, events: Sequence[Event]) -> EncodedAppend:
        """Encode an instance's first append, whose build events (``WorkflowCreated`` then
        ``ComponentAdded`` ones) are the same objects for every instance of a definition:
        their rows are encoded once per definition and reused (a 1,000-component definition
        would otherwise re-encode 1,001 events at every start)."""
        cache = self._build_blobs
        hit = cache.get(id(events[0]))
        if (
            hit is None
            or len(events) < len(hit[0])
            or any(a is not b for a, b in zip(hit[0], events, strict=False))
        ):
            n = 1
            while n < len(events) and type(events[n]) is ComponentAdded:
                n += 1
            prefix = tuple(events[:n])
            if len(cache) >= BUILD_CACHE_SIZE:
                cache.clear()
            # the key's object is kept alive by the entry, so its id is never reused
            hit = cache[id(events[0])] = (prefix, self._events_codec.encode_events(prefix))
        prefix, blob = hit
        rest = self._encode_events(events[len(prefix) :])
        rest.blob = join_blobs(blob, rest.blob)
        rest.count += len(prefix)
        return rest

    def _encode_events(self, events: Sequence[Event]) -> EncodedAppend:
        if not self.capabilities.fact_store:
            blob = self._events_codec.encode_events(events)
            return EncodedAppend(
                blob=blob, count=len(events), fact_ids=(), contents={}, fact_hashes={}
            )
        fact_hashes: dict[str, str] = {}
        contents: dict[str, bytes] = {}
        inline: dict[str, bytes] = {}
        fact_ids: list[str] = []
        encode = self.codec.encode
        checked = self._checked

        def keep(fact_id: str, value: Any) -> None:
            hit = checked.pop(id(value), None) if checked else None
            data = hit[1] if hit is not None and hit[0] is value else encode(value)
            fact_ids.append(fact_id)
            digest = content_key(data)
            if digest is None:
                inline[fact_id] = data
                return
            fact_hashes[fact_id] = digest
            contents[digest] = data

        blob = self._events_codec.encode_events(events, fact_sink=keep)
        return EncodedAppend(
            blob=blob,
            count=len(events),
            fact_ids=tuple(fact_ids),
            contents=contents,
            fact_hashes=fact_hashes,
            inline=inline,
        )
