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
``e``                  an Enum member (``t``: ``module:qualname``, ``v``: its value)
``dc``                 a dataclass instance (``t``: ``module:qualname``, ``v``: fields)
``pd``                 a pydantic v2 model (``t``: ``module:qualname``, ``v``: its dump)
``x``                  a registered type (``t``: its registered name, ``v``: its form)
=====================  ======================================================

Decoding never calls an arbitrary callable: a ``module:qualname`` is imported and accepted
only if it names a dataclass, an Enum subclass or a pydantic model class; registered types
are looked up by name. Anything else raises :class:`~runeflow.errors.CodecError`.

Events are encoded in blobs that hold a whole append (``[format_version, event, ...]``),
each event a JSON array ``[kind, field, field, ...]`` with its fields in the dataclass's
order (``ComponentAdded.component`` is never stored). That order is the wire format: a new
event field must be appended last, with a default, so that older logs still decode; any
other change to an event's fields needs a new :data:`EVENT_FORMAT_VERSION`. A store with
the fact-store capability passes a *fact sink* to :meth:`JsonCodec.encode_events`: values of
``FactProduced`` facts then go to the sink and the blob keeps the fact's id and metadata.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import importlib
import json
import pickle
import sys
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from runeflow.errors import CodecError
from runeflow.model.events import EVENT_TYPES, ComponentAdded, ErrorInfo, Event, FactProduced
from runeflow.model.facts import Fact, FactRef

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
    "to_jsonable",
]

TAG = "__rf__"
"""The key that marks a tagged object in encoded JSON."""
_TAG_TEXT = f'"{TAG}"'

EVENT_FORMAT_VERSION = 1
"""Version of the event blob layout; a blob with a higher version is refused."""

_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})
_ANNOTATIONS_AS_IS = frozenset(
    {"str", "int", "float", "bool", "str | None", "int | None", "float | None", "bool | None"}
)
_IN_MEMORY_ONLY: frozenset[tuple[str, str]] = frozenset({("component_added", "component")})

FactSink = Callable[[str, Any], None]
"""Receives ``(fact_id, value)`` for each fact value kept out of an event blob."""

