"""The pickle codec: for values JSON cannot hold, in stores nobody untrusted can write to."""

from __future__ import annotations

import pickle
from typing import Any

from runeflow.codec.base import encode_failure, type_name
from runeflow.errors import CodecError

__all__ = ["PickleCodec"]


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
                f"cannot pickle a value of type {type_name(value)}: {exc}",
                type_name=type_name(value),
            ) from None
        except CodecError:
            raise
        except Exception as exc:
            error = encode_failure(exc, value)
            raise error from error.__cause__

    def decode(self, data: bytes) -> Any:
        """Unpickle ``data`` (this runs code: trusted stores only)."""
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise CodecError(
                f"cannot unpickle stored bytes ({type(exc).__name__}: {exc}): they are "
                "damaged or were not written by PickleCodec"
            ) from None
