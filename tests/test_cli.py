"""The ``runeflow`` command, driven as a user drives it: in subprocesses, on SQLite files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = Path(__file__).resolve().parent / "_cli_flows.py"
EXAMPLE = "examples/order_fulfillment.py:workflow"
ORDER = '{"customer_id": "cust-456", "items": ["widget-a", "widget-b"]}'
SCRIPT = Path(sys.executable).with_name("runeflow")

pytestmark = pytest.mark.slow


def runeflow_command() -> list[str]:
    """The installed console script, or ``python -m runeflow`` when it is not installed."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "runeflow"]


def cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "RUNEFLOW_STORE"}
    environment.update(env or {})
    return subprocess.run(
        [*runeflow_command(), *args],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def flow(attr: str) -> str:
    return f"{FLOWS}:{attr}"


def show(workflow_id: str, cwd: Path) -> dict[str, Any]:
    out = cli("show", workflow_id, "--format", "json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """A fresh working directory holding a copy of the examples."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


# --- run, list, show --------------------------------------------------------------------------


def test_run_the_example_to_completion_on_sqlite(cwd: Path) -> None:
    out = cli("run", EXAMPLE, "--input", ORDER, "--id", "order-1", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "decision": {"approved": True, "shipping_days": 3, "shipping_cost": 5.99}
    }
    assert "instance order-1 (order_fulfillment): idle, 5 step(s)" in out.stderr
    assert (cwd / "runeflow.db").is_file()  # the embedded default, in the current directory


def test_list_and_show_the_instance(cwd: Path) -> None:
    assert cli("run", EXAMPLE, "--input", ORDER, "--id", "order-1", cwd=cwd).returncode == 0

    listed = cli("list", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    header, rule, row = listed.stdout.splitlines()
    assert header.split() == [
        "id",
        "workflow",
        "status",
        "failures",
        "events",
        "created",
        "updated",
        "owner",
        "error",
    ]
    assert set(rule.replace(" ", "")) == {"-"}
    assert row.split()[:4] == ["order-1", "order_fulfillment", "idle", "0"]
    as_json = json.loads(cli("list", "--format", "json", cwd=cwd).stdout)
    assert [(i["id"], i["status"]) for i in as_json] == [("order-1", "idle")]
    assert (as_json[0]["owner"], as_json[0]["error"]) == (None, None)  # released, loadable
    assert as_json[0]["definition"] == f"{cwd / 'examples' / 'order_fulfillment.py'}:workflow"
    assert json.loads(cli("list", "--status", "waiting", "--format", "json", cwd=cwd).stdout) == []

    text = cli("show", "order-1", cwd=cwd)
    assert text.returncode == 0, text.stderr
    assert re.search(r"^status\s+idle$", text.stdout, flags=re.M)
    assert re.search(r"^screen_fraud\s+step\s+ran\s+1\s+0\s+0\.[23]\d\d$", text.stdout, flags=re.M)
    assert "event log" not in text.stdout

    data = show("order-1", cwd)
    assert data["status"] == "idle"
    assert data["results"] == {
        "decision": {"approved": True, "shipping_days": 3, "shipping_cost": 5.99}
    }
    assert data["productions"]["screen_fraud"] == [{"order_id": "cust-456", "risk": "low"}]
    assert [s["component"] for s in data["steps"]] == [
        "validate_order",
        "check_inventory",
        "screen_fraud",
        "estimate_shipping",
        "decide_fulfillment",
    ]
    assert data["open_waits"] == data["timers"] == data["failures"] == []

    events = cli("show", "order-1", "--events", cwd=cwd)
    assert "event log" in events.stdout
    assert events.stdout.count("runnable_completed") == 5
    log = show_events = json.loads(
        cli("show", "order-1", "--events", "--format", "json", cwd=cwd).stdout
    )["log"]
    assert log[0]["kind"] == "workflow_created" and len(show_events) == data["events"]


def test_results_as_a_table_are_plain_text_in_a_pipe(cwd: Path) -> None:
    out = cli("run", EXAMPLE, "--input", ORDER, "--format", "table", cwd=cwd)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["output", "value"]
    assert lines[2].startswith('decision  {"approved": true')
    assert "\x1b[" not in out.stdout + out.stderr  # no terminal codes when not a terminal


def test_store_from_the_environment_and_from_the_option(cwd: Path) -> None:
    env = {"RUNEFLOW_STORE": "sqlite:///from-env.db"}
    assert cli("run", EXAMPLE, "--input", ORDER, "--id", "e", cwd=cwd, env=env).returncode == 0
    assert (cwd / "from-env.db").is_file() and not (cwd / "runeflow.db").exists()
    assert "e" in cli("list", cwd=cwd, env=env).stdout
    absolute = f"sqlite:///{cwd / 'other.db'}"
    out = cli("run", EXAMPLE, "--input", ORDER, "--store", absolute, "--id", "o", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert [
        i["id"]
        for i in json.loads(cli("list", "--store", absolute, "--format", "json", cwd=cwd).stdout)
    ] == ["o"]
    memory = cli("run", EXAMPLE, "--input", ORDER, "--store", "memory://", cwd=cwd)
    assert memory.returncode == 0 and "approved" in memory.stdout


@pytest.mark.parametrize("executor", ["processes", "asyncio", "inline"])
def test_executors(cwd: Path, executor: str) -> None:
    out = cli("run", flow("build_counter"), "--input", "4", "--executor", executor, cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"total": 4}


def test_a_module_path_and_input_from_stdin_and_files(cwd: Path) -> None:
    env = {"PYTHONPATH": str(FLOWS.parent)}
    piped = cli(
        "run", "_cli_flows:build_counter", "--input", "-", "--id", "c", cwd=cwd, env=env, stdin="5"
    )
    assert piped.returncode == 0, piped.stderr
    (cwd / "more.json").write_text("6")
    fed = cli("send", "c", "@more.json", "--trust", "_cli_flows", cwd=cwd, env=env)
    assert fed.returncode == 0, fed.stderr
    assert json.loads(fed.stdout) == {"total": 11}
    assert show("c", cwd)["definition"] == "_cli_flows:build_counter"


def test_a_failed_step_exits_1_and_is_drawn_failed_with_its_downstream_skipped(cwd: Path) -> None:
    out = cli("run", flow("build_payment"), "--input", '{"id": 3}', "--id", "p", cwd=cwd)
    assert out.returncode == 1
    assert json.loads(out.stdout) == {"receipt": None, "notify": "notified 3"}
    assert "failed: charge: RuntimeError: payment service down for order 3" in out.stderr
    assert show("p", cwd)["failures"][0]["component"] == "charge"

    graph = parse_mermaid(cli("graph", "--id", "p", cwd=cwd).stdout)
    assert graph.states == {
        "check": "ran",
        "charge": "failed",
        "receipt": "skipped",
        "notify": "ran",
    }
    assert graph.labels["charge"] == "charge<br/>failed 1"


# --- waits, resume, send, stop ----------------------------------------------------------------


def test_a_waiting_workflow_resumed_from_the_cli(cwd: Path) -> None:
    out = cli("run", flow("approval"), "--input", '{"id": 7}', "--id", "a", cwd=cwd)
    assert out.returncode == 3, out.stderr
    assert "waiting: step 'manager' for approved | rejected" in out.stderr
    assert "runeflow resume a EVENT" in out.stderr
    data = show("a", cwd)
    assert data["status"] == "waiting"
    assert [(w["step"], w["events"]) for w in data["open_waits"]] == [
        ("manager", ["approved", "rejected"])
    ]
    waiting = parse_mermaid(cli("graph", "--id", "a", cwd=cwd).stdout)
    assert waiting.states["manager"] == "waiting" and waiting.states["check"] == "ran"

    untold = cli("resume", "a", "approved", cwd=cwd)  # the store's path is not imported
    assert untold.returncode == 2
    assert f"pass --definition {FLOWS.resolve()}:approval" in untold.stderr
    assert show("a", cwd)["status"] == "waiting"

    undeclared = cli("resume", "a", "maybe", "--definition", flow("approval"), cwd=cwd)
    assert undeclared.returncode == 2
    assert "'maybe' is not accepted" in undeclared.stderr

    resumed = cli(
        "resume",
        "a",
        "approved",
        "--payload",
        '{"by": "ann"}',
        "--definition",
        flow("approval"),
        cwd=cwd,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"outcome": "shipped 7 (approved by ann)", "refund": None}
    assert show("a", cwd)["status"] == "idle"

    again = cli("resume", "a", "approved", "--definition", flow("approval"), cwd=cwd)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "no open wait" in again.stderr


def test_send_feeds_more_input(cwd: Path) -> None:
    assert cli("run", flow("build_counter"), "--input", "2", "--id", "c", cwd=cwd).returncode == 0
    for value, total in ((5, 7), (10, 17)):
        out = cli("send", "c", str(value), "--definition", flow("build_counter"), cwd=cwd)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"total": total}
    assert show("c", cwd)["inputs"] == [2, 5, 10]


def test_stop_refuses_further_events_and_input(cwd: Path) -> None:
    assert (
        cli("run", flow("approval"), "--input", '{"id": 1}', "--id", "s", cwd=cwd).returncode == 3
    )
    out = cli("stop", "s", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert "stopped (it was waiting)" in out.stderr
    assert show("s", cwd)["status"] == "stopped"
    refused = cli("resume", "s", "approved", "--definition", flow("approval"), cwd=cwd)
    assert refused.returncode == 2 and "stopped" in refused.stderr
    assert cli("send", "s", "{}", "--definition", flow("approval"), cwd=cwd).returncode == 2
    assert cli("stop", "s", cwd=cwd).returncode == 0  # stopping twice is harmless


def test_ctrl_c_leaves_the_instance_running_in_the_store_for_a_worker(cwd: Path) -> None:
    proc = subprocess.Popen(
        [*runeflow_command(), "run", flow("build_slow"), "--input", "0", "--id", "slow"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def first_step_done() -> bool:
        out = cli("show", "slow", "--format", "json", cwd=cwd)
        return out.returncode == 0 and json.loads(out.stdout)["steps"][0]["completed"] == 1

    wait_for(first_step_done, 15, "the first step to complete")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "interrupted; the instance is checkpointed" in stderr and "Traceback" not in stderr
    assert show("slow", cwd)["status"] == "running"  # what a worker recovers


# --- graphs -----------------------------------------------------------------------------------


class Mermaid:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.shapes: dict[str, str] = {}
        self.edges: list[tuple[str, str, str | None]] = []
        self.states: dict[str, str] = {}


_SHAPES = {
    "((": "))",
    "{{": "}}",
    "[[": "]]",
    "[(": ")]",
    "[/": "/]",
    "[\\": "\\]",
    "{": "}",
    "[": "]",
}


def parse_mermaid(text: str) -> Mermaid:
    """Check a flowchart line by line against Mermaid's syntax; return what it draws."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    graph, class_defs, names = Mermaid(), set(), {}
    for line in lines[1:]:
        assert line.startswith("    "), line
        body = line[4:]
        if body.startswith("%%"):
            continue
        if m := re.fullmatch(
            r"(input|n\d+)(\(\(|\{\{|\[\[|\[\(|\[/|\[\\|\{|\[)\"([^\"]*)\"(.+)", body
        ):
            node_id, opening, label, closing = m.groups()
            assert _SHAPES[opening] == closing, line
            names[node_id] = label.split("<br/>")[0]
            graph.labels[names[node_id]] = label
            graph.shapes[names[node_id]] = opening + closing
        elif m := re.fullmatch(r"(input|n\d+) -->(?:\|(\d+)\|)? (n\d+)", body):
            source, position, target = m.groups()
            assert source in names and target in names, f"edge before its nodes: {line}"
            graph.edges.append((names[source], names[target], position))
        elif m := re.fullmatch(
            r"classDef (\w+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}[\w:,\- ]*", body
        ):
            class_defs.add(m.group(1))
        elif m := re.fullmatch(r"class ((?:n\d+,)*n\d+) (\w+)", body):
            assert m.group(2) in class_defs, line
            for node_id in m.group(1).split(","):
                graph.states[names[node_id]] = m.group(2)
        else:
            pytest.fail(f"not a Mermaid flowchart line: {line!r}")
    return graph


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Check the DOT text's structure; return its node labels by id and its edges."""
    lines = text.splitlines()
    assert re.fullmatch(r'digraph "(?:[^"\\]|\\.)*" \{', lines[0]) and lines[-1] == "}"
    labels: dict[str, str] = {}
    edges = []
    for line in lines[1:-1]:
        if m := re.fullmatch(r'    (input|n\d+) \[label="((?:[^"\\]|\\.)*)", shape=\w+.*\];', line):
            labels[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r'    (input|n\d+) -> (n\d+)(?: \[label="\d+"\])?;', line):
            assert m.group(1) in labels and m.group(2) in labels, line
            edges.append((m.group(1), m.group(2)))
        else:
            assert re.fullmatch(r"    (rankdir=LR|(node|edge) \[.*\]);", line), line
    return labels, edges


def test_graph_mermaid_draws_every_kind_with_its_shape(cwd: Path) -> None:
    out = cli("graph", flow("build_every_kind"), cwd=cwd)
    assert out.returncode == 0, out.stderr
    graph = parse_mermaid(out.stdout)
    assert graph.shapes == {
        "input": "(())",
        "valid": "{}",
        "square": "[//]",
        "sum": "[\\\\]",
        "running_total": "[()]",
        "machine.state": "[[]]",
        "confirm": "{{}}",
        "join": "[]",
    }
    assert ("sum", "join", "1") in graph.edges and ("confirm", "join", "2") in graph.edges
    assert ("input", "valid", None) in graph.edges
    assert '    %% workflow every "kind" <of> #component' in out.stdout.splitlines()


def test_labels_are_escaped() -> None:
    from runeflow.cli.graph import to_dot, to_mermaid
    from runeflow.view import NodeInfo

    nodes = [NodeInfo(name='say "hi" <b>#1\\', kind="step", parents=("root",))]
    mermaid = to_mermaid("w", nodes)
    assert parse_mermaid(mermaid).edges == [("input", "say #quot;hi#quot; #lt;b#gt;#35;1\\", None)]
    assert '    n0["say #quot;hi#quot; #lt;b#gt;#35;1\\"]' in mermaid.splitlines()
    labels, _ = parse_dot(to_dot('a "b"', nodes))
    assert labels["n0"] == 'say \\"hi\\" <b>#1\\\\'


def test_graph_dot_is_valid_and_renders(cwd: Path) -> None:
    out = cli("graph", EXAMPLE, "--format", "dot", cwd=cwd)
    assert out.returncode == 0, out.stderr
    labels, edges = parse_dot(out.stdout)
    assert sorted(labels.values()) == sorted(
        [
            "input",
            "validate_order",
            "check_inventory",
            "screen_fraud",
            "estimate_shipping",
            "decide_fulfillment",
        ]
    )
    assert len(edges) == 7
    every = cli("graph", flow("build_every_kind"), "--format", "dot", cwd=cwd).stdout
    parse_dot(every)
    assert (
        cli("run", flow("build_payment"), "--input", '{"id": 1}', "--id", "p", cwd=cwd).returncode
        == 1
    )
    state = cli("graph", "--id", "p", "--format", "dot", cwd=cwd).stdout
    assert 'label="charge\\nfailed 1"' in state and 'style="filled,dashed"' in state
    dot = shutil.which("dot")
    if dot is None:
        missing = "graphviz `dot` is not installed: structure checked, rendering not"
        if os.environ.get("CI") == "true":
            pytest.fail(missing + " (.ci/run installs it)")
        pytest.skip(missing)
    for text in (out.stdout, every, state):
        svg = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True, timeout=30)
        assert svg.returncode == 0, svg.stderr
        assert "<svg" in svg.stdout and svg.stderr == ""


def test_graph_needs_a_definition_or_an_id(cwd: Path) -> None:
    for args in ((), (EXAMPLE, "--id", "x")):
        out = cli("graph", *args, cwd=cwd)
        assert out.returncode == 2 and "not both or neither" in out.stderr


# --- the worker -------------------------------------------------------------------------------


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def open_waits(workflow_id: str, cwd: Path) -> list[str]:
    return [w["step"] for w in show(workflow_id, cwd)["open_waits"]]


def test_a_worker_fires_timers_takes_resumes_and_stops_cleanly_on_sigterm(cwd: Path) -> None:
    for wid in ("t1", "t2"):
        out = cli(
            "run", flow("build_cool_off"), "--input", json.dumps({"id": wid}), "--id", wid, cwd=cwd
        )
        assert out.returncode == 3, out.stderr
        assert "a `runeflow worker` fires it" in out.stderr
    worker = subprocess.Popen(
        [
            *runeflow_command(),
            *("worker", "--poll-interval", "0.1", "--workflows", flow("build_cool_off")),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The one-second timers fire in the worker: both instances move on to the manager.
        wait_for(
            lambda: all(open_waits(w, cwd) == ["manager"] for w in ("t1", "t2")),
            15,
            "the worker to fire the cool-off timers",
        )
        assert [p for p in show("t1", cwd)["productions"]["cool_off"]] == [
            {"event": "timeout", "payload": None, "step": "cool_off", "input": {"id": "t1"}}
        ]
        # The worker released t1 once it settled (waiting, no timer): resume works from here
        # whoever holds it.
        out = cli(
            "resume",
            "t1",
            "approved",
            "--payload",
            '{"by": "ann"}',
            "--trust",
            str(FLOWS.resolve()),
            cwd=cwd,
        )
        assert out.returncode == 0, out.stderr
        wait_for(lambda: show("t1", cwd)["status"] == "idle", 15, "the worker to apply it")
        assert show("t1", cwd)["results"] == {"outcome": "shipped t1 (approved by ann)"}
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert "serving" in stderr
    assert "stopped; unfinished instances are saved and resumable" in stderr
    assert "Traceback" not in stderr
    # t2 was left waiting by the worker's shutdown: any process can pick it up.
    assert show("t2", cwd)["status"] == "waiting"
    out = cli("resume", "t2", "approved", "--definition", flow("build_cool_off"), cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"outcome": "shipped t2 (approved by nobody)"}


def test_worker_registers_modules_and_refuses_bad_ones(cwd: Path) -> None:
    out = cli("worker", "--workflows", "no_such_module_here", cwd=cwd)
    assert out.returncode == 2 and "cannot load 'no_such_module_here'" in out.stderr
    (cwd / "empty_module.py").write_text("X = 1\n")
    out = cli("worker", "--workflows", "empty_module.py", cwd=cwd)
    assert out.returncode == 2 and "defines no Workflow" in out.stderr


# --- bad input --------------------------------------------------------------------------------


BAD_INPUT = {
    "malformed input JSON": (["run", EXAMPLE, "--input", "{oops"], "--input is not valid JSON"),
    "malformed payload": (["resume", "x", "go", "--payload", "[1,"], "--payload is not valid"),
    "unknown file": (["run", "nowhere.py:workflow", "--input", "{}"], "no file 'nowhere.py'"),
    "unknown attribute": (
        ["run", "examples/order_fulfillment.py:nope", "--input", "{}"],
        "has no attribute 'nope'",
    ),
    "not a workflow": (["run", "examples/order_fulfillment.py:ORDER", "--input", "{}"], "got dict"),
    "no attribute given": (
        ["run", "examples/order_fulfillment.py", "--input", "{}"],
        "names no workflow",
    ),
    "unknown module": (["run", "no_such_pkg.flows:wf", "--input", "{}"], "cannot import"),
    "unknown id": (["show", "nobody"], "unknown instance 'nobody'"),
    "unknown id to resume": (["resume", "nobody", "go"], "unknown instance 'nobody'"),
    "bad store URL": (["list", "--store", "mongo://x"], "unknown store URL"),
    "unreachable SQLite store": (
        ["run", EXAMPLE, "--input", "{}", "--store", "sqlite:////no/such/dir/x.db"],
        "cannot open the store sqlite:////no/such/dir/x.db: no directory '/no/such/dir'",
    ),
    "SQLite store in a file that is no database": (
        ["list", "--store", "sqlite:///examples/order_fulfillment.py"],
        "cannot open the store",
    ),
    "unreachable PostgreSQL store": (
        ["list", "--store", "postgresql://u:secret@127.0.0.1:9/x"],
        "cannot reach the store postgresql://u:***@127.0.0.1:9/x",
    ),
    "bad option": (["run", EXAMPLE, "--input", "{}", "--executor", "gpu"], "invalid choice"),
    "missing input": (["run", EXAMPLE], "the following arguments are required: --input"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(cwd: Path, case: str) -> None:
    args, message = BAD_INPUT[case]
    if args[0] in ("show", "resume"):  # a store exists, without that instance
        assert cli("run", flow("build_counter"), "--input", "1", cwd=cwd).returncode == 0
    out = cli(*args, cwd=cwd)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr and "secret" not in out.stderr
    assert out.stdout == ""


def test_debug_shows_the_traceback(cwd: Path) -> None:
    out = cli("run", "examples/order_fulfillment.py:nope", "--input", "{}", "--debug", cwd=cwd)
    assert out.returncode == 2
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.rstrip().splitlines()[-1].startswith("runeflow: error: ")


def test_an_instance_id_cannot_be_reused(cwd: Path) -> None:
    assert cli("run", EXAMPLE, "--input", ORDER, "--id", "dup", cwd=cwd).returncode == 0
    out = cli("run", EXAMPLE, "--input", ORDER, "--id", "dup", cwd=cwd)
    assert out.returncode == 2 and "already exists" in out.stderr


def test_read_only_commands_leave_no_database_behind(cwd: Path) -> None:
    out = cli("list", cwd=cwd)
    assert out.returncode == 0 and out.stdout.splitlines()[0].split()[0] == "id"
    assert cli("show", "x", cwd=cwd).returncode == 2
    assert not (cwd / "runeflow.db").exists()


def test_help_lists_the_commands_and_exit_codes(cwd: Path) -> None:
    out = cli("--help", cwd=cwd)
    assert out.returncode == 0
    commands = ("run", "list", "show", "wait", "resume", "send", "stop", "delete", "recover")
    for command in (*commands, "graph", "worker"):
        assert re.search(rf"^    {command}\s", out.stdout, flags=re.M), command
    assert "3  the instance is waiting" in out.stdout
    assert "4  `runeflow wait` timed out" in out.stdout
    assert "global options (--store, --debug, -v) go before or after the command" in out.stdout
    assert cli(cwd=cwd).returncode == 2


def test_importing_runeflow_or_its_cli_never_imports_rich() -> None:
    code = (
        "import sys, runeflow, runeflow.cli, runeflow.cli.output;"
        "assert 'rich' not in sys.modules, 'rich imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_tables_and_progress_are_drawn_by_rich_on_a_terminal(cwd: Path) -> None:
    pytest.importorskip("rich", reason="rich (the cli extra) is not installed")
    pty = pytest.importorskip("pty", reason="no pseudo-terminals on this platform")
    assert cli("run", EXAMPLE, "--input", ORDER, "--id", "tty", cwd=cwd).returncode == 0
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*runeflow_command(), "list"],
        cwd=cwd,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert proc.wait(timeout=30) == 0
    text = output.decode()
    assert "━" in text or "─" in text  # rich's table rules, not the plain dashes
    assert "tty" in text and "order_fulfillment" in text


# --- documentation ----------------------------------------------------------------------------


def test_the_api_reference_is_generated_from_the_current_docstrings() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_api_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    api = (ROOT / "docs" / "api.md").read_text()
    for name in ("Runner", "Workflow", "await_event", "store_from_url", "InstanceInfo"):
        assert f'<a id="rf.{name}"></a>' in api


def test_the_tutorial_excerpts_match_the_examples_and_cover_every_lesson() -> None:
    import ast

    tutorial = (ROOT / "docs" / "tutorial.md").read_text()
    excerpts = re.findall(r"<!-- excerpt: (\S+):(\w+) -->\n```python\n(.*?)\n```", tutorial, re.S)
    assert len(excerpts) >= 8
    for path, name, code in excerpts:
        text = (ROOT / path).read_text()
        node = next(
            n
            for n in ast.parse(text).body
            if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name
        )
        assert node.end_lineno is not None
        start = min([d.lineno for d in node.decorator_list] + [node.lineno])  # decorators too
        current = "\n".join(text.splitlines()[start - 1 : node.end_lineno])
        assert code == current, f"docs/tutorial.md's excerpt of {path}:{name} is out of date"
    lessons = sorted(p.name for p in (ROOT / "examples").glob("tutorial_*.py"))
    assert len(lessons) == 10
    for lesson in lessons:
        assert f"(../examples/{lesson})" in tutorial
