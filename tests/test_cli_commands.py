"""The ``runeflow`` commands ``wait``, ``recover`` and ``delete``, global options before or
after the command, empty ids, and failures made visible (``list``, ``show``, ``run``, ``-v``).

Most cases call ``main([...])`` in this process on a SQLite file in ``tmp_path``; a few run
the installed command in a subprocess, as a user does.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import runeflow as rf
from runeflow.cli import main
from runeflow.cli.parser import build_parser, verbosity

TESTS = Path(__file__).resolve().parent
FLOWS = TESTS / "_cli_flows.py"
SCRIPT = Path(sys.executable).with_name("runeflow")
FAILURE_KEYS = {"component", "error_type", "message", "traceback", "attempt", "error"}


def flow(attr: str) -> str:
    return f"{FLOWS}:{attr}"


def runeflow_command() -> list[str]:
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "runeflow"]


class Cli:
    """``main([...])`` in this process, on one store file, with its output captured."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = tmp_path / "cli.db"
        self.url = f"sqlite:///{self.db}"
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """Run ``runeflow ARGS --store URL``; return the exit code, stdout and stderr."""
        self.capsys.readouterr()
        try:
            code = main([*args, "--store", self.url])
        except SystemExit as exc:  # argparse refused the arguments
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return code, out, err

    def store(self) -> rf.SQLiteStore:
        return rf.SQLiteStore(self.db)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("RUNEFLOW_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path, capsys)


def subprocess_cli(
    *args: str, cwd: Path, stdin: str | None = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNEFLOW_STORE"}
    return subprocess.run(
        [*runeflow_command(), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def take_lease_elsewhere(store: rf.Store, workflow_id: str) -> None:
    """Hold the instance's lease as a live worker on another host would."""
    assert store.acquire_lease(workflow_id, "worker-host:4242:abcd", 60.0) is not None


# --- global options before or after the command ---------------------------------------------


def test_global_options_parse_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["list"]).store is None  # the default: $RUNEFLOW_STORE, else...
    assert parser.parse_args(["--store", "a", "list"]).store == "a"  # not clobbered
    assert parser.parse_args(["list", "--store", "b"]).store == "b"
    assert parser.parse_args(["--store", "a", "list", "--store", "b"]).store == "b"
    assert parser.parse_args(["--debug", "show", "x"]).debug is True
    assert parser.parse_args(["show", "x", "--debug"]).debug is True
    assert parser.parse_args(["show", "x"]).debug is False
    assert verbosity(parser.parse_args(["list"])) == 0
    assert verbosity(parser.parse_args(["-v", "list"])) == 1
    assert verbosity(parser.parse_args(["list", "-vv"])) == 2
    assert verbosity(parser.parse_args(["-v", "list", "-v"])) == 2


def test_store_before_and_after_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    before = subprocess_cli(
        "--store", url, "run", flow("build_counter"), "--input", "3", "--id", "c", cwd=tmp_path
    )
    assert before.returncode == 0, before.stderr
    for args in (["--store", url, "list"], ["list", "--store", url]):
        out = subprocess_cli(*args, "--format", "json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert [i["id"] for i in json.loads(out.stdout)] == ["c"]
    assert not (tmp_path / "runeflow.db").exists()  # the default store was never used
    default = subprocess_cli("list", "--format", "json", cwd=tmp_path)
    assert default.returncode == 0 and json.loads(default.stdout) == []


# --- ids --------------------------------------------------------------------------------------

EMPTY_IDS = {
    "show": ["show", ""],
    "wait": ["wait", "   "],
    "run --id": ["run", flow("build_counter"), "--input", "1", "--id", ""],
    "graph --id": ["graph", "--id", " "],
    "resume": ["resume", "", "go"],
    "send": ["send", "\t", "1"],
    "stop": ["stop", ""],
    "delete": ["delete", "--yes", "a", ""],
    "recover": ["recover", ""],
}


@pytest.mark.parametrize("case", EMPTY_IDS, ids=list(EMPTY_IDS))
def test_an_empty_or_blank_id_is_a_usage_error(cli: Cli, case: str) -> None:
    code, out, err = cli(*EMPTY_IDS[case])
    assert code == 2
    assert err.count("\n") == 1 and "an instance id cannot be empty or only whitespace" in err
    assert out == "" and not cli.db.exists()


# --- wait -------------------------------------------------------------------------------------


def test_wait_on_a_settled_instance(cli: Cli) -> None:
    assert cli("run", flow("build_counter"), "--input", "2", "--id", "c")[0] == 0
    code, out, _ = cli("wait", "c")
    assert code == 0 and out.startswith("instance c (counter): idle")
    code, out, _ = cli("wait", "c", "--format", "json", "--timeout", "5")
    assert code == 0
    assert json.loads(out) == {
        "id": "c",
        "status": "idle",
        "results": {"total": 2},
        "failures": [],
        "error": None,
        "timed_out": False,
    }
    assert cli("run", flow("approval"), "--input", '{"id": 1}', "--id", "a")[0] == 3
    code, out, _ = cli("wait", "a")
    assert code == 0 and "waiting: step 'manager'" in out  # waiting is settled
    assert cli("wait", "nobody")[0] == 2


def test_wait_times_out_with_exit_4(cli: Cli) -> None:
    with cli.store() as store:  # submitted, and no worker runs it
        rf.Client(store).start_instance("counter", 1, id="queued")
    code, out, err = cli("wait", "queued", "--timeout", "0.2")
    assert code == 4 and out == ""
    assert "timed out after 0.2s: instance 'queued' is still running" in err
    assert "no runner holds it" in err and err.count("\n") == 1
    code, out, _ = cli("wait", "queued", "--timeout", "0", "--format", "json")
    assert code == 4
    assert json.loads(out)["status"] == "running" and json.loads(out)["timed_out"] is True

    assert cli("run", flow("approval"), "--input", '{"id": 1}', "--id", "a")[0] == 3
    code, _, err = cli("wait", "a", "--status", "idle", "--timeout", "0.1")
    assert code == 4 and "instance 'a' is waiting, not idle" in err
    assert cli("wait", "a", "--timeout", "-1")[0] == 2


def test_wait_follows_an_instance_another_runner_runs(cli: Cli) -> None:
    from _cli_flows import build_counter

    with cli.store() as store:
        rf.Client(store).start_instance("counter", 5, id="w")
    done = threading.Event()

    def serve() -> None:  # a worker that comes up a little later
        time.sleep(0.3)
        with rf.Runner(store=cli.store(), workflows=[build_counter], poll_interval=0.02):
            done.wait(10)

    worker = threading.Thread(target=serve)
    worker.start()
    try:
        code, out, err = cli("wait", "w", "--timeout", "10", "--format", "json")
    finally:
        done.set()
        worker.join()
    assert code == 0, err
    assert json.loads(out)["status"] == "idle" and json.loads(out)["results"] == {"total": 5}


def test_wait_on_a_failed_instance_exits_1_with_the_traceback(cli: Cli) -> None:
    assert cli("run", flow("build_payment"), "--input", '{"id": 9}', "--id", "p")[0] == 1
    code, out, _ = cli("wait", "p")
    assert code == 1
    assert "failed: charge: RuntimeError: payment service down for order 9" in out
    assert "Traceback (most recent call last)" in out


# --- recover ----------------------------------------------------------------------------------


def test_recover_an_instance_left_mid_run_by_a_killed_process(cli: Cli) -> None:
    proc = subprocess.Popen(
        [*runeflow_command(), "run", flow("build_steady"), "--input", "0", "--id", "k"],
        cwd=cli.db.parent,
        env={**os.environ, "RUNEFLOW_STORE": cli.url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # kill it once the first step is checkpointed
            if cli.db.exists():
                with cli.store() as store:
                    if store.exists("k") and rf.Client(store).get_results("k", ["s0"])["s0"]:
                        break
            time.sleep(0.05)
        else:
            pytest.fail("the first step never completed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with cli.store() as store:
        assert store.get("k").status == "running"
    code, out, err = cli("recover", "k", "--workflows", flow("build_steady"))
    assert code == 0, err
    assert out.startswith("instance k (steady): idle, 4 step(s)")
    with cli.store() as store:
        assert rf.Client(store).get_results("k", components=None) == {"s3": 4}
        assert store.get("k").status == "idle" and store.get("k").owner is None


def test_recover_refuses_unknown_and_held_instances(cli: Cli) -> None:
    code, _, err = cli("recover", "nobody")
    assert code == 1 and "unknown instance 'nobody'" in err
    with cli.store() as store:
        rf.Client(store).start_instance("counter", 1, id="held")
        take_lease_elsewhere(store, "held")
    code, out, err = cli("recover", "held", "nobody", "--format", "json")
    assert code == 1
    items = {i["id"]: i for i in json.loads(out)}
    assert items["held"]["recovered"] is False and "held by a live worker" in items["held"]["error"]
    assert "worker-host:4242:abcd" in err and "unknown instance 'nobody'" in err
    code, _, err = cli("recover", "--all")  # a held instance is skipped, not an error
    assert code == 0 and "skipped: instance 'held' is held by a live worker" in err
    assert cli("recover")[0] == 2 and cli("recover", "held", "--all")[0] == 2


# --- delete -----------------------------------------------------------------------------------


def test_delete_asks_first(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from runeflow.cli import manage

    for wid in ("a", "b", "c"):
        assert cli("run", flow("build_counter"), "--input", "1", "--id", wid)[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal
    code, _, err = cli("delete", "a")
    assert code == 2 and "pass --yes" in err
    monkeypatch.setattr(manage, "_isatty", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, _, err = cli("delete", "a")
    assert code == 1 and "[y/N]" in err and "nothing deleted" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, _, err = cli("delete", "a")
    assert code == 0 and "deleted instance 'a' (counter, idle)" in err
    code, _, err = cli("delete", "b", "nobody", "--yes")
    assert code == 1 and "unknown instance 'nobody'" in err and "deleted instance 'b'" in err
    with cli.store() as store:
        assert [m.workflow_id for m in store.list()] == ["c"]


def test_delete_refuses_an_instance_a_live_worker_holds(cli: Cli) -> None:
    assert cli("run", flow("build_counter"), "--input", "1", "--id", "h")[0] == 0
    with cli.store() as store:
        take_lease_elsewhere(store, "h")
    code, _, err = cli("delete", "h", "--yes")
    assert code == 1 and "held by a live worker (worker-host:4242:abcd)" in err
    assert "--force" in err
    code, _, err = cli("delete", "h", "--yes", "--force")
    assert code == 0, err
    with cli.store() as store:
        assert not store.exists("h")


def test_delete_in_a_pipe_needs_yes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert (
        subprocess_cli(
            "run", flow("build_counter"), "--input", "1", "--id", "d", "--store", url, cwd=tmp_path
        ).returncode
        == 0
    )
    refused = subprocess_cli("--store", url, "delete", "d", cwd=tmp_path, stdin="y\n")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    done = subprocess_cli("delete", "d", "nobody", "--yes", "--store", url, cwd=tmp_path)
    assert done.returncode == 1
    assert "deleted instance 'd'" in done.stderr and "unknown instance 'nobody'" in done.stderr


# --- failures made visible --------------------------------------------------------------------


def test_list_shows_failures_and_finds_failed_instances(cli: Cli) -> None:
    assert cli("run", flow("build_payment"), "--input", '{"id": 1}', "--id", "p")[0] == 1
    assert cli("run", flow("build_counter"), "--input", "1", "--id", "c")[0] == 0
    code, out, _ = cli("list")
    assert code == 0
    header, _, *rows = out.splitlines()
    assert header.split()[:4] == ["id", "workflow", "status", "failures"]
    assert rows[0].split()[:5] == ["p", "payment", "failed", "1", "(charge)"]
    assert rows[1].split()[:4] == ["c", "counter", "idle", "0"]

    code, out, _ = cli("list", "--status", "failed", "--format", "json")
    assert code == 0
    [item] = json.loads(out)
    assert (item["id"], item["status"], item["failures"]) == ("p", "failed", 1)
    assert item["first_failure"]["component"] == "charge"
    assert item["first_failure"]["error"] == "RuntimeError: payment service down for order 1"
    assert [
        i["id"] for i in json.loads(cli("list", "--status", "idle", "--format", "json")[1])
    ] == ["c"]


def test_list_reads_the_store_a_page_at_a_time(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """``runeflow list`` pages through the listing index (as the dashboard does) rather than
    reading every row at once, and keeps its order: oldest first."""
    import runeflow.cli.listing as listing

    ids = ["c1", "p", "c2", "w", "c3"]
    for workflow_id in ids:
        if workflow_id == "p":
            assert cli("run", flow("build_payment"), "--input", '{"id": 1}', "--id", "p")[0] == 1
        elif workflow_id == "w":
            assert cli("run", flow("approval"), "--input", '{"id": 1}', "--id", "w")[0] == 3
        else:
            assert cli("run", flow("build_counter"), "--input", "1", "--id", workflow_id)[0] == 0
    code, expected, _ = cli("list", "--format", "json")
    pages: list[int] = []
    list_page = rf.SQLiteStore.list_page

    def one_page(self: rf.SQLiteStore, *args: object, **kwargs: object) -> object:
        page = list_page(self, *args, **kwargs)
        pages.append(len(page.instances))
        return page

    def every_row(self: rf.SQLiteStore, *args: object, **kwargs: object) -> object:
        raise AssertionError("runeflow list read every row at once")

    monkeypatch.setattr(listing, "MAX_PAGE", 2)
    monkeypatch.setattr(rf.SQLiteStore, "list_page", one_page)
    monkeypatch.setattr(rf.SQLiteStore, "list", every_row)
    code, out, err = cli("list", "--format", "json")
    assert code == 0, err
    assert [i["id"] for i in json.loads(out)] == ids
    assert out == expected and pages == [2, 2, 1]
    code, out, _ = cli("list")
    assert code == 0
    assert [row.split()[:4] for row in out.splitlines()[2:]] == [
        ["c1", "counter", "idle", "0"],
        ["p", "payment", "failed", "1"],
        ["c2", "counter", "idle", "0"],
        ["w", "approval", "waiting", "0"],
        ["c3", "counter", "idle", "0"],
    ]
    pages.clear()
    code, out, _ = cli("list", "--status", "idle", "--status", "waiting", "--format", "json")
    assert [i["id"] for i in json.loads(out)] == ["c1", "c2", "w", "c3"] and pages == [2, 2]


def test_list_shows_unreadable_instances_without_crashing(cli: Cli) -> None:
    assert cli("run", flow("build_counter"), "--input", "1", "--id", "c")[0] == 0
    assert cli("run", flow("approval"), "--input", '{"id": 1}', "--id", "bad")[0] == 3
    with cli.store() as store:
        store.set_error("c", "no definition registered for workflow 'counter'")
    with sqlite3.connect(cli.db) as raw:  # one flipped byte in bad's first log row
        (data,) = raw.execute(
            "SELECT data FROM runeflow_events WHERE workflow_id = 'bad' ORDER BY last LIMIT 1"
        ).fetchone()
        flipped = bytes([data[0] ^ 0x01]) + bytes(data[1:])
        raw.execute(
            "UPDATE runeflow_events SET data = ? WHERE workflow_id = 'bad' AND data = ?",
            (flipped, data),
        )
    code, out, _ = cli("list")
    assert code == 0
    assert "no definition registered" in out and "cannot read its log" in out
    items = {i["id"]: i for i in json.loads(cli("list", "--format", "json")[1])}
    assert items["bad"]["failures"] is None and "corrupt" in items["bad"]["error"]


def test_show_prints_each_failure_with_its_traceback(cli: Cli) -> None:
    assert cli("run", flow("build_payment"), "--input", '{"id": 2}', "--id", "p")[0] == 1
    code, out, _ = cli("show", "p")
    assert code == 0
    failures = out.split("\nfailures\n", 1)[1]
    assert "failed: charge: RuntimeError: payment service down for order 2 (attempt 1)" in failures
    assert "Traceback (most recent call last)" in failures and "in boom" in failures
    data = json.loads(cli("show", "p", "--format", "json")[1])
    [failure] = data["failures"]
    assert set(failure) == FAILURE_KEYS
    assert failure["error_type"] == "builtins.RuntimeError" and failure["attempt"] == 1
    assert failure["message"] == "payment service down for order 2"
    assert "raise RuntimeError" in failure["traceback"]
    assert "error" in data


def test_run_json_is_one_object_and_text_tells_failures_on_stderr(cli: Cli) -> None:
    code, out, err = cli("run", flow("build_payment"), "--input", '{"id": 5}', "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert set(data) == {"id", "status", "results", "failures"}
    assert data["status"] == "failed"
    assert data["results"] == {"receipt": None, "notify": "notified 5"}
    assert set(data["failures"][0]) == FAILURE_KEYS
    assert data["failures"][0]["component"] == "charge"

    code, out, err = cli("run", flow("build_payment"), "--input", '{"id": 6}', "--id", "t")
    assert code == 1
    assert json.loads(out) == {"receipt": None, "notify": "notified 6"}  # the results, as before
    assert "failed: charge: RuntimeError: payment service down for order 6" in err
    assert "Traceback (most recent call last)" in err

    code, out, _ = cli("run", flow("build_counter"), "--input", "7", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert (data["status"], data["results"], data["failures"]) == ("idle", {"total": 7}, [])

    code, out, _ = cli(
        "run", flow("build_counter"), "--input", "7", "--submit", "--id", "s", "--format", "json"
    )
    assert code == 0
    assert json.loads(out) == {
        "id": "s",
        "status": "running",
        "results": {},  # nothing ran yet: no log
        "failures": [],
    }


def test_verbose_logs_on_stderr(cli: Cli) -> None:
    code, _, err = cli("run", flow("build_payment"), "--input", '{"id": 1}')
    assert code == 1 and " INFO " not in err and " DEBUG " not in err
    code, _, err = cli("-v", "run", flow("build_payment"), "--input", '{"id": 1}')
    assert code == 1
    assert " INFO runeflow.cli: opening the store" in err and " DEBUG " not in err
    code, _, err = cli("list", "-vv")
    assert code == 0 and " DEBUG runeflow.cli: runeflow list on the store" in err
