"""Encoding of values and events for stores: tagged JSON by default, pickle only on request.

:class:`JsonCodec` (the default, shared as :data:`default_codec`) writes JSON. Plain JSON
values (``str``, ``int``, ``float``, ``bool``, ``None``, lists, dicts with ``str`` keys) are
written as they are; every other supported value becomes a *tagged object*
``{"__rf__": tag, ...}``, so that decoding gives back an equal value of the same type:

=====================  ======================================================
tag                    value
=====================  ======================================================
``t`` / ``s`` / ``fs``  tuple, set, frozenset (``v``: the items)
``dict``               a dict with non-``str`` keys or a ``"__rf__"`` key (``v``: pairs)
``b`` / ``ba``         bytes, bytearray (``v``: base64)
``dt`` ``d`` ``tm``    datetime, date, time (``v``: ISO 8601, offsets kept)
``dtz``                a datetime in a ``zoneinfo`` zone (``v``: ``[local ISO 8601, zone
                       key, fold]``), so it comes back in the same zone
``td``                 timedelta (``v``: ``[days, seconds, microseconds]``)
``dec`` / ``u``        Decimal, UUID (``v``: the string form)
``e``                  an Enum member (``t``: the type's name, ``v``: its value)
``dc``                 a dataclass instance (``t``: the type's name, ``v``: its fields)
``pd``                 a pydantic v2 model (``t``: the type's name, ``v``: its dump)
``x``                  a type registered with functions (``t``: its name, ``v``: its form)
=====================  ======================================================

A type's name is the one it was registered under, by default ``module:qualname``.

Trust: stored data never chooses the code that runs. Whoever can write to a store chooses
the type names in it, so enums, dataclasses and pydantic models are encoded and decoded only
when their type is *trusted* by the codec: registered (:func:`register_type`,
:meth:`JsonCodec.register`, ``JsonCodec(types=[...])``), or defined in one of the codec's
trusted modules (``JsonCodec(trusted_modules=["myapp"])``: a module name, or a package
prefix that covers its submodules). Encoding an instance of an untrusted type is a
:class:`~runeflow.errors.CodecError`, so what is written can be read back in another process
that registers the same types. Decoding a tag that names an untrusted type is a
``CodecError`` too, and imports nothing; a trusted module not yet imported is imported (its
owner trusted it), and the class found there must be defined there under that very name and
be what the tag says (a dataclass, an Enum subclass, a pydantic model). Decoding imports
nothing else, and calls only registered decode functions, the constructors of trusted types
and the built-in types of the table. runeflow's own value types (facts, signals, error
infos, halts) are registered with every codec. Decoding raises only ``CodecError``,
whatever the bytes (errors raised by a caller's ``load_value`` aside).

Events are encoded in blobs that hold a whole append (``[format_version, event, ...]``),
each event a JSON array ``[kind, field, field, ...]`` with its fields in the dataclass's
order (``ComponentAdded.component`` is never stored). That order is the wire format: a new
event field must be appended last, with a default, so that older logs still decode; any
other change to an event's fields needs a new :data:`EVENT_FORMAT_VERSION`. A store with
the fact-store capability passes a *fact sink* to :meth:`JsonCodec.encode_events`: values of
``FactProduced`` facts then go to the sink and the blob keeps the fact's id and metadata.

The package: :mod:`~runeflow.codec.registry` (trusted types and stored type names),
:mod:`~runeflow.codec.values` (the tags), :mod:`~runeflow.codec.events` (event blobs),
:mod:`~runeflow.codec.pickling` (:class:`PickleCodec`); :class:`JsonCodec` composes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from runeflow.codec.base import (
    TAG,
    Codec,
    FactSink,
    ValueLoader,
    compact_dumps,
    decode_failure,
    encode_failure,
)
from runeflow.codec.events import EVENT_FORMAT_VERSION, EventCodec
from runeflow.codec.pickling import PickleCodec
from runeflow.codec.registry import TypeRegistry
from runeflow.codec.values import ValueCodec
from runeflow.errors import CodecError, RuneflowError
from runeflow.model.components import Halt
from runeflow.model.events import ErrorInfo, Event
from runeflow.model.facts import Fact, FactRef, Signal

__all__ = [
    "EVENT_FORMAT_VERSION",
    "TAG",
    "Codec",
    "FactSink",
    "JsonCodec",
    "PickleCodec",
    "ValueLoader",
    "decode_event",
    "decode_events",
    "default_codec",
    "encode_event",
    "encode_events",
    "from_jsonable",
    "register_type",
    "to_jsonable",
]

_T = TypeVar("_T", bound=type)
_TAG_TEXT = f'"{TAG}"'
_RUNEFLOW_TYPES: tuple[type, ...] = (Fact, FactRef, Signal, ErrorInfo, Halt)
"""runeflow's value types that step functions return or receive: trusted by every codec."""


