"""The dashboard's JSON API and its guard, against a SQLite store holding an idle, a failed
and a waiting instance (Starlette's test client: real app, no network)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import time
from collections.abc import Iterator
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
from _ui_flows import IDS, SCRIPT, build_approval, populate, serving
from conftest import ALL_STORES
from runeflow.errors import InstanceStateError
from runeflow.ui import INSTALL_HINT, create_app


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui") / "runeflow.db"
    populate(path, script=True).close()
    return path


@pytest.fixture
def fresh_db(tmp_path: Path) -> Path:
    """A store of its own, for tests that change it."""
    path = tmp_path / "runeflow.db"
    populate(path).close()
    return path


LOCAL = "http://127.0.0.1:8077"
"""Where the test client says it sends requests: a local name, which the dashboard accepts
by default (without a token it answers only to local names)."""


def client_for(path: Path, **options: Any) -> TestClient:
    return TestClient(create_app(rf.SQLiteStore(path), **options), base_url=LOCAL)


@pytest.fixture
def client(db: Path) -> Iterator[TestClient]:
    with client_for(db) as c:
        yield c


def post(c: TestClient, path: str, body: Any = None) -> Any:
    csrf = c.get("/api/session").json()["csrf"]
    return c.post(path, json=body or {}, headers={"X-Runeflow-CSRF": csrf})


def error_of(response: Any) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["type"], error["message"]


# --- the instances page's API ---------------------------------------------------------------


def test_list_shows_every_instance_with_its_status_and_summary(client: TestClient) -> None:
    data = client.get("/api/instances").json()
    by_id = {i["id"]: i for i in data["instances"]}
    assert {by_id[IDS[s]]["status"] for s in IDS} == set(IDS)
    assert all(by_id[IDS[s]]["status"] == s for s in IDS)
    failed = by_id[IDS["failed"]]["summary"]
    assert failed["failures"] == 1 and failed["first_failure"] == "charge"
    waiting = by_id[IDS["waiting"]]["summary"]
    assert waiting["waiting_for"] == [{"step": "manager", "events": ["approved", "rejected"]}]
    assert by_id[IDS["idle"]]["summary"]["steps"] == 2
    assert data["counts"] == {
        "all": 4,
        "running": 0,
        "waiting": 2,
        "idle": 1,
        "failed": 1,
        "stopped": 0,
    }
    assert data["workflows"] == ["approval", "payment", "pricing"]
    created = [i["created_at"] for i in data["instances"]]
    assert created == sorted(created, reverse=True)  # newest first


def test_list_filters_search_and_pages(client: TestClient) -> None:
    failed = client.get("/api/instances?status=failed").json()
    assert [i["id"] for i in failed["instances"]] == [IDS["failed"]]
    both = client.get("/api/instances?status=failed&status=idle").json()
    assert {i["id"] for i in both["instances"]} == {IDS["failed"], IDS["idle"]}
    approvals = client.get("/api/instances?workflow=approval").json()
    assert {i["workflow"] for i in approvals["instances"]} == {"approval"}
    assert approvals["counts"]["all"] == 2
    found = client.get("/api/instances?q=order-").json()
    assert [i["id"] for i in found["instances"]] == sorted(IDS.values())  # by id
    assert found["by_id"] is True
    ids, token, pages = [], None, 0
    while True:
        page = client.get("/api/instances", params={"limit": 1, "after": token or ""}).json()
        ids += [i["id"] for i in page["instances"]]
        token, pages = page["next"], pages + 1
        if token is None:
            break
    assert pages == 4 and len(set(ids)) == 4
    back = client.get("/api/instances", params={"limit": 1, "before": page["previous"]}).json()
    assert [i["id"] for i in back["instances"]] == [ids[-2]]


@pytest.mark.parametrize(
    "query",
    ["after=not-a-token", "limit=0", "limit=x", "after=WzFd", f"q={'x' * 300}"],
)
def test_bad_list_parameters_are_a_clear_400(client: TestClient, query: str) -> None:
    status, kind, message = error_of(client.get(f"/api/instances?{query}"))
    assert (status, kind) == (400, "UsageError") and message


def page_key(created_at: Any, workflow_id: str) -> str:
    """A page token made by hand (as a visitor could), in the dashboard's encoding."""
    data = json.dumps([created_at, workflow_id]).encode()  # "\ud800" stays escaped
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
@pytest.mark.parametrize(
    "key",
    [
        (10**30, "a"),  # no store column holds it
        (1.0, "\ud800"),  # a lone surrogate: no store can take it as text
        (True, "a"),
        ([1.0], "a"),
        (None, "a"),
        (1.0, 7),
    ],
    ids=["huge-int", "surrogate", "bool", "list", "null", "number-id"],
)
def test_a_forged_page_key_is_a_400_on_every_store(store: rf.Store, key: Any) -> None:
    store.create("a", definition_name="w", definition_hash="h", status="idle")
    with TestClient(create_app(store), base_url=LOCAL) as c:
        for side in ("after", "before"):
            answer = c.get("/api/instances", params={side: page_key(*key)})
            status, kind, message = error_of(answer)
            assert (status, kind) == (400, "UsageError"), message
            assert f"{side}: not a page key" in message


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_a_page_key_with_text_for_a_time(store: rf.Store) -> None:
    """Only a damaged SQLite row holds text for its creation time: a page key holding text
    is answered there and refused as a bad request by the other stores."""
    store.create("a", definition_name="w", definition_hash="h", status="idle")
    with TestClient(create_app(store), base_url=LOCAL) as c:
        answer = c.get("/api/instances", params={"after": page_key("yesterday", "a")})
        if isinstance(store, rf.SQLiteStore):
            assert answer.status_code == 200
        else:
            status, kind, message = error_of(answer)
            assert (status, kind) == (400, "UsageError") and "must be a number" in message