ValueLoader = Callable[[str], Any]
"""Returns the decoded value of a fact kept out of an event blob, given its id."""


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back; stores use one to write facts and payloads."""

    def encode(self, value: Any) -> bytes:
        """Return the bytes for ``value``; raise :class:`CodecError` if it cannot be encoded."""
        ...

    def decode(self, data: bytes) -> Any:
        """Return the value encoded in ``data``; raise :class:`CodecError` if unreadable."""
        ...


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Registered:
    """A user type registered with :meth:`JsonCodec.register`."""

    type: type
    """The registered class."""
    name: str
    """The name written in encoded data."""
    encode: Callable[[Any], Any]
    """Turns an instance into a value the codec can encode."""
    decode: Callable[[Any], Any]
    """Turns that value back into an instance."""


def _compact_dumps() -> Callable[[Any], str]:
    """Return a compact JSON writer; the C encoder is built once instead of per call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - Python builds without the C accelerator
        return json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

    def refuse(obj: Any) -> Any:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    encoder = make(
        None, refuse, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def dumps(obj: Any) -> str:
        return "".join(encoder(obj, 0))

    return dumps


def _type_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else _type_path(cls)


def _unencodable(value: Any, why: str = "") -> CodecError:
    name = _type_name(value)
    return CodecError(
        f"cannot encode a value of type {name}{why}: register it with "
        f"codec.register({type(value).__qualname__}, encode=..., decode=...), make it a "
        "module-level dataclass, or opt in to PickleCodec for a trusted store",
        type_name=name,
    )


class JsonCodec:
    """The safe default codec: JSON with type tags (see the module docstring).

    Args:
        registrations: optional ``{type: (encode, decode)}`` pairs to register at once.
    """

    def __init__(
        self,
        registrations: Mapping[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]]
        | None = None,
    ) -> None:
        self._by_type: dict[type, Callable[[Any], Any]] = {
            tuple: lambda v: {TAG: "t", "v": [self._enc(x) for x in v]},
            set: lambda v: {TAG: "s", "v": self._enc_unordered(v)},
            frozenset: lambda v: {TAG: "fs", "v": self._enc_unordered(v)},
            bytes: lambda v: {TAG: "b", "v": base64.b64encode(v).decode("ascii")},
            bytearray: lambda v: {TAG: "ba", "v": base64.b64encode(v).decode("ascii")},
            dt.datetime: _enc_datetime,
            dt.date: lambda v: {TAG: "d", "v": v.isoformat()},
            dt.time: lambda v: {TAG: "tm", "v": v.isoformat()},
            dt.timedelta: lambda v: {TAG: "td", "v": [v.days, v.seconds, v.microseconds]},
            Decimal: lambda v: {TAG: "dec", "v": str(v)},
            uuid.UUID: lambda v: {TAG: "u", "v": str(v)},
        }
        self._registered: dict[type, _Registered] = {}
        self._registered_names: dict[str, _Registered] = {}
        self._resolved: dict[tuple[str, str], type] = {}
        self._dumps = _compact_dumps()
        self._tagged = json.JSONDecoder(object_hook=self._hook)
        self._plain = json.JSONDecoder()
        self._event_specs = {kind: _event_spec(kind, cls) for kind, cls in EVENT_TYPES.items()}
        self._fast_builders = {k: (s.width, s.fast_build) for k, s in self._event_specs.items()}
        self._fast_encoders = {s.cls: s.fast_encode for s in self._event_specs.values()}
        for cls, (enc, dec) in (registrations or {}).items():
            self.register(cls, encode=enc, decode=dec)

    # --- public API ------------------------------------------------------------------------

    def register(
        self,
        cls: type,
        *,
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        name: str | None = None,
    ) -> None:
        """Teach the codec a type it does not handle (or override how it handles one).

        Args:
            cls: the type; instances of its subclasses use the same functions.
            encode: turns an instance into any value this codec can encode.
            decode: turns that value back into an instance.
            name: the name written in encoded data (default ``module:qualname``); keep it
                stable, since stored data refers to it.
        """
        reg = _Registered(type=cls, name=name or _type_path(cls), encode=encode, decode=decode)
        self._registered[cls] = reg
        self._registered_names[reg.name] = reg
        self._by_type.pop(cls, None)

    def encode(self, value: Any) -> bytes:
        """Return ``value`` as UTF-8 JSON bytes.

        Raises:
            CodecError: when the value (or something inside it) has no encoding.
        """
        return self._dump(self.to_jsonable(value))

    def decode(self, data: bytes) -> Any:
        """Return the value encoded in ``data``.

        Raises:
            CodecError: when ``data`` is not valid encoded JSON or names an unknown type.
        """
        return self._load(data)

    def to_jsonable(self, value: Any) -> Any:
        """Return a JSON-compatible form of ``value`` that :meth:`from_jsonable` reverses."""
        try:
            return self._enc(value)
        except RecursionError:
            raise CodecError(
                "cannot encode a value nested too deeply (or containing itself)",
                type_name=_type_name(value),
            ) from None

    def from_jsonable(self, obj: Any) -> Any:
        """Reverse :meth:`to_jsonable` (``obj`` as produced by ``json.loads``)."""
        try:
            return self._dec(obj)
        except CodecError:
            raise
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise CodecError(f"malformed encoded object: {exc!r}") from None

    def encode_event(self, event: Any) -> bytes:
        """Encode one event as a blob (see :meth:`encode_events`)."""
        return self.encode_events((event,))

    def decode_event(self, data: bytes) -> Event:
        """Decode a blob holding exactly one event."""
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
        out: list[Any] = [EVENT_FORMAT_VERSION]
        append = out.append
        encoders = self._fast_encoders
        for event in events:
            encode = encoders.get(type(event))
            if encode is None:
                raise _unencodable(event, " (not a runeflow event)")
            append(encode(self, event, fact_sink))
        return self._dump(out)

    def decode_events(self, data: bytes, *, load_value: ValueLoader | None = None) -> list[Event]:
        """Decode a blob written by :meth:`encode_events`.

        Args:
            data: the blob.
            load_value: resolves facts whose value was kept out of the blob; without it,
                such facts come back as :class:`~runeflow.model.facts.FactRef`.

        Raises:
            CodecError: on unreadable bytes, an unknown event kind, or a newer format.
        """
        return self._events_of(self._load(data), load_value, [])

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
        if len(blobs) == 1:
            return self.decode_events(blobs[0], load_value=load_value)
        docs = self._load(b"[" + b",".join(blobs) + b"]")
        if type(docs) is not list or len(docs) != len(blobs):
            raise CodecError("a blob in the batch is damaged")
        events: list[Event] = []
        for i, doc in enumerate(docs):
            before = len(events)
            self._events_of(doc, load_value, events)
            if counts is not None and counts[i] != len(events) - before:
                raise CodecError("a blob in the batch holds a wrong number of events")
        return events

    def _events_of(
        self, doc: Any, load_value: ValueLoader | None, events: list[Event]
    ) -> list[Event]:
        """Append the events of one decoded blob to ``events`` and return it."""
        if type(doc) is not list or not doc or type(doc[0]) is not int:
            raise CodecError("not an event blob: expected [format_version, event, ...]")
        if doc[0] > EVENT_FORMAT_VERSION:
            raise CodecError(
                f"event blob has format version {doc[0]}, newer than this runeflow knows "
                f"({EVENT_FORMAT_VERSION}): upgrade runeflow to read it"
            )
        fast = self._fast_builders
        append = events.append
        kind = None
        try:
            for i in range(1, len(doc)):
                row = doc[i]
                kind = row[0]
                width, build = fast.get(kind, _NO_BUILDER)
                if len(row) == width:
                    append(build(row, load_value))
                else:
                    append(self._slow_build(kind, row, load_value))
        except CodecError:
            raise
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise CodecError(f"malformed {kind!r} event: {exc!r}") from None
        return events

    def _slow_build(self, kind: Any, row: list[Any], load_value: ValueLoader | None) -> Event:
        spec = self._event_specs.get(kind)
        if spec is None:
            raise _unknown_kind(kind)
        return spec.build(row, load_value)

    # --- JSON text ------------------------------------------------------------------------

    def _dump(self, obj: Any) -> bytes:
        try:
            return self._dumps(obj).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise CodecError(f"cannot write JSON: {exc}") from None

    def _load(self, data: bytes) -> Any:
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
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise CodecError(f"stored data is malformed: {exc!r}") from None

    # --- values: encode -------------------------------------------------------------------

    def _enc(self, v: Any) -> Any:
        t = type(v)
        if t in _PLAIN:
            return v
        if t is list:
            return [self._enc(x) for x in v]
        if t is dict:
            return self._enc_dict(v)
        enc = self._by_type.get(t)
        if enc is not None:
            return enc(v)
        return self._enc_other(v)

    def _enc_dict(self, d: dict[Any, Any]) -> Any:
        if TAG not in d and all(type(k) is str for k in d):
            return {k: self._enc(x) for k, x in d.items()}
        return {TAG: "dict", "v": [[self._enc(k), self._enc(x)] for k, x in d.items()]}

    def _enc_unordered(self, items: Iterable[Any]) -> list[Any]:
        encoded = [self._enc(x) for x in items]
        # Equal sets must give equal bytes (content addressing): order by encoded text.
        return sorted(encoded, key=self._dumps)

    def _enc_other(self, v: Any) -> Any:
        cls = type(v)
        for base in cls.__mro__:
            reg = self._registered.get(base)
            if reg is not None:
                return {TAG: "x", "t": reg.name, "v": self._enc(reg.encode(v))}
        if isinstance(v, enum.Enum):
            return {TAG: "e", "t": self._path(v), "v": self._enc(v.value)}
        if dataclasses.is_dataclass(v):
            return {TAG: "dc", "t": self._path(v), "v": self._enc_dict(_dataclass_fields(v))}
        pydantic = sys.modules.get("pydantic")
        if pydantic is not None and isinstance(v, pydantic.BaseModel):
            dump = v.model_dump(mode="python", round_trip=True)
            return {TAG: "pd", "t": self._path(v), "v": self._enc(dump)}
        raise _unencodable(v)

    @staticmethod
    def _path(v: Any) -> str:
        cls = type(v)
        if "<locals>" in cls.__qualname__:
            raise _unencodable(v, " (defined inside a function, so it cannot be imported)")
        return _type_path(cls)

    # --- values: decode -------------------------------------------------------------------

    def _dec(self, obj: Any) -> Any:
        t = type(obj)
        if t is list:
            return [self._dec(x) for x in obj]
        if t is dict:
            return self._hook({k: self._dec(x) for k, x in obj.items()})
        return obj

    def _hook(self, obj: dict[str, Any]) -> Any:
        if TAG not in obj:
            return obj
        tag = obj[TAG]
        v = obj["v"]
        if tag == "t":
            return tuple(v)
        if tag == "dict":
            return {k: x for k, x in v}
        simple = _SIMPLE_DECODERS.get(tag)
        if simple is not None:
            return simple(v)
        return self._decode_named(tag, obj["t"], v)

    def _decode_named(self, tag: str, name: str, v: Any) -> Any:
        if tag == "x":
            reg = self._registered_names.get(name)
            if reg is None:
                raise CodecError(
                    f"stored data uses type {name!r}, which is not registered with this "
                    "codec: call codec.register(...) for it before reading",
                    type_name=name,
                )
            return reg.decode(v)
        cls = self._resolve(tag, name)
        if tag == "e":
            return cls(v)
        if tag == "dc":
            return cls(**v)
        return cls.model_validate(v)  # type: ignore[attr-defined]

    def _resolve(self, tag: str, path: str) -> type:
        cached = self._resolved.get((tag, path))
        if cached is not None:
            return cached
        if tag not in ("e", "dc", "pd"):
            raise CodecError(f"unknown type tag {tag!r} in stored data")
        cls = _import_path(path)
        if not _accepts(tag, cls):
            raise CodecError(
                f"stored data names {path!r}, which is not {_TAG_KINDS[tag]}: refusing to use it",
                type_name=path,
            )
        assert isinstance(cls, type)
        self._resolved[(tag, path)] = cls
        return cls

    # --- events ---------------------------------------------------------------------------

    def _enc_event(self, event: Any, fact_sink: FactSink | None) -> list[Any]:
        encode = self._fast_encoders.get(type(event))
        if encode is None:
            raise _unencodable(event, " (not a runeflow event)")
        return encode(self, event, fact_sink)


