"""Stable content hashes for components and ids.

Python's built-in ``hash()`` is salted per process, so nothing here uses it. A component's
hash covers its code (the code object, recursively: bytecode, constants, names, argument
layout), its default argument values, its closure values and any helper functions of the
same module it calls by name. Line numbers and file names are left out, so moving code does
not change a hash; editing it does.

A callable object (a class instance with ``__call__``) is hashed by its class and its
``__call__`` code; one that holds functions or options says so with a ``_rf_digest_parts()``
method returning them, and they are hashed too (runeflow's own pipelines, the functions of
state-based components, and components themselves do). Markers such as
``rf.context("key", default=...)`` are hashed through their ``repr``, which shows the key
and the default.

Hashes of code objects are cached, keyed by the object's identity, because workflows are
often built from the same few functions many times over.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import types
from collections.abc import Callable
from typing import Any

__all__ = ["callable_digest", "digest", "short_id", "stable_repr"]

_CODE_CACHE: dict[int, tuple[types.CodeType, str]] = {}
_PLAIN_FN_CACHE: dict[int, tuple[types.CodeType, str]] = {}
_MAX_DEPTH = 6


def digest(*parts: str) -> str:
    """Return a 32-hex-digit BLAKE2b digest of ``parts`` joined by NUL."""
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()


def short_id(*parts: str, _blake2b: Any = hashlib.blake2b) -> str:
    """Return a 24-hex-digit digest, used for fact and runnable ids."""
    result: str = _blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()
    return result


def _code_digest(code: types.CodeType) -> str:
    cached = _CODE_CACHE.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    h = hashlib.blake2b(digest_size=16)
    h.update(code.co_code)
    h.update(
        repr(
            (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
        ).encode()
    )
    h.update("\0".join(code.co_names).encode())
    h.update("\0".join(code.co_varnames).encode())
    h.update("\0".join(code.co_freevars).encode())
    for const in code.co_consts:
        h.update(b"\1")
        if isinstance(const, types.CodeType):
            h.update(_code_digest(const).encode())
        else:
            h.update(stable_repr(const).encode())
    result = h.hexdigest()
    _CODE_CACHE[id(code)] = (code, result)
    return result


def stable_repr(value: Any, depth: int = 0) -> str:
    """Return a representation of ``value`` that is the same in every process.

    Sets are sorted, functions are replaced by their code digest, and objects whose
    ``repr`` would show a memory address are described by their type and attributes.
    """
    if depth > _MAX_DEPTH:
        return "..."
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, tuple | list):
        inner = ",".join(stable_repr(v, depth + 1) for v in value)
        return f"{type(value).__name__}({inner})"
    if isinstance(value, set | frozenset):
        return "set(" + ",".join(sorted(stable_repr(v, depth + 1) for v in value)) + ")"
    if isinstance(value, dict):
        items = sorted(
            f"{stable_repr(k, depth + 1)}:{stable_repr(v, depth + 1)}" for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, types.CodeType):
        return "code:" + _code_digest(value)
    if callable(value):
        return "fn:" + callable_digest(value, depth + 1)
    if isinstance(value, type):
        return f"type:{value.__module__}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text or "object at" in text:
        attrs = getattr(value, "__dict__", None)
        body = stable_repr(attrs, depth + 1) if isinstance(attrs, dict) else ""
        return f"{type(value).__module__}.{type(value).__qualname__}{body}"
    return text


def callable_digest(fn: Callable[..., Any] | None, depth: int = 0) -> str:
    """Return a stable digest of a callable's code, defaults, closure and local helpers."""
    if fn is None:
        return "none"
    if (
        type(fn) is types.FunctionType
        and fn.__closure__ is None
        and not fn.__defaults__
        and not fn.__kwdefaults__
    ):
        code = fn.__code__
        hit = _PLAIN_FN_CACHE.get(id(code))
        if hit is not None and hit[0] is code:
            return hit[1]
        result = _callable_digest(fn, depth, frozenset())
        _PLAIN_FN_CACHE[id(code)] = (code, result)
        return result
    return _callable_digest(fn, depth, frozenset())


def _callable_digest(fn: Any, depth: int, seen: frozenset[int]) -> str:
    if isinstance(fn, functools.partial):
        return digest(
            "partial",
            _callable_digest(fn.func, depth + 1, seen),
            stable_repr(fn.args, depth + 1),
            stable_repr(fn.keywords, depth + 1),
        )
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        inner = getattr(fn, "__func__", None) or vars(type(fn)).get("__call__")
        if inner is not None and getattr(inner, "__code__", None) is not None and inner is not fn:
            own = getattr(fn, "_rf_digest_parts", None)  # what the object holds (its functions)
            return digest(
                "callable",
                f"{type(fn).__module__}.{type(fn).__qualname__}",
                _callable_digest(inner, depth + 1, seen),
                *([stable_repr(own(), depth + 1)] if own is not None else []),
            )
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        return digest("builtin", str(getattr(fn, "__module__", "")), str(name))
    parts = [_code_digest(code)]
    defaults = getattr(fn, "__defaults__", None)
    if defaults:
        parts.append(stable_repr(defaults, depth + 1))
    kwdefaults = getattr(fn, "__kwdefaults__", None)
    if kwdefaults:
        parts.append(stable_repr(kwdefaults, depth + 1))
    closure = getattr(fn, "__closure__", None)
    if closure and depth < _MAX_DEPTH:
        for cell in closure:
            try:
                parts.append(stable_repr(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                parts.append("<empty>")
    parts.extend(_helper_digests(fn, code, depth, seen | {id(fn)}))
    return digest(*parts)


def _helper_digests(fn: Any, code: types.CodeType, depth: int, seen: frozenset[int]) -> list[str]:
    """Digest the plain functions of the same module that ``fn`` calls by global name."""
    if depth >= _MAX_DEPTH:
        return []
    module = getattr(fn, "__module__", None)
    glb = getattr(fn, "__globals__", None)
    if not isinstance(glb, dict):
        return []
    out = []
    for name in _global_names(code):
        target = glb.get(name)
        if (
            isinstance(target, types.FunctionType)
            and target.__module__ == module
            and id(target) not in seen
        ):
            out.append(name + "=" + _callable_digest(target, depth + 1, seen))
    return out


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return sorted(set(names))