# --- the instance page's API ----------------------------------------------------------------


def test_failed_instance_has_its_traceback_graph_and_events(client: TestClient) -> None:
    data = client.get(f"/api/instances/{IDS['failed']}").json()
    assert data["instance"]["status"] == "failed"
    (failure,) = data["failures"]
    assert failure["component"] == "charge" and failure["error_type"] == "builtins.RuntimeError"
    assert "payment service down for order 7" in failure["traceback"]
    assert 'raise RuntimeError(f"payment service down' in failure["traceback"]
    states = {s["component"]: s["state"] for s in data["steps"]}
    assert states == {"check": "ran", "charge": "failed", "receipt": "skipped", "notify": "ran"}
    svg = data["graph"]["svg"]
    assert re.search(r'data-component="charge"[^>]*data-state="failed"', svg)
    assert "flowchart LR" in data["graph"]["mermaid"] and "digraph" in data["graph"]["dot"]
    kinds = [e["kind"] for e in data["events"]["events"]]
    assert kinds[0] == "workflow_created" and "runnable_failed" in kinds
    assert data["actions"] == {"resume": False, "stop": False, "retry": True, "recover": False}


def test_waiting_instance_shows_its_open_wait(client: TestClient) -> None:
    data = client.get(f"/api/instances/{IDS['waiting']}").json()
    assert data["open_waits"][0]["step"] == "manager"
    assert data["open_waits"][0]["events"] == ["approved", "rejected"]
    assert data["actions"]["resume"] and data["actions"]["stop"]
    again = client.get(f"/api/instances/{IDS['waiting']}", params={"since": data["version"]})
    assert again.json() == {"unchanged": True, "version": data["version"]}


def test_fact_values_load_on_demand(client: TestClient) -> None:
    data = client.get(f"/api/instances/{IDS['idle']}").json()
    (output,) = data["outputs"]
    assert output["port"] == "total" and "value" not in json.dumps(data["facts"])
    fact = client.get(f"/api/facts/{IDS['idle']}", params={"fact": output["fact_id"]}).json()
    assert fact["value"] == 9.0 and fact["component"] == "with_tax"
    other = client.get(f"/api/instances/{IDS['failed']}").json()["facts"]["items"][0]["id"]
    status, kind, _ = error_of(client.get(f"/api/facts/{IDS['idle']}", params={"fact": other}))
    assert (status, kind) == (404, "WorkflowNotFoundError")  # a fact of another instance


def test_events_page_and_graph_svg(client: TestClient) -> None:
    page = client.get(f"/api/events/{IDS['idle']}", params={"after": 2, "limit": 3}).json()
    assert [e["n"] for e in page["events"]] == [3, 4, 5] and page["total"] > 5
    svg = client.get(f"/api/graph/{IDS['idle']}")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and 'data-component="with_tax"' in svg.text