# --- event field tables ---------------------------------------------------------------------

_FieldEncoder = Callable[[JsonCodec, Any, "FactSink | None"], Any]
_FieldDecoder = Callable[[Any, "ValueLoader | None"], Any]


def _enc_fact(codec: JsonCodec, fact: Any, sink: FactSink | None) -> list[Any]:
    scope = fact.scope
    meta = [fact.id, fact.component, fact.producer, list(fact.parents)]
    if scope:
        meta.append([codec._enc(scope[0]), *[list(tag) for tag in scope[1:]]])
    else:
        meta.append([])
    if type(fact) is FactRef:
        return meta
    if type(fact) is not Fact:
        raise _unencodable(fact, " (a FactProduced event needs a Fact or a FactRef)")
    if sink is not None:
        sink(fact.id, fact.value)
        return meta
    meta.append(codec._enc(fact.value))
    return meta


def _dec_fact(obj: list[Any], load_value: ValueLoader | None) -> Fact | FactRef:
    fid, component, producer, parents, scope = obj[0], obj[1], obj[2], obj[3], obj[4]
    if len(scope) == 1:  # an input's own scope, outside any map: the common case
        scope_t: tuple[Any, ...] = (scope[0],)
    else:
        scope_t = (scope[0], *[tuple(tag) for tag in scope[1:]]) if scope else ()
    if len(obj) == 6:
        return Fact(fid, obj[5], component, producer, tuple(parents), scope_t)
    if load_value is not None:
        return Fact(fid, load_value(fid), component, producer, tuple(parents), scope_t)
    return FactRef(fid, component, producer, tuple(parents), scope_t)


