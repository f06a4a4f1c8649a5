"""The types a codec trusts: registered types, trusted modules, and stored type names.

Stored data names types (``{"__rf__": "dc", "t": "myapp.models:Order", ...}``), and whoever
can write to a store chooses those names. A :class:`TypeRegistry` turns a name back into a
class only when the class is *trusted*:

* it was registered (:meth:`TypeRegistry.register`), found by its registered name or by its
  ``module:qualname``; or
* its module is one of the trusted modules, given by exact name or as a package prefix
  (``"myapp"`` trusts ``myapp.models``). Such a module is imported if it is not yet (the user
  named it); a module that is not trusted is never imported, whatever the data says.

The class found must be what the tag says (a dataclass, an Enum subclass, a pydantic model)
and, when found through its module, be defined there under that very qualname: the name is
looked up in the module's and classes' own namespaces, never through ``getattr`` hooks or
re-exports.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

from runeflow.codec.base import short_repr, type_path
from runeflow.errors import CodecError

__all__ = ["FORM_KINDS", "Registration", "TypeRegistry", "builtin_form", "how_to_trust"]

FORM_KINDS = {"e": "an Enum subclass", "dc": "a dataclass", "pd": "a pydantic model class"}
"""The tags written with a type's built-in form, and what each requires of the type."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Registration:
    """A type registered with a codec."""

    type: type
    """The registered class."""
    name: str
    """The name written in encoded data (``t``)."""
    tag: str
    """``"x"`` for a type with encode/decode functions, else its built-in form's tag."""
    encode: Callable[[Any], Any] | None = None
    """For ``"x"``: turns an instance into a value the codec can encode."""
    decode: Callable[[Any], Any] | None = None
    """For ``"x"``: turns that value back into an instance."""


def builtin_form(cls: type) -> str | None:
    """The tag of ``cls``'s built-in form (``"e"``, ``"dc"``, ``"pd"``), or ``None``."""
    if issubclass(cls, enum.Enum):
        return "e"
    if dataclasses.is_dataclass(cls):
        return "dc"
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return "pd"
    return None


def _accepts(tag: str, cls: type) -> bool:
    if tag == "e":
        return issubclass(cls, enum.Enum)
    if tag == "dc":
        return dataclasses.is_dataclass(cls)
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def how_to_trust(qualname: str, module: str) -> str:
    """The fix named by trust errors, for a type ``qualname`` defined in ``module``."""
    short = qualname.rpartition(".")[2]
    return (
        f"register it with rf.register_type({short}) (or @rf.register_type on the class; "
        f"codec.register({short}) for a codec of your own), or trust its module with "
        f"JsonCodec(trusted_modules=[{module!r}])"
    )


_MAX_PATH = 300
"""Longer ``module:qualname`` paths in stored data are refused as malformed."""


def _is_dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