def test_unknown_instance_is_404(client: TestClient) -> None:
    for path in ("/api/instances/nope", "/api/events/nope", "/api/graph/nope"):
        status, kind, message = error_of(client.get(path))
        assert (status, kind) == (404, "WorkflowNotFoundError") and "'nope'" in message


def test_stored_markup_is_data_and_pages_escape_it(client: TestClient) -> None:
    from urllib.parse import quote

    listing = client.get("/api/instances?status=waiting").json()
    assert SCRIPT in [i["id"] for i in listing["instances"]]  # JSON data, as stored
    page = client.get(f"/instances/{quote(SCRIPT, safe='')}")
    assert page.status_code == 200 and "<script>window" not in page.text
    assert "&lt;script&gt;window.__pwned" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    detail = client.get(f"/api/instances/{quote(SCRIPT, safe='')}").json()
    assert detail["instance"]["id"] == SCRIPT


def test_svg_escapes_component_names() -> None:
    from runeflow.drawing import nodes_of, to_svg

    wf = rf.workflow(name="<b>").add(rf.step(lambda x: x, name='a<script>"&\x01'))
    svg = to_svg("<b>", nodes_of(wf))
    assert "<script>" not in svg and "&lt;script&gt;&quot;&amp;\ufffd" in svg


# --- actions --------------------------------------------------------------------------------


def test_sending_an_event_goes_through_the_client_checks(fresh_db: Path) -> None:
    with client_for(fresh_db) as c:
        status, kind, message = error_of(
            post(c, f"/api/resume/{IDS['waiting']}", {"event": "maybe"})
        )
        store = rf.SQLiteStore(fresh_db)
        with pytest.raises(InstanceStateError) as direct:
            rf.Client(store).resume(IDS["waiting"], "maybe")
        assert (status, kind, message) == (409, "InstanceStateError", str(direct.value))
        assert "accepted: ['approved', 'rejected']" in message
        status, kind, _ = error_of(post(c, f"/api/resume/{IDS['idle']}", {"event": "approved"}))
        assert (status, kind) == (409, "InstanceStateError")  # no open wait
        status, kind, _ = error_of(post(c, f"/api/resume/{IDS['waiting']}", {"payload": 1}))
        assert (status, kind) == (400, "UsageError")  # no event named
        with serving(fresh_db):
            done = post(
                c, f"/api/resume/{IDS['waiting']}", {"event": "approved", "payload": {"by": "ann"}}
            )
            assert done.status_code == 200 and done.json()["ok"] is True
            info = rf.Client(store).wait(IDS["waiting"], timeout=30)
        assert info.status is rf.Status.IDLE
        results = rf.Client(store).get_results(IDS["waiting"], components=None)
        assert results["outcome"] == "shipped 8 (approved by ann)"
        store.close()


def test_stop_retry_and_recover(fresh_db: Path) -> None:
    store = rf.SQLiteStore(fresh_db)
    with client_for(fresh_db) as c:
        assert post(c, f"/api/stop/{IDS['waiting']}").json()["done"] == "stopped"
        assert store.get(IDS["waiting"]).status == "stopped"
        status, kind, message = error_of(post(c, f"/api/recover/{IDS['failed']}"))
        assert (status, kind) == (409, "InstanceStateError")
        assert "step 'charge' failed for good" in message and "retry" in message
        retried = post(c, f"/api/retry/{IDS['failed']}").json()
        assert retried["id"] == f"{IDS['failed']}-retry-1"
        meta = store.get(retried["id"])
        assert meta.metadata["retry_of"] == IDS["failed"] and meta.definition_name == "payment"
        status, kind, _ = error_of(post(c, f"/api/retry/{IDS['failed']}", {"id": retried["id"]}))
        assert (status, kind) == (409, "InstanceStateError")  # that id is taken
        status, kind, _ = error_of(post(c, f"/api/retry/{IDS['idle']}"))
        assert (status, kind) == (409, "InstanceStateError")  # not failed or stopped
        # a runner that gave an instance up (internal errors) leaves it failed with no step
        # failure: recover hands it back to the workers, which go on from its checkpoint
        store.set_status(IDS["idle"], "failed")
        store.set_error(IDS["idle"], "gave up after 3 internal errors")
        with serving(fresh_db):
            post(c, f"/api/retry/{IDS['failed']}", {"id": "again"})
            assert post(c, f"/api/recover/{IDS['idle']}").status_code == 200
            assert rf.Client(store).wait(IDS["idle"], timeout=30).status is rf.Status.IDLE
            again = rf.Client(store).wait("again", timeout=30)
        assert store.get(IDS["idle"]).error is None
        assert again.status is rf.Status.FAILED and again.failures[0]["component"] == "charge"
        assert rf.Client(store).get_results("again", components=["check"]) == {"check": {"id": 7}}
    store.close()


