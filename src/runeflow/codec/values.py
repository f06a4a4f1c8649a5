"""Values as tagged JSON: the encoders and decoders of every tag (see ``runeflow.codec``).

:class:`ValueCodec` does the work of :class:`~runeflow.codec.JsonCodec` on values. Neither
direction checks the shape of what it reads value by value (replay decodes every fact):
a malformed value makes Python raise whatever it raises, and the codec's entry points turn
that into a :class:`~runeflow.errors.CodecError`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
import zoneinfo
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from runeflow.codec.base import TAG, short_repr, type_name, type_path
from runeflow.codec.registry import TypeRegistry, builtin_form, how_to_trust
from runeflow.errors import CodecError
from runeflow.model.events import ComponentAdded, FactProduced

__all__ = ["PLAIN", "ValueCodec", "unencodable"]

PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})
"""Types written as they are (exact types: subclasses such as ``IntEnum`` are tagged)."""

_Encoder = Callable[[Any], Any]
_KINDS = {"e": "an Enum", "dc": "a dataclass", "pd": "a pydantic model"}


def unencodable(value: Any, why: str = "") -> CodecError:
    """The error for a value of a type the codec has no encoding for."""
    name = type_name(value)
    short = type(value).__qualname__
    return CodecError(
        f"cannot encode a value of type {name}{why}: register it with "
        f"codec.register({short}, encode=..., decode=...) (or rf.register_type({short}, "
        "encode=..., decode=...)), make it a module-level dataclass registered with "
        "rf.register_type, or opt in to PickleCodec for a trusted store",
        type_name=name,
    )


def _untrusted(value: Any, kind: str) -> CodecError:
    cls = type(value)
    name = type_path(cls)
    fix = how_to_trust(cls.__qualname__, cls.__module__)
    return CodecError(
        f"cannot encode a value of type {name}: it is {kind} whose type this codec does not "
        f"trust, so it could not be decoded again; {fix}",
        type_name=name,
    )


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


class ValueCodec:
    """Encodes values as tagged JSON and decodes them, for one :class:`TypeRegistry`.

    Args:
        registry: the types this codec trusts.
        dumps: the compact JSON writer (orders the items of sets).
    """

    def __init__(self, registry: TypeRegistry, dumps: Callable[[Any], str]) -> None:
        self.registry = registry
        self._dumps = dumps
        self._builtin: dict[type, _Encoder] = {
            tuple: lambda v: {TAG: "t", "v": [self.enc(x) for x in v]},
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
        self._by_type: dict[type, _Encoder] = {}
        self.forget()

    def forget(self) -> None:
        """Drop the encoders learned per type; call it when the registry changes."""
        registered = {reg.type for reg in self.registry.registrations()}
        self._by_type = {t: f for t, f in self._builtin.items() if t not in registered}

    # --- encode ---------------------------------------------------------------------------

    def enc(self, v: Any) -> Any:
        """Return the JSON-compatible form of ``v`` (raises on what it cannot encode)."""
        t = type(v)
        if t in PLAIN:
            return v
        if t is list:
            return [self.enc(x) for x in v]
        if t is dict:
            return self.enc_dict(v)
        enc = self._by_type.get(t)
        if enc is not None:
            return enc(v)
        enc = self._encoder_for(v)
        self._by_type[t] = enc
        return enc(v)

    def enc_dict(self, d: dict[Any, Any]) -> Any:
        """Return the form of a dict: plain when its keys allow, else tagged pairs."""
        if TAG not in d and all(type(k) is str for k in d):
            return {k: self.enc(x) for k, x in d.items()}
        return {TAG: "dict", "v": [[self.enc(k), self.enc(x)] for k, x in d.items()]}

    def _enc_unordered(self, items: Iterable[Any]) -> list[Any]:
        encoded = [self.enc(x) for x in items]
        # Equal sets must give equal bytes (content addressing): order by encoded text.
        return sorted(encoded, key=self._dumps)

    def _encoder_for(self, v: Any) -> _Encoder:
        """Build the encoder of ``v``'s type, or raise: untrusted or unknown types."""
        cls = type(v)
        reg = self.registry.for_type(cls)
        if reg is not None and reg.tag == "x":
            return self._custom_encoder(reg.name, reg.encode)
        if reg is not None:
            form, name = reg.tag, reg.name
        else:
            found = builtin_form(cls)
            if found is None:
                raise unencodable(v)
            form = found
            if cls is ComponentAdded or cls is FactProduced:
                raise unencodable(v, " (events are encoded with encode_events())")
            if "<locals>" in cls.__qualname__:
                raise unencodable(
                    v,
                    " (defined inside a function, so it cannot be found again: define it at "
                    "module level, or register it under a name)",
                )
            if not self.registry.module_trusted(cls.__module__):
                raise _untrusted(v, _KINDS[form])
            name = type_path(cls)
        enc = self.enc
        if form == "e":
            return lambda v: {TAG: "e", "t": name, "v": enc(v.value)}
        if form == "dc":
            fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
            enc_dict = self.enc_dict
            return lambda v: {
                TAG: "dc",
                "t": name,
                "v": enc_dict({f: getattr(v, f) for f in fields}),
            }
        return lambda v: {
            TAG: "pd",
            "t": name,
            "v": enc(v.model_dump(mode="python", round_trip=True)),
        }

    def _custom_encoder(self, name: str, encode: _Encoder | None) -> _Encoder:
        assert encode is not None
        enc = self.enc

        def encoder(v: Any) -> Any:
            try:
                form = encode(v)
            except Exception as exc:
                raise CodecError(
                    f"cannot encode a value of type {type_name(v)}: the encode function "
                    f"registered as {name!r} raised {type(exc).__name__}: {exc}",
                    type_name=type_name(v),
                ) from exc
            return {TAG: "x", "t": name, "v": enc(form)}

        return encoder

    # --- decode ---------------------------------------------------------------------------

    def dec(self, obj: Any) -> Any:
        """Reverse :meth:`enc` for ``obj`` as ``json.loads`` gives it."""
        t = type(obj)
        if t is list:
            return [self.dec(x) for x in obj]
        if t is dict:
            return self.hook({k: self.dec(x) for k, x in obj.items()})
        return obj

    def hook(self, obj: dict[str, Any]) -> Any:
        """Decode one JSON object whose members are decoded already (a JSON object hook)."""
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

    def _decode_named(self, tag: Any, name: Any, v: Any) -> Any:
        if type(tag) is not str or type(name) is not str:
            raise CodecError(
                f"malformed tagged object in stored data: tag {short_repr(tag)}, type "
                f"{short_repr(name)}"
            )
        decode: Any = None
        cls: Any = None
        if tag == "x":
            reg = self.registry.named(name)
            if reg is None or reg.decode is None:
                raise CodecError(
                    f"stored data uses type {short_repr(name, 120)}, which is not registered "
                    "with this codec with a decode function: call codec.register(...) for it "
                    "before reading",
                    type_name=name,
                )
            decode = reg.decode
        else:
            cls = self.registry.resolve(tag, name)
        try:
            if decode is not None:
                return decode(v)
            if tag == "dc":
                return cls(**v)
            if tag == "e":
                return cls(v)
            return cls.model_validate(v)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(
                f"stored data for type {short_repr(name, 120)} cannot be decoded "
                f"({type(exc).__name__}: {exc}): it is damaged, or the type changed since it "
                "was written",
                type_name=name,
            ) from exc