def _enc_error(codec: JsonCodec, err: ErrorInfo, sink: FactSink | None) -> list[str]:
    return [err.type, err.message, err.traceback]


def _dec_error(obj: list[str], load_value: ValueLoader | None) -> ErrorInfo:
    return ErrorInfo(type=obj[0], message=obj[1], traceback=obj[2])


def _enc_str_tuple(codec: JsonCodec, value: tuple[str, ...], sink: FactSink | None) -> Any:
    return list(value)


def _dec_str_tuple(obj: list[str], load_value: ValueLoader | None) -> tuple[str, ...]:
    return tuple(obj)


def _enc_pairs(codec: JsonCodec, value: tuple[tuple[str, str], ...], sink: FactSink | None) -> Any:
    return [list(pair) for pair in value]


def _dec_pairs(obj: list[list[str]], load_value: ValueLoader | None) -> Any:
    return tuple(tuple(pair) for pair in obj)


def _enc_any(codec: JsonCodec, value: Any, sink: FactSink | None) -> Any:
    return codec._enc(value)


_NO_BUILDER: tuple[int, Any] = (-1, None)

_FIELD_CODECS: dict[str, tuple[_FieldEncoder, _FieldDecoder]] = {
    "Fact": (_enc_fact, _dec_fact),
    "Fact | FactRef": (_enc_fact, _dec_fact),
    "FactRef | Fact": (_enc_fact, _dec_fact),
    "ErrorInfo": (_enc_error, _dec_error),
    "tuple[str, ...]": (_enc_str_tuple, _dec_str_tuple),
    "tuple[tuple[str, str], ...]": (_enc_pairs, _dec_pairs),
}
"""Fast paths by field annotation; other non-scalar fields use the tagged encoding."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _EventSpec:
    """How one event kind is written: its stored fields, in order, and their converters."""

    kind: str
    """The event's ``kind`` tag."""
    cls: type
    """The event class."""
    names: tuple[str, ...]
    """Stored fields in wire order (the dataclass field order)."""
    encoders: tuple[tuple[str, _FieldEncoder | None], ...]
    """``(field, encoder)`` per stored field; ``None`` writes the value as it is."""
    decoders: tuple[tuple[int, _FieldDecoder], ...]
    """``(position, decoder)`` for the fields that need more than JSON parsing."""

    fast_build: Callable[[list[Any], ValueLoader | None], Event]
    """Builds the event from a row holding every field (see :func:`_compile_builder`)."""
    fast_encode: Callable[[JsonCodec, Any, FactSink | None], list[Any]]
    """Writes the event as a row (see :func:`_compile_encoder`)."""

    @property
    def width(self) -> int:
        """Length of a row holding every field: the kind plus one value per field."""
        return len(self.names) + 1

    def build(self, row: list[Any], load_value: ValueLoader | None) -> Event:
        """Return the event stored as ``row`` when it has fewer or more fields than known."""
        if len(row) > self.width:
            raise CodecError(
                f"{self.kind!r} event has more fields than this runeflow knows: the log "
                "may have been written by a newer runeflow; upgrade runeflow to read it"
            )
        for position, dec in self.decoders:
            if position < len(row):
                row[position] = dec(row[position], load_value)
        event: Event = self.cls(**dict(zip(self.names, row[1:], strict=False)))
        return event