def test_read_only_refuses_every_action(db: Path) -> None:
    with client_for(db, read_only=True) as c:
        for action in ("resume", "stop", "retry", "recover"):
            status, kind, message = error_of(post(c, f"/api/{action}/{IDS['waiting']}"))
            assert (status, kind) == (403, "ReadOnlyError") and "read-only" in message
        detail = c.get(f"/api/instances/{IDS['waiting']}").json()
        assert detail["read_only"] is True and not any(detail["actions"].values())
        assert '<meta name="rf-read-only" content="true">' in c.get("/").text


def test_actions_need_the_csrf_header_json_and_the_same_origin(client: TestClient) -> None:
    url = f"/api/stop/{IDS['waiting']}"
    csrf = client.get("/api/session").json()["csrf"]
    assert error_of(client.post(url, json={}))[:2] == (403, "AccessDenied")
    wrong = client.post(url, json={}, headers={"X-Runeflow-CSRF": "guess"})
    assert wrong.status_code == 403
    form = client.post(url, data={"a": "1"}, headers={"X-Runeflow-CSRF": csrf})
    assert form.status_code == 415
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        crossed = client.post(url, json={}, headers={"X-Runeflow-CSRF": csrf, **headers})
        assert crossed.status_code == 403
    assert client.get(f"/api/instances/{IDS['waiting']}").json()["instance"]["status"] == "waiting"
    bad = client.post(
        url, content=b"{", headers={"X-Runeflow-CSRF": csrf, "content-type": "application/json"}
    )
    assert error_of(bad)[:2] == (400, "UsageError")


TOKEN = "test-token-0123456789"


