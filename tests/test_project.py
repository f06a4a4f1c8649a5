"""The project's own promises: the README's commands, CI, and the examples."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test_command = quick_start_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci
    assert ci[-1] == test_command  # it is the last thing CI does


def test_the_main_job_example_runs(tmp_path: Path) -> None:
    main_command, _ = quick_start_commands()
    run = main_command.rsplit(" && ", 1)[1]
    assert run.startswith(".venv/bin/runeflow run examples/order_fulfillment.py:workflow ")
    script = Path(sys.executable).with_name("runeflow")
    runeflow = [str(script)] if script.exists() else [sys.executable, "-m", "runeflow"]
    store = f"sqlite:///{tmp_path / 'runeflow.db'}"  # keep the checkout clean
    out = subprocess.run(
        [*runeflow, *shlex.split(run)[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "RUNEFLOW_STORE": store},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["decision"]["approved"] is True


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_every_example_runs(path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr
