"""Render the API reference, docs/api.md, from the docstrings of ``runeflow.__all__``.

    python scripts/gen_api_docs.py           # write docs/api.md
    python scripts/gen_api_docs.py --check   # exit 1 if docs/api.md is out of date

Every public name is listed under the module that defines it, with its signature and its
docstring; classes also list their public methods and properties, and the docstrings of
their fields (the string literal under each annotated attribute). ``tests/test_cli.py``
checks that the committed file equals this script's output, so it cannot go stale.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "api.md"

HEADER = """\
# API reference

Generated from the docstrings by `python scripts/gen_api_docs.py`; do not edit by hand.
Everything here is importable as `rf.<name>` after `import runeflow as rf`, the one supported
import path. The [tutorial](tutorial.md) shows these names at work; the `runeflow` command
is described in the README.
"""


def render() -> str:
    """The whole reference, as Markdown."""
    sys.path.insert(0, str(ROOT / "src"))
    import runeflow

    groups: dict[str, list[tuple[str, Any]]] = {}
    for name in runeflow.__all__:
        obj = getattr(runeflow, name)
        module = obj.__name__ if isinstance(obj, types.ModuleType) else _module_of(obj)
        groups.setdefault(module, []).append((name, obj))
    parts = [HEADER, _contents(groups)]
    for module in sorted(groups):
        parts.append(_module_section(module, groups[module]))
    return "\n".join(parts).rstrip() + "\n"


def _module_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    if isinstance(obj, type | types.FunctionType) and module:
        return str(module)
    return "runeflow"  # constants: ROOT, __version__


def _contents(groups: dict[str, list[tuple[str, Any]]]) -> str:
    lines = ["## Contents", ""]
    for module in sorted(groups):
        names = ", ".join(f"[`{n}`](#{_anchor(n)})" for n, _ in groups[module])
        lines.append(f"- `{module}`: {names}")
    return "\n".join(lines) + "\n"


def _anchor(name: str) -> str:
    return f"rf.{name}"


def _a(name: str) -> str:
    """An explicit anchor: heading ids would clash (``Map`` and ``map``)."""
    return f'<a id="{_anchor(name)}"></a>\n\n'


def _module_section(module: str, items: list[tuple[str, Any]]) -> str:
    parts = [f"## `{module}`\n"]
    mod = sys.modules.get(module)
    summary = _first_paragraph(inspect.getdoc(mod) or "") if mod is not None else ""
    if summary and module != "runeflow":
        parts.append(_inline(summary) + "\n")
    for name, obj in items:
        parts.append(_item(name, obj))
    return "\n".join(parts)


def _item(name: str, obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return _module_item(name, obj)
    if isinstance(obj, type):
        return _class_item(name, obj)
    if callable(obj):
        doc = md(inspect.getdoc(obj) or "")
        return f"{_a(name)}### `rf.{name}{_signature(obj)}`\n\n{doc}\n"
    return f"{_a(name)}### `rf.{name}`\n\n`{name} = {obj!r}`\n"


def _module_item(name: str, module: types.ModuleType) -> str:
    lines = [f"{_a(name)}### `rf.{name}`", "", md(inspect.getdoc(module) or ""), ""]
    for cls_name in getattr(module, "__all__", []):
        member = getattr(module, cls_name)
        if isinstance(member, type) and member.__module__ == module.__name__:
            lines.append(f"- `{cls_name}`: {_inline(_first_line(inspect.getdoc(member) or ''))}")
    return "\n".join(lines) + "\n"


def _class_item(name: str, cls: type) -> str:
    bases = [b.__name__ for b in cls.__bases__ if b is not object]
    kind = "exception" if issubclass(cls, BaseException) else "class"
    title = f"{_a(name)}### {kind} `rf.{name}{_signature(cls)}`"
    lines = [title, ""]
    if bases:
        lines += [f"Bases: {', '.join(f'`{b}`' for b in bases)}", ""]
    lines += [md(inspect.getdoc(cls) or ""), ""]
    fields = _field_docs(cls)
    if fields:
        lines += ["**Fields**", ""]
        lines += [f"- `{field}`: {_indent_rest(md(doc))}" for field, doc in fields]
        lines.append("")
    for member_name, member in _public_members(cls):
        lines.append(_member(cls.__name__, member_name, member))
    return "\n".join(lines) + "\n"


def _public_members(cls: type) -> list[tuple[str, Any]]:
    if issubclass(cls, BaseException):
        return []
    out = []
    for member_name, member in vars(cls).items():
        if member_name.startswith("_"):
            continue
        if isinstance(member, property | staticmethod | classmethod | types.FunctionType):
            out.append((member_name, member))
    return out


def _member(owner: str, name: str, member: Any) -> str:
    if isinstance(member, property):
        doc = md(inspect.getdoc(member) or "")
        return f"#### property `{owner}.{name}`\n\n{doc}\n"
    fn = member.__func__ if isinstance(member, staticmethod | classmethod) else member
    prefix = "classmethod " if isinstance(member, classmethod) else ""
    doc = md(inspect.getdoc(fn) or "")
    return f"#### {prefix}`{owner}.{name}{_signature(fn)}`\n\n{doc}\n"


def _signature(obj: Any) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)" if callable(obj) else ""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _field_docs(cls: type) -> list[tuple[str, str]]:
    """``(field, docstring)`` for each annotated attribute followed by a string literal."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return []
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.ClassDef):
        return []
    out = []
    body = node.body
    for stmt, following in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            out.append((stmt.target.id, inspect.cleandoc(following.value.value)))
    return out


_SECTION = re.compile(
    r"^(Args|Arguments|Returns|Raises|Attributes|Yields|Example|Examples|Note|Notes):$"
)
_ENTRY = re.compile(r"^    (\*{0,2}[\w.]+(?: \([^)]*\))?):\s*(.*)$")


def md(doc: str) -> str:
    """A Google-style docstring as Markdown: sections become bold titles and lists, ``::``
    blocks and examples become code fences, reST roles and double backquotes plain code."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        section = _SECTION.match(line)
        block_follows = line.rstrip().endswith("::") or (
            section and section.group(1)[:7] == "Example"
        )
        if section:
            out += [f"**{section.group(1)}**", ""]
        elif line.rstrip().endswith("::"):
            out += [_inline(line.rstrip()[:-1]), ""]
        else:
            out.append(_inline(line))
        i += 1
        if not (section or block_follows):
            continue
        block, i = _indented_block(lines, i)
        if block_follows:
            out += ["```python", *textwrap.dedent("\n".join(block)).splitlines(), "```", ""]
        else:
            out += [*_entries(block), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _indented_block(lines: list[str], i: int) -> tuple[list[str], int]:
    while i < len(lines) and not lines[i].strip():
        i += 1
    block = []
    while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    return block, i


def _entries(block: list[str]) -> list[str]:
    items: list[str] = []
    for line in block:
        entry = _ENTRY.match(line)
        if entry:
            items.append(f"- `{entry.group(1)}`: {_inline(entry.group(2))}")
        elif items and line.strip():
            items[-1] += " " + _inline(line.strip())
        elif line.strip():
            items.append(f"- {_inline(line.strip())}")
    return items


def _inline(text: str) -> str:
    text = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _indent_rest(text: str) -> str:
    return text.replace("\n", "\n  ")


def _first_paragraph(text: str) -> str:
    return text.split("\n\n", 1)[0].strip()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
