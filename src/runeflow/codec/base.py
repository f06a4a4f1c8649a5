"""What every part of the codec shares: the tag key, the codec protocol, JSON text, errors."""

from __future__ import annotations

import binascii
import decimal
import json
import sys
import zoneinfo
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from runeflow.errors import CodecError

__all__ = [
    "TAG",
    "Codec",
    "FactSink",
    "ValueLoader",
    "compact_dumps",
    "decode_failure",
    "encode_failure",
    "short_repr",
    "type_name",
    "type_path",
]

TAG = "__rf__"
"""The key that marks a tagged object in encoded JSON."""

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


def compact_dumps() -> Callable[[Any], str]:
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


def type_path(cls: type) -> str:
    """``module:qualname`` of ``cls``: how stored data names a type by default."""
    return f"{cls.__module__}:{cls.__qualname__}"


def type_name(value: Any) -> str:
    """The name of ``value``'s type for messages: bare for builtins, else ``module:qualname``."""
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else type_path(cls)


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about stored data."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """What a low-level exception raised while decoding says about the stored data."""
    if isinstance(exc, decimal.InvalidOperation):
        return "a Decimal is not a number string"
    if isinstance(exc, OverflowError):
        return f"a number, date or duration is out of range ({exc})"
    if isinstance(exc, binascii.Error):
        return f"a bytes value is not valid base64 ({exc})"
    if isinstance(exc, zoneinfo.ZoneInfoNotFoundError):
        return f"a time zone is unknown ({exc})"
    return f"{type(exc).__name__}: {exc}"


def decode_failure(exc: Exception, what: str = "stored data") -> CodecError:
    """The :class:`CodecError` to raise for ``exc``, met while decoding ``what``.

    Decoders do not check every value's shape (that would slow down replay); the entry points
    turn whatever a malformed value makes Python raise into this error instead.
    """
    if isinstance(exc, RecursionError):
        error = CodecError(
            f"{what} is nested too deeply to decode (the limit is about "
            f"{sys.getrecursionlimit()} levels): it is damaged or was not written by runeflow"
        )
        error.__suppress_context__ = True
        return error
    error = CodecError(
        f"{what} is malformed: {_describe(exc)}; it is damaged or was not written by this codec"
    )
    error.__cause__ = exc
    return error


def encode_failure(exc: Exception, value: Any) -> CodecError:
    """The :class:`CodecError` to raise for ``exc``, met while encoding ``value``."""
    name = type_name(value)
    if isinstance(exc, RecursionError):
        error = CodecError(
            f"cannot encode a value of type {name} nested too deeply (or containing itself)",
            type_name=name,
        )
        error.__suppress_context__ = True
        return error
    error = CodecError(
        f"cannot encode a value of type {name}: {type(exc).__name__}: {exc}", type_name=name
    )
    error.__cause__ = exc
    return error