class JsonCodec:
    """The safe default codec: JSON with type tags, for trusted types only (module docstring).

    Args:
        registrations: optional ``{type: (encode, decode)}`` pairs to register at once.
        types: dataclasses, Enum subclasses and pydantic models to register (trusted, with
            their built-in form, named ``module:qualname``).
        trusted_modules: modules whose dataclasses, enums and pydantic models are trusted
            without registering each; ``"myapp"`` also covers ``myapp.models``.
    """

    def __init__(
        self,
        registrations: Mapping[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]]
        | None = None,
        *,
        types: Iterable[type] = (),
        trusted_modules: Iterable[str] = (),
    ) -> None:
        self._registry = TypeRegistry()
        self._dumps = compact_dumps()
        self._values = ValueCodec(self._registry, self._dumps)
        self._events = EventCodec(self._values.enc)
        self._tagged = json.JSONDecoder(object_hook=self._values.hook)
        self._plain = json.JSONDecoder()
        for cls in _RUNEFLOW_TYPES:
            self._registry.register(cls, encode=None, decode=None, name=None)
        self._registry.trust(trusted_modules)
        for cls in types:
            self.register(cls)
        for cls, (enc, dec) in (registrations or {}).items():
            self.register(cls, encode=enc, decode=dec)
        self._values.forget()

    # --- types ----------------------------------------------------------------------------

    def register(
        self,
        cls: type,
        *,
        encode: Callable[[Any], Any] | None = None,
        decode: Callable[[Any], Any] | None = None,
        name: str | None = None,
    ) -> None:
        """Trust a type and say how to store it (or override how a type is stored).

        A dataclass, an Enum subclass or a pydantic v2 model needs no functions: it is
        stored in its built-in form (its fields, its value, its dump), and data written
        before it was registered (named ``module:qualname``) decodes once it is. Any other
        type needs both functions; instances of its subclasses then use them too.

        Args:
            cls: the type.
            encode: turns an instance into any value this codec can encode.
            decode: turns that value back into an instance.
            name: the name written in encoded data (default ``module:qualname``); keep it
                stable, since stored data refers to it.

        Raises:
            CodecError: ``cls`` is not a class, or needs ``encode`` and ``decode`` and lacks
                one of them.
        """
        self._registry.register(cls, encode=encode, decode=decode, name=name)
        self._values.forget()

    def trust(self, *modules: str) -> None:
        """Trust the dataclasses, enums and pydantic models defined in ``modules``.

        Args:
            modules: module names; each also covers its submodules (``"myapp"`` trusts
                ``myapp.models``). Decoding may import a trusted module named by stored data.

        Raises:
            CodecError: a name is not a module name.
        """
        self._registry.trust(modules)
        self._values.forget()

    @property
    def trusted_modules(self) -> tuple[str, ...]:
        """The modules (and packages) whose types this codec trusts."""
        return self._registry.trusted_modules

    @property
    def registered_types(self) -> tuple[type, ...]:
        """The types registered with this codec (runeflow's own value types first)."""
        return tuple(reg.type for reg in self._registry.registrations())

    # --- values ---------------------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        """Return ``value`` as UTF-8 JSON bytes.

        Raises:
            CodecError: when the value (or something inside it) has no encoding, or is of
                an untrusted type.
        """
        return self._dump(self.to_jsonable(value))

    def decode(self, data: bytes) -> Any:
        """Return the value encoded in ``data``.

        Raises:
            CodecError: whatever is wrong with ``data`` (not UTF-8 JSON, a malformed value,
                an unknown or untrusted type); no other exception escapes.
        """
        return self._load(data)

    def to_jsonable(self, value: Any) -> Any:
        """Return a JSON-compatible form of ``value`` that :meth:`from_jsonable` reverses.

        Raises:
            CodecError: as :meth:`encode`.
        """
        try:
            return self._values.enc(value)
        except RuneflowError:
            raise
        except Exception as exc:
            error = encode_failure(exc, value)
            raise error from error.__cause__

    def from_jsonable(self, obj: Any) -> Any:
        """Reverse :meth:`to_jsonable` (``obj`` as produced by ``json.loads``).

        Raises:
            CodecError: as :meth:`decode`.
        """
        try:
            return self._values.dec(obj)
        except CodecError:
            raise
        except Exception as exc:
            error = decode_failure(exc, "the encoded object")
            raise error from error.__cause__

    # --- events ---------------------------------------------------------------------------

    def encode_event(self, event: Any) -> bytes:
        """Encode one event as a blob (see :meth:`encode_events`)."""
        return self.encode_events((event,))

    def decode_event(self, data: bytes) -> Event:
        """Decode a blob holding exactly one event.

        Raises:
            CodecError: as :meth:`decode_events`, or the blob holds another number of events.
        """
        events = self.decode_events(data)
        if len(events) != 1:
            raise CodecError(f"expected one event in the blob, found {len(events)}")
        return events[0]

    def encode_events(self, events: Iterable[Any], *, fact_sink: FactSink | None = None) -> bytes:
        """Encode a sequence of events as one blob.

        Args:
            events: runeflow events (``runeflow.model.events``).
            fact_sink: when given, each ``FactProduced`` value is passed to it with the fact
                id (for the caller to store) and the blob keeps only the fact's metadata.

        Raises:
            CodecError: when an event or a value inside it cannot be encoded.
        """
        try:
            rows = self._events.rows(events, fact_sink)
        except RuneflowError:
            raise
        except Exception as exc:
            error = encode_failure(exc, events)
            raise error from error.__cause__
        return self._dump(rows)

    def decode_events(self, data: bytes, *, load_value: ValueLoader | None = None) -> list[Event]:
        """Decode a blob written by :meth:`encode_events`.

        Args:
            data: the blob.
            load_value: resolves facts whose value was kept out of the blob; without it,
                such facts come back as :class:`~runeflow.model.facts.FactRef`. Errors it
                raises that are runeflow errors pass through unchanged.

        Raises:
            CodecError: on unreadable bytes, a malformed or unknown event, or a newer format.
        """
        return self._events.events_of(self._load(data), load_value, [])

    def decode_event_batch(
        self,
        blobs: list[bytes],
        counts: list[int] | None = None,
        *,
        load_value: ValueLoader | None = None,
    ) -> list[Event]:
        """Decode several blobs with one JSON parse and return their events in order.

        Each blob must decode to a whole event blob (and, when ``counts`` is given, hold
        exactly ``counts[i]`` events), so a damaged blob cannot merge with its neighbours
        unnoticed; on any error decode the blobs one by one to find the damaged one.

        Raises:
            CodecError: when a blob is unreadable (without saying which).
        """
        try:
            if counts is not None and len(counts) != len(blobs):
                raise CodecError(f"{len(blobs)} blobs in the batch but {len(counts)} counts")
            if len(blobs) == 1:
                events = self.decode_events(blobs[0], load_value=load_value)
                if counts is not None and counts[0] != len(events):
                    raise CodecError("the blob holds a wrong number of events")
                return events
            docs = self._load(b"[" + b",".join(blobs) + b"]")
            if type(docs) is not list or len(docs) != len(blobs):
                raise CodecError("a blob in the batch is damaged")
            events = []
            for i, doc in enumerate(docs):
                before = len(events)
                self._events.events_of(doc, load_value, events)
                if counts is not None and counts[i] != len(events) - before:
                    raise CodecError("a blob in the batch holds a wrong number of events")
            return events
        except RuneflowError:
            raise
        except Exception as exc:
            error = decode_failure(exc, "the batch of blobs")
            raise error from error.__cause__

    # --- JSON text ------------------------------------------------------------------------

    def _dump(self, obj: Any) -> bytes:
        try:
            return self._dumps(obj).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise CodecError(f"cannot write JSON: {exc}") from None
        except RecursionError:
            raise CodecError("cannot write JSON nested this deeply") from None

    def _load(self, data: bytes) -> Any:
        if type(data) is not bytes and not isinstance(data, bytes | bytearray | memoryview):
            raise CodecError(f"expected bytes to decode, found {type(data).__name__}")
        try:
            text = bytes(data).decode("utf-8")
            # Tagged objects need the hook; most blobs hold none and parse in C alone.
            decoder = self._tagged if _TAG_TEXT in text else self._plain
            obj, end = decoder.raw_decode(text)
            if end != len(text):
                raise CodecError(f"stored bytes hold extra data after position {end}")
            return obj
        except CodecError:
            raise
        except UnicodeDecodeError as exc:
            raise CodecError(f"stored bytes are not UTF-8 text: {exc}") from None
        except json.JSONDecodeError as exc:
            raise CodecError(f"stored bytes are not valid JSON (truncated?): {exc}") from None
        except Exception as exc:
            error = decode_failure(exc)
            raise error from error.__cause__


default_codec = JsonCodec()
"""The safe default codec instance, used by every store unless one is passed."""


@overload
def register_type(
    cls: _T,
    /,
    *,
    name: str | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
    codec: JsonCodec | None = None,
) -> _T: ...


@overload
def register_type(
    cls: None = None,
    /,
    *,
    name: str | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
    codec: JsonCodec | None = None,
) -> Callable[[_T], _T]: ...


def register_type(
    cls: _T | None = None,
    /,
    *,
    name: str | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
    codec: JsonCodec | None = None,
) -> _T | Callable[[_T], _T]:
    """Trust a type so that stores can hold its instances; return the class.

    Use it as a call, ``rf.register_type(Order)``, or as a class decorator,
    ``@rf.register_type`` or ``@rf.register_type(name="order")``. A dataclass, an Enum
    subclass or a pydantic v2 model needs nothing more; another type needs ``encode`` and
    ``decode`` (see :meth:`JsonCodec.register`). Register a type before storing or reading
    its instances, in every process that does (defining it in a module the worker imports,
    with the decorator, does that).

    Args:
        cls: the type (omitted when used as ``@register_type(...)``).
        name: the name written in stored data (default ``module:qualname``); a stable name
            lets the class move or be renamed later.
        encode: turns an instance into any value the codec can encode.
        decode: turns that value back into an instance.
        codec: the codec to register with (default: :data:`default_codec`, which every store
            uses unless given another).

    Raises:
        CodecError: as :meth:`JsonCodec.register`.
    """
    target = default_codec if codec is None else codec

    def apply(c: _T) -> _T:
        target.register(c, encode=encode, decode=decode, name=name)
        return c

    return apply if cls is None else apply(cls)


def to_jsonable(value: Any) -> Any:
    """Return a JSON-compatible form of ``value`` using :data:`default_codec`."""
    return default_codec.to_jsonable(value)


def from_jsonable(obj: Any) -> Any:
    """Reverse :func:`to_jsonable` using :data:`default_codec`."""
    return default_codec.from_jsonable(obj)


def encode_event(event: Any) -> bytes:
    """Encode one event with :data:`default_codec`."""
    return default_codec.encode_event(event)


def decode_event(data: bytes) -> Event:
    """Decode one event with :data:`default_codec`."""
    return default_codec.decode_event(data)


def encode_events(events: Iterable[Any]) -> bytes:
    """Encode several events as one blob with :data:`default_codec`."""
    return default_codec.encode_events(events)


def decode_events(data: bytes) -> list[Event]:
    """Decode a blob of events with :data:`default_codec`."""
    return default_codec.decode_events(data)