def _event_spec(kind: str, cls: type) -> _EventSpec:
    names: list[str] = []
    encoders: list[tuple[str, _FieldEncoder | None]] = []
    decoders: list[tuple[int, _FieldDecoder]] = []
    for f in dataclasses.fields(cls):
        if f.name == "kind" or (kind, f.name) in _IN_MEMORY_ONLY:
            continue
        names.append(f.name)
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if annotation in _ANNOTATIONS_AS_IS:
            encoders.append((f.name, None))
        elif annotation in _FIELD_CODECS:
            enc, dec = _FIELD_CODECS[annotation]
            encoders.append((f.name, enc))
            decoders.append((len(names), dec))
        else:
            encoders.append((f.name, _enc_any))
    return _EventSpec(
        kind=kind,
        cls=cls,
        names=tuple(names),
        encoders=tuple(encoders),
        decoders=tuple(decoders),
        fast_build=_compile_builder(cls, names, dict(decoders)),
        fast_encode=_compile_encoder(kind, encoders),
    )


def _compile_encoder(
    kind: str, encoders: list[tuple[str, _FieldEncoder | None]]
) -> Callable[[JsonCodec, Any, FactSink | None], list[Any]]:
    """Return ``encode(codec, event, sink)`` building the event's row in one expression.

    Every checkpoint encodes its events, so this is generated once per kind, like
    :func:`_compile_builder`; the names are the class's own field names.
    """
    items = [repr(kind)]
    namespace: dict[str, Any] = {}
    for position, (name, enc) in enumerate(encoders):
        if enc is None:
            items.append(f"event.{name}")
        else:
            namespace[f"_e{position}"] = enc
            items.append(f"_e{position}(codec, event.{name}, sink)")
    source = f"def encode(codec, event, sink):\n    return [{', '.join(items)}]\n"
    exec(source, namespace)
    encoder: Callable[[JsonCodec, Any, FactSink | None], list[Any]] = namespace["encode"]
    return encoder


