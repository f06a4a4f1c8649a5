"""Event blobs: ``[format_version, event, ...]``, each event a row ``[kind, field, ...]``.

A row holds the event's fields in the dataclass's order (``ComponentAdded.component`` is
never stored); that order is the wire format (see ``runeflow.codec``). Every checkpoint
encodes events and every replay builds them, so each kind gets an encoder and a builder
generated once (:func:`_compile_encoder`, :func:`_compile_builder`), as dataclasses generate
``__init__``. Values inside events go through a :class:`~runeflow.codec.values.ValueCodec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from runeflow.codec.base import FactSink, ValueLoader, short_repr
from runeflow.codec.values import unencodable
from runeflow.errors import CodecError, RuneflowError
from runeflow.model.events import EVENT_TYPES, ErrorInfo, Event
from runeflow.model.facts import Fact, FactRef

__all__ = ["EVENT_FORMAT_VERSION", "EventCodec"]

EVENT_FORMAT_VERSION = 1
"""Version of the event blob layout; a blob with a higher version is refused."""

_ANNOTATIONS_AS_IS = frozenset(
    {"str", "int", "float", "bool", "str | None", "int | None", "float | None", "bool | None"}
)
_IN_MEMORY_ONLY: frozenset[tuple[str, str]] = frozenset({("component_added", "component")})

_ValueEncoder = Callable[[Any], Any]
_FieldEncoder = Callable[[_ValueEncoder, Any, "FactSink | None"], Any]
_FieldDecoder = Callable[[Any, "ValueLoader | None"], Any]
_RowEncoder = Callable[[_ValueEncoder, Any, "FactSink | None"], list[Any]]
_RowBuilder = Callable[[list[Any], "ValueLoader | None"], Event]


class EventCodec:
    """Writes events as rows and builds them back, values encoded with ``enc``.

    Args:
        enc: the value encoder (:meth:`ValueCodec.enc`); values are decoded while the JSON
            is parsed, before rows reach :meth:`events_of`.
    """

    def __init__(self, enc: _ValueEncoder) -> None:
        self._enc = enc
        self._specs = {kind: _event_spec(kind, cls) for kind, cls in EVENT_TYPES.items()}
        self._builders = {k: (s.width, s.fast_build) for k, s in self._specs.items()}
        self._encoders = {s.cls: s.fast_encode for s in self._specs.values()}

    def rows(self, events: Iterable[Any], fact_sink: FactSink | None) -> list[Any]:
        """Return the blob ``[EVENT_FORMAT_VERSION, row, ...]`` for ``events``, as JSON data."""
        out: list[Any] = [EVENT_FORMAT_VERSION]
        append = out.append
        encoders = self._encoders
        enc = self._enc
        for event in events:
            encode = encoders.get(type(event))
            if encode is None:
                raise unencodable(event, " (not a runeflow event)")
            append(encode(enc, event, fact_sink))
        return out

    def events_of(
        self, doc: Any, load_value: ValueLoader | None, events: list[Event]
    ) -> list[Event]:
        """Append the events of one parsed blob to ``events`` and return it.

        Raises:
            CodecError: ``doc`` is not an event blob, or holds a malformed or unknown event.
        """
        if type(doc) is not list or not doc or type(doc[0]) is not int:
            raise CodecError("not an event blob: expected [format_version, event, ...]")
        if doc[0] > EVENT_FORMAT_VERSION:
            raise CodecError(
                f"event blob has format version {doc[0]}, newer than this runeflow knows "
                f"({EVENT_FORMAT_VERSION}): upgrade runeflow to read it"
            )
        fast = self._builders
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
        except RuneflowError:
            raise
        except Exception as exc:
            which = "" if kind is None else f" {short_repr(kind)}"
            raise CodecError(
                f"malformed{which} event ({type(exc).__name__}: {exc}): the log is damaged "
                "or was not written by this codec"
            ) from exc
        return events

    def _slow_build(self, kind: Any, row: list[Any], load_value: ValueLoader | None) -> Event:
        spec = self._specs.get(kind)
        if spec is None:
            raise _unknown_kind(kind)
        return spec.build(row, load_value)


# --- field converters ------------------------------------------------------------------------


def _enc_fact(enc: _ValueEncoder, fact: Any, sink: FactSink | None) -> list[Any]:
    scope = fact.scope
    meta = [fact.id, fact.component, fact.producer, list(fact.parents)]
    if scope:
        meta.append([enc(scope[0]), *[list(tag) for tag in scope[1:]]])
    else:
        meta.append([])
    if type(fact) is FactRef:
        return meta
    if type(fact) is not Fact:
        raise unencodable(fact, " (a FactProduced event needs a Fact or a FactRef)")
    if sink is not None:
        sink(fact.id, fact.value)
        return meta
    meta.append(enc(fact.value))
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


def _enc_error(enc: _ValueEncoder, err: ErrorInfo, sink: FactSink | None) -> list[str]:
    return [err.type, err.message, err.traceback]


def _dec_error(obj: list[str], load_value: ValueLoader | None) -> ErrorInfo:
    return ErrorInfo(type=obj[0], message=obj[1], traceback=obj[2])


def _enc_str_tuple(enc: _ValueEncoder, value: tuple[str, ...], sink: FactSink | None) -> Any:
    return list(value)


def _dec_str_tuple(obj: list[str], load_value: ValueLoader | None) -> tuple[str, ...]:
    return tuple(obj)


def _enc_pairs(
    enc: _ValueEncoder, value: tuple[tuple[str, str], ...], sink: FactSink | None
) -> Any:
    return [list(pair) for pair in value]


def _dec_pairs(obj: list[list[str]], load_value: ValueLoader | None) -> Any:
    return tuple(tuple(pair) for pair in obj)


def _enc_any(enc: _ValueEncoder, value: Any, sink: FactSink | None) -> Any:
    return enc(value)


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


# --- per-kind specs ----------------------------------------------------------------------


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

    fast_build: _RowBuilder
    """Builds the event from a row holding every field (see :func:`_compile_builder`)."""
    fast_encode: _RowEncoder
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


def _compile_encoder(kind: str, encoders: list[tuple[str, _FieldEncoder | None]]) -> _RowEncoder:
    """Return ``encode(enc, event, sink)`` building the event's row in one expression.

    Every checkpoint encodes its events, so this is generated once per kind, like
    :func:`_compile_builder`; the names are the class's own field names.
    """
    items = [repr(kind)]
    namespace: dict[str, Any] = {}
    for position, (name, field_encoder) in enumerate(encoders):
        if field_encoder is None:
            items.append(f"event.{name}")
        else:
            namespace[f"_e{position}"] = field_encoder
            items.append(f"_e{position}(enc, event.{name}, sink)")
    source = f"def encode(enc, event, sink):\n    return [{', '.join(items)}]\n"
    exec(source, namespace)
    encoder: _RowEncoder = namespace["encode"]
    return encoder


def _compile_builder(
    cls: type, names: list[str], decoders: dict[int, _FieldDecoder]
) -> _RowBuilder:
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
    builder: _RowBuilder = namespace["build"]
    return builder


def _unknown_kind(kind: Any) -> CodecError:
    return CodecError(
        f"unknown event kind {short_repr(kind)}: the log may have been written by a newer "
        "runeflow; upgrade runeflow to read it"
    )
