"""Who may use the dashboard: the Host check that create_app applies by default (DNS
rebinding), the token under a mount prefix, and what counts as binding to this machine
(Starlette's test client: real app, no network)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the dev extra installs them: fail if missing
    pytest.importorskip("starlette", reason="the dashboard's extra (runeflow[ui]) is missing")
    pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import runeflow as rf
from _ui_flows import IDS, populate
from runeflow.ui import create_app
from runeflow.ui.security import is_local

TOKEN = "test-token-0123456789"
REBOUND = "rebound.attacker.example"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui-security") / "runeflow.db"
    populate(path).close()
    return path


def status_of(store: Path, workflow_id: str) -> str:
    with rf.SQLiteStore(store) as opened:
        return opened.get(workflow_id).status


def error_type(response: Any) -> str:
    kind: str = response.json()["error"]["type"]
    return kind


# --- DNS rebinding: create_app's defaults ----------------------------------------------------


def test_default_app_refuses_a_foreign_host(tmp_path: Path) -> None:
    """A page on another site whose name resolves to 127.0.0.1 gets neither the CSRF token
    nor an action through: without a token the dashboard answers only to local names."""
    path = tmp_path / "runeflow.db"
    populate(path).close()
    with TestClient(create_app(rf.SQLiteStore(path)), base_url=f"http://{REBOUND}:8077") as c:
        session = c.get("/api/session")
        assert session.status_code == 403 and error_type(session) == "AccessDenied"
        assert "csrf" not in session.json()
        assert c.get("/api/instances").status_code == 403
        page = c.get("/")
        assert page.status_code == 403 and "host names it allows" in page.text
        guessed = c.post(
            f"/api/stop/{IDS['waiting']}", json={}, headers={"X-Runeflow-CSRF": "x" * 64}
        )
        assert guessed.status_code == 403
    assert status_of(path, IDS["waiting"]) == "waiting"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8077", "localhost:8077", "LOCALHOST", "[::1]:8077", "127.0.0.1"]
)
def test_default_app_answers_to_local_names(db: Path, host: str) -> None:
    with TestClient(create_app(rf.SQLiteStore(db))) as c:
        answer = c.get("/api/instances", headers={"Host": host})
        assert answer.status_code == 200 and len(answer.json()["instances"]) == 3


def test_hosts_can_be_named_or_opened_to_any(db: Path) -> None:
    named = create_app(rf.SQLiteStore(db), allowed_hosts={"Ops.Example.com"})
    with TestClient(named, base_url="http://ops.example.com") as c:
        assert c.get("/api/session").status_code == 200
        assert c.get("/api/session", headers={"Host": "localhost"}).status_code == 403
    with TestClient(
        create_app(rf.SQLiteStore(db), allowed_hosts="*"), base_url=f"http://{REBOUND}"
    ) as c:
        assert c.get("/api/session").status_code == 200
    with pytest.raises(rf.UsageError, match="collection of host names"):
        create_app(rf.SQLiteStore(db), allowed_hosts="ops.example.com")


def test_with_a_token_any_host_but_only_with_the_token(db: Path) -> None:
    with TestClient(create_app(rf.SQLiteStore(db), token=TOKEN), base_url=f"http://{REBOUND}") as c:
        assert c.get("/api/session").status_code == 401  # a rebound page has no token
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/api/session", headers=bearer).status_code == 200


# --- the token under a mount prefix ----------------------------------------------------------


def test_mounted_with_a_token_signs_in_and_refuses_api_calls_as_json(db: Path) -> None:
    outer = Starlette(
        routes=[Mount("/ops/runeflow", app=create_app(rf.SQLiteStore(db), token=TOKEN))]
    )
    with TestClient(outer, base_url="http://127.0.0.1:8077") as c:
        refused = c.get("/ops/runeflow/api/instances")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/json"
        assert error_type(refused) == "AccessDenied"
        page = c.get("/ops/runeflow/instances/x")
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        signed = c.get(f"/ops/runeflow/?token={TOKEN}&status=failed", follow_redirects=False)
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ops/runeflow/?status=failed"
        assert "Path=/ops/runeflow;" in signed.headers["set-cookie"]
        landed = c.get(signed.headers["location"])  # the cookie is sent from now on
        assert landed.status_code == 200
        assert '<meta name="rf-base" content="/ops/runeflow">' in landed.text
        assert len(c.get("/ops/runeflow/api/instances").json()["instances"]) == 3


# --- what binding to this machine means ------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "LocalHost", "::1", "[::1]"],
)
def test_loopback_addresses_are_local(host: str) -> None:
    assert is_local(host)


@pytest.mark.parametrize(
    "host",
    [
        "127.attacker.example",
        "127.0.0.1.attacker.example",
        "127.evil",
        "localhost.evil",
        "evil.localhost.example",
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "128.0.0.1",
        "::2",
        "",
    ],
)
def test_other_names_and_addresses_are_not_local(host: str) -> None:
    assert not is_local(host)


def test_runeflow_ui_asks_a_token_for_a_name_that_only_looks_local(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runeflow.cli import main

    monkeypatch.delenv("RUNEFLOW_UI_TOKEN", raising=False)
    assert main(["ui", "--store", f"sqlite:///{db}", "--host", "127.evil.example"]) == 2
    assert "give --token TOKEN" in capsys.readouterr().err