def test_token_is_checked_on_every_request(db: Path) -> None:
    with client_for(db, token=TOKEN) as c:
        for path in ("/", "/api/instances", f"/instances/{IDS['idle']}", "/static/app.css"):
            assert c.get(path).status_code == 401, path
        assert "needs its access token" in c.get("/").text
        assert c.get("/api/instances", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.get("/api/instances", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert c.get("/?token=wrong", follow_redirects=False).status_code == 401
        signed = c.get(f"/?token={TOKEN}&x=1", follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/?x=1"
        assert "HttpOnly" in signed.headers["set-cookie"]
        assert "SameSite=Strict" in signed.headers["set-cookie"]
        assert c.get("/api/instances").status_code == 200  # the cookie is sent from now on


def test_local_binding_refuses_foreign_host_names(db: Path) -> None:
    app = create_app(rf.SQLiteStore(db), allowed_hosts={"127.0.0.1", "localhost"})
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/api/instances").status_code == 200
        rebound = c.get("/api/instances", headers={"Host": "evil.example:8077"})
        assert rebound.status_code == 403
        page = c.get("/", headers={"Host": "<b>x</b>"})
        assert page.status_code == 403 and "<b>x</b>" not in page.text


def test_mounted_under_a_prefix(db: Path) -> None:
    outer = Starlette(routes=[Mount("/ops/runeflow", app=create_app(rf.SQLiteStore(db)))])
    with TestClient(outer, base_url=LOCAL) as c:
        page = c.get("/ops/runeflow/")
        assert page.status_code == 200
        assert '<meta name="rf-base" content="/ops/runeflow">' in page.text
        assert 'src="/ops/runeflow/static/common.js"' in page.text
        assert c.get("/ops/runeflow/static/instance.js").status_code == 200
        assert len(c.get("/ops/runeflow/api/instances").json()["instances"]) == 4


def test_missing_extra_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "runeflow.ui.app", raising=False)
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    with pytest.raises(ImportError, match=re.escape(INSTALL_HINT)):
        create_app(rf.MemoryStore())


def test_non_finite_values_and_unreadable_instances(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "x.db")
    wf = rf.workflow(name="nan").add(rf.step(lambda x: float("nan"), name="nan"))
    with rf.Runner(store=store, executor="inline") as runner:
        runner.start_instance(wf, 1, id="n")
        runner.wait("n", timeout=10)
    store.create("broken", definition_name="w", definition_hash="h", status="running")
    store.append("broken", build_approval().event_log())
    store.corrupt_event("broken", 1)
    with TestClient(create_app(store), base_url=LOCAL) as c:
        fact_id = c.get("/api/instances/n").json()["outputs"][0]["fact_id"]
        assert c.get("/api/facts/n", params={"fact": fact_id}).json()["value"] == "nan"
        rows = {i["id"]: i for i in c.get("/api/instances").json()["instances"]}
        assert "corrupt" in rows["broken"]["summary"]["unreadable"]
        status, kind, message = error_of(c.get("/api/instances/broken"))
        assert (status, kind) == (500, "StoreError") and "broken" in message
    store.close()


def test_summaries_fill_in_what_the_budget_left(db: Path) -> None:
    from runeflow.ui.service import Dashboard

    dashboard = Dashboard(rf.SQLiteStore(db), summary_budget=0.0)
    rows = dashboard.instances({})["instances"]
    assert rows[0]["summary"] is not None  # one is always folded before the budget is checked
    missing = [r["id"] for r in rows if r["summary"] is None]
    assert missing
    deadline = time.monotonic() + 10
    filled: dict[str, Any] = {}
    while len(filled) < len(missing) and time.monotonic() < deadline:
        dashboard.summary_budget = 0.05
        filled.update(
            {k: v for k, v in dashboard.summaries(missing)["summaries"].items() if v is not None}
        )
    assert set(filled) == set(missing)


@pytest.mark.parametrize("token", ["short", "has spaces in it here", "semi;colon-0123456789"])
def test_weak_or_unusable_tokens_are_refused(token: str) -> None:
    with pytest.raises(rf.UsageError, match="at least 16 characters"):
        create_app(rf.MemoryStore(), token=token)


def test_runeflow_ui_refuses_what_it_cannot_serve(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runeflow.cli import main

    monkeypatch.delenv("RUNEFLOW_UI_TOKEN", raising=False)
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["ui", "--store", missing, "--port", "0"]) == 2
    assert "there is no store at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    assert main(["ui", "--store", f"sqlite:///{db}", "--host", "0.0.0.0", "--token", "x"]) == 2
    assert "--token: the dashboard's access token must be" in capsys.readouterr().err
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main(["ui", "--store", f"sqlite:///{db}", "--port", port]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["ui", "--store", f"sqlite:///{db}"]) == 2
    assert 'the dashboard needs: pip install "runeflow[ui]"' in capsys.readouterr().err


def test_a_body_too_large_is_refused_before_it_is_read(client: TestClient) -> None:
    csrf = client.get("/api/session").json()["csrf"]
    big = b'{"event": "' + b"x" * (1 << 20) + b'"}'
    answer = client.post(
        f"/api/resume/{IDS['waiting']}",
        content=big,
        headers={"X-Runeflow-CSRF": csrf, "content-type": "application/json"},
    )
    assert error_of(answer)[:2] == (400, "UsageError") and "1 MiB" in error_of(answer)[2]


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "²", "0x10"])
def test_a_malformed_content_length_is_a_400(db: Path, length: str) -> None:
    """Sent as is (an HTTP client would fix the header): the dashboard's own answer."""
    app = create_app(rf.SQLiteStore(db))
    csrf = TestClient(app, base_url=LOCAL).get("/api/session").json()["csrf"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/stop/{IDS['waiting']}",
        "raw_path": f"/api/stop/{IDS['waiting']}".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8077"),
            (b"content-type", b"application/json"),
            (b"content-length", length.encode()),
            (b"x-runeflow-csrf", csrf.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8077),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400
    error = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert error["type"] == "UsageError" and "Content-Length" in error["message"]
    with rf.SQLiteStore(db) as store:
        assert store.get(IDS["waiting"]).status == "waiting"