class TypeRegistry:
    """Registered types and trusted modules of one codec (see the module docstring)."""

    def __init__(self) -> None:
        self._by_type: dict[type, Registration] = {}
        self._by_name: dict[str, Registration] = {}
        self._by_path: dict[str, Registration] = {}
        self._trusted: tuple[str, ...] = ()
        self._resolved: dict[tuple[str, str], type] = {}

    @property
    def trusted_modules(self) -> tuple[str, ...]:
        """The trusted module names and package prefixes."""
        return self._trusted

    def registrations(self) -> tuple[Registration, ...]:
        """Every registration, oldest first."""
        return tuple(self._by_type.values())

    def register(
        self,
        cls: type,
        *,
        encode: Callable[[Any], Any] | None,
        decode: Callable[[Any], Any] | None,
        name: str | None,
    ) -> Registration:
        """Register ``cls`` (see :meth:`runeflow.codec.JsonCodec.register`)."""
        if not isinstance(cls, type):
            raise CodecError(
                f"register() takes a class, not {cls!r}: pass the type whose instances you "
                "want to store",
                type_name=type(cls).__qualname__,
            )
        path = type_path(cls)
        if name is not None and (not isinstance(name, str) or not name):
            raise CodecError(
                f"the name to register {path} under must be a non-empty string, not {name!r}",
                type_name=path,
            )
        if encode is None and decode is None:
            tag = builtin_form(cls)
            if tag is None:
                raise CodecError(
                    f"cannot register {path} without encode= and decode=: only dataclasses, "
                    "Enum subclasses and pydantic models have a built-in form; pass "
                    f"register({cls.__qualname__}, encode=..., decode=...)",
                    type_name=path,
                )
        elif encode is None or decode is None:
            missing = "encode" if encode is None else "decode"
            raise CodecError(
                f"cannot register {path} without {missing}=: give both encode= and decode= "
                "(or neither, for a dataclass, an Enum or a pydantic model)",
                type_name=path,
            )
        elif not callable(encode) or not callable(decode):
            raise CodecError(f"encode= and decode= for {path} must be callables", type_name=path)
        else:
            tag = "x"
        reg = Registration(type=cls, name=name or path, tag=tag, encode=encode, decode=decode)
        self._by_type[cls] = reg
        self._by_name[reg.name] = reg
        self._by_path[path] = reg
        self._resolved.clear()
        return reg

    def trust(self, modules: Iterable[str]) -> None:
        """Trust the types defined in ``modules`` (exact names or package prefixes)."""
        if isinstance(modules, str):
            modules = (modules,)
        added = list(self._trusted)
        for module in modules:
            if not isinstance(module, str) or not _is_dotted_name(module):
                raise CodecError(
                    f"a trusted module must be a module name such as 'myapp.models', not {module!r}"
                )
            if module not in added:
                added.append(module)
        self._trusted = tuple(added)
        self._resolved.clear()

    def module_trusted(self, module: str) -> bool:
        """True when ``module`` is a trusted module or inside a trusted package."""
        return any(module == m or module.startswith(m + ".") for m in self._trusted)

    def for_type(self, cls: type) -> Registration | None:
        """The registration that encodes instances of ``cls``, if any.

        ``cls``'s own registration, else the nearest base's when that base has encode and
        decode functions (a built-in form names one exact type, so it is not inherited).
        """
        reg = self._by_type.get(cls)
        if reg is not None:
            return reg
        for base in cls.__mro__[1:]:
            reg = self._by_type.get(base)
            if reg is not None and reg.tag == "x":
                return reg
        return None

    def named(self, name: str) -> Registration | None:
        """The registration stored data calls ``name`` (an ``"x"`` tag's ``t``), if any."""
        return self._by_name.get(name)

    def resolve(self, tag: str, name: str) -> type:
        """The trusted class that a ``"dc"``, ``"e"`` or ``"pd"`` tag's ``t`` names.

        Raises:
            CodecError: the tag is unknown, the name is malformed or not trusted (nothing is
                imported then), or the class is not what the tag says.
        """
        cached = self._resolved.get((tag, name))
        if cached is not None:
            return cached
        kind = FORM_KINDS.get(tag)
        if kind is None:
            raise CodecError(
                f"unknown type tag {short_repr(tag)} in stored data: it is damaged or was "
                "written by a newer runeflow"
            )
        reg = self._by_name.get(name) or self._by_path.get(name)
        cls = reg.type if reg is not None else self._find_trusted(name, kind)
        if not _accepts(tag, cls):
            raise CodecError(
                f"stored data names {short_repr(name, 120)} as {kind}, but it is not {kind}: "
                "refusing to use it",
                type_name=name,
            )
        self._resolved[(tag, name)] = cls
        return cls

    def _find_trusted(self, path: str, kind: str) -> type:
        """The class at ``path`` (``module:qualname``) in a trusted module."""
        module_name, _, qualname = path.partition(":")
        if (
            len(path) > _MAX_PATH
            or not _is_dotted_name(module_name)
            or not _is_dotted_name(qualname)
        ):
            raise CodecError(
                f"malformed type path {short_repr(path, 120)} in stored data: expected "
                "'module:qualname' naming a registered type",
                type_name=path,
            )
        if not self.module_trusted(module_name):
            raise CodecError(
                f"stored data names type {path!r} ({kind}), which this codec does not trust, "
                f"so nothing was imported: if the type is yours, "
                f"{how_to_trust(qualname, module_name)}, before reading",
                type_name=path,
            )
        module = sys.modules.get(module_name)
        if module is None:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise CodecError(
                    f"stored data names type {path!r}, but its trusted module "
                    f"{module_name!r} cannot be imported ({type(exc).__name__}: {exc}): make "
                    "sure the code that defines it is importable",
                    type_name=path,
                ) from exc
        obj: Any = module
        for part in qualname.split("."):
            namespace = getattr(obj, "__dict__", None)
            obj = namespace.get(part) if namespace is not None else None
            if obj is None:
                raise CodecError(
                    f"stored data names type {path!r}, but module {module_name!r} defines no "
                    f"{qualname!r} (renamed or moved?): register the type under that name "
                    f"(rf.register_type(cls, name={path!r})) to read the data",
                    type_name=path,
                )
        if not isinstance(obj, type):
            raise CodecError(
                f"stored data names {path!r} as {kind}, but it is not a class: refusing to use it",
                type_name=path,
            )
        if obj.__module__ != module_name or obj.__qualname__ != qualname:
            raise CodecError(
                f"stored data names {path!r} as {kind}, but that is another name for "
                f"{type_path(obj)}: refusing to use it (register the class to read the data)",
                type_name=path,
            )
        return obj
