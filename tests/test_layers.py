"""The package's layering: no import circles (function-level imports included), the model
pure, and modules of a readable size."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


@functools.cache
def imports() -> dict[str, set[str]]:
    """Module -> the runeflow modules it imports anywhere (functions included), less the
    imports that only type checkers see."""
    known = modules()

    def owner(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.startswith("runeflow"):
                    deps |= {owner(f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {owner(a.name) for a in node.names if a.name.startswith("runeflow")}
        deps.discard(name)
        deps.discard("")
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circles_function_level_imports_included() -> None:
    assert cycles(imports()) == []


def test_workflow_replay_and_snapshot_import_in_one_direction() -> None:
    graph = imports()
    assert "runeflow.model.workflow" not in graph["runeflow.model.replay"]
    assert "runeflow.model.workflow" not in graph["runeflow.model.snapshot"]
    for name in ("replay", "snapshot"):  # not even for type checkers
        text = (SRC / "runeflow" / "model" / f"{name}.py").read_text()
        assert "runeflow.model.workflow import" not in text


def test_the_model_imports_nothing_above_it() -> None:
    allowed = ("runeflow.model", "runeflow.errors", "runeflow._aio")
    for name, deps in imports().items():
        if name.startswith("runeflow.model"):
            above = [d for d in deps if not d.startswith(allowed)]
            assert above == [], f"{name} imports {above}"


def test_modules_stay_under_800_lines() -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: lines for n, lines in long.items() if lines > 800} == {}