def _compile_builder(
    cls: type, names: list[str], decoders: dict[int, _FieldDecoder]
) -> Callable[[list[Any], ValueLoader | None], Event]:
    """Return ``build(row, load_value)`` calling ``cls(name=row[i], ...)`` directly.

    Replaying a log builds every event, so this is generated once per kind (as dataclasses
    generate ``__init__``); the names are the class's own field names, never stored data.
    """
    init = [f.name for f in dataclasses.fields(cls) if f.init]
    positional = init[: len(names)] == names  # faster than keywords, when the order allows
    args = []
    for position, name in enumerate(names, start=1):
        value = f"row[{position}]"
        if position in decoders:
            value = f"_d{position}({value}, load_value)"
        args.append(value if positional else f"{name}={value}")
    namespace: dict[str, Any] = {"_cls": cls, **{f"_d{p}": d for p, d in decoders.items()}}
    source = f"def build(row, load_value):\n    return _cls({', '.join(args)})\n"
    exec(source, namespace)
    builder: Callable[[list[Any], ValueLoader | None], Event] = namespace["build"]
    return builder


def _unknown_kind(kind: Any) -> CodecError:
    return CodecError(
        f"unknown event kind {kind!r}: the log may have been written by a newer runeflow; "
        "upgrade runeflow to read it"
    )


def _dataclass_fields(v: Any) -> dict[str, Any]:
    if isinstance(v, ComponentAdded | FactProduced):
        raise _unencodable(v, " (events are encoded with encode_events())")
    return {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.init}


def _import_path(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname or "<locals>" in qualname:
        raise CodecError(f"malformed type path {path!r} in stored data", type_name=path)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CodecError(
            f"stored data names type {path!r}, which cannot be imported ({exc}): make sure "
            "the code that defines it is importable",
            type_name=path,
        ) from None
    return obj


def _accepts(tag: str, obj: Any) -> bool:
    if not isinstance(obj, type):
        return False
    if tag == "e":
        return issubclass(obj, enum.Enum)
    if tag == "dc":
        return dataclasses.is_dataclass(obj)
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(obj, pydantic.BaseModel)


def _enc_datetime(v: dt.datetime) -> dict[str, Any]:
    """A datetime: with its zone's key when it has a named ``zoneinfo`` zone, else ISO 8601.

    An offset alone would not do for a zone: the value would come back in a fixed-offset
    zone, and a time in a DST gap or fold never equals one in another zone.
    """
    if isinstance(v.tzinfo, zoneinfo.ZoneInfo) and v.tzinfo.key is not None:
        local = v.replace(tzinfo=None).isoformat()
        return {TAG: "dtz", "v": [local, v.tzinfo.key, v.fold]}
    return {TAG: "dt", "v": v.isoformat()}


def _dec_zoned(v: list[Any]) -> dt.datetime:
    local, key, fold = v
    try:
        zone = zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise CodecError(
            f"stored datetime is in time zone {key!r}, which this machine does not know "
            f"({exc}): install the tzdata package"
        ) from None
    return dt.datetime.fromisoformat(local).replace(tzinfo=zone, fold=fold)


_TAG_KINDS = {"e": "an Enum subclass", "dc": "a dataclass", "pd": "a pydantic model class"}

_SIMPLE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "s": set,
    "fs": frozenset,
    "b": lambda v: base64.b64decode(v, validate=True),
    "ba": lambda v: bytearray(base64.b64decode(v, validate=True)),
    "dt": dt.datetime.fromisoformat,
    "dtz": _dec_zoned,
    "d": dt.date.fromisoformat,
    "tm": dt.time.fromisoformat,
    "td": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "dec": Decimal,
    "u": uuid.UUID,
}


class PickleCodec:
    """A codec built on :mod:`pickle`, for values the JSON codec cannot encode.

    Warning:
        Unpickling executes code chosen by whoever wrote the data. Use this codec only with
        stores that nobody untrusted can write to; never point it at a shared database you
        do not control. It is never used unless passed explicitly (``codec=PickleCodec()``).

    Args:
        protocol: the pickle protocol to write with.
    """

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def encode(self, value: Any) -> bytes:
        """Pickle ``value``; raise :class:`CodecError` if it cannot be pickled."""
        try:
            return pickle.dumps(value, protocol=self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CodecError(
                f"cannot pickle a value of type {_type_name(value)}: {exc}",
                type_name=_type_name(value),
            ) from None

    def decode(self, data: bytes) -> Any:
        """Unpickle ``data`` (this runs code: trusted stores only)."""
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise CodecError(f"cannot unpickle stored bytes: {exc!r}") from None


default_codec = JsonCodec()
"""The safe default codec instance, used by every store unless one is passed."""


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
