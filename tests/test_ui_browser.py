"""The dashboard's pages in a real headless Chromium (the system's, driven by Playwright),
served by uvicorn over a SQLite store, with a real worker serving the store where an action
needs one.

Outside CI these tests skip, saying why, when Chromium or Playwright is missing; under
``CI=true`` they fail instead (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import runeflow as rf
from _ui_flows import IDS, SCRIPT, populate, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("RUNEFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system's headless Chromium, through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"Playwright for Python is not installed ({exc}): pip install playwright")
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError as exc:
            _unavailable(f"the dashboard's extra is not installed ({exc})")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # Without the Content-Security-Policy: Playwright's waits evaluate script text, and the
    # markup test must show that the pages escape stored text on their own.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert errors == [], f"the page raised: {errors}"


@contextmanager
def live(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port, in a thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runeflow.db"
    populate(path, script=True).close()
    return path


@pytest.fixture
def site(db: Path) -> Iterator[str]:
    from runeflow.ui import create_app

    with live(create_app(rf.SQLiteStore(db))) as url:
        yield url


def rows(page: Any) -> dict[str, str]:
    page.wait_for_selector("#instances tbody tr")
    found: dict[str, str] = page.eval_on_selector_all(
        "#instances tbody tr",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.id, r.dataset.status]))",
    )
    return found


def only(page: Any, workflow_id: str) -> None:
    """Wait until the instances table lists ``workflow_id`` alone."""
    page.wait_for_function(
        """id => {
            const rows = document.querySelectorAll("#instances tbody tr");
            return rows.length === 1 && rows[0].dataset.id === id;
        }""",
        arg=workflow_id,
    )


def test_instances_page_lists_the_three_with_their_statuses(page: Any, site: str) -> None:
    page.goto(site + "/")
    listed = rows(page)
    assert {listed[IDS[s]] for s in IDS} == set(IDS) and all(listed[IDS[s]] == s for s in IDS)
    failed_row = page.locator(f'#instances tr[data-id="{IDS["failed"]}"]')
    assert "1 (charge)" in failed_row.inner_text()
    waiting_row = page.locator(f'#instances tr[data-id="{IDS["waiting"]}"]')
    assert "manager: approved | rejected" in waiting_row.inner_text()
    page.click('#tabs button[data-status="failed"]')
    only(page, IDS["failed"])
    assert "status=failed" in page.url
    page.click('#tabs button[data-status=""]')
    page.fill("#search", "order-w")
    only(page, IDS["waiting"])
    page.wait_for_timeout(500)  # an answer to the earlier "all" request must not come back
    assert list(rows(page)) == [IDS["waiting"]]


def test_instance_page_shows_the_graph_and_the_traceback(page: Any, site: str) -> None:
    page.goto(f"{site}/instances/{IDS['failed']}")
    node = page.wait_for_selector('#graph svg g[data-component="charge"]')
    assert node.get_attribute("data-state") == "failed"
    skipped = page.locator('#graph svg g[data-component="receipt"]')
    assert skipped.get_attribute("data-state") == "skipped"
    traceback = page.locator("#failures pre.traceback").inner_text()
    assert "Traceback (most recent call last)" in traceback
    assert "RuntimeError: payment service down for order 7" in traceback
    assert page.locator("#status").inner_text() == "failed"
    assert "runnable_failed" in page.locator("#events").inner_text()
    page.click('#graph svg g[data-component="charge"]')
    assert page.locator("#steps tr.focus").get_attribute("data-component") == "charge"
    value = page.locator("#outputs tbody tr", has_text="notify").locator("button")
    value.click()
    page.wait_for_selector("#outputs pre.value:not([hidden])")
    assert '"notified 7"' in page.locator("#outputs pre.value:not([hidden])").inner_text()


def test_sending_an_event_from_the_page_makes_the_instance_proceed(
    page: Any, site: str, db: Path
) -> None:
    with serving(db):
        page.goto(f"{site}/instances/{IDS['waiting']}")
        form = page.wait_for_selector('.wait-form[data-step="manager"]')
        form.query_selector("select").select_option("approved")
        form.query_selector("textarea").fill('{"by": "ann"}')
        form.query_selector("button.send-event").click()
        page.wait_for_selector("dialog#confirm[open]")
        assert "Send “approved” to manager?" in page.locator("#confirm-title").inner_text()
        page.click("#confirm-ok")
        page.wait_for_function(
            "document.querySelector('#status').innerText.trim() === 'idle'", timeout=30_000
        )
        assert "Done: event 'approved' sent." in page.locator("#action-result").inner_text()
        assert (
            page.locator('#graph svg g[data-component="ship"]').get_attribute("data-state") == "ran"
        )
        page.locator("#outputs tbody tr", has_text="outcome").locator("button").click()
        page.wait_for_selector("#outputs pre.value:not([hidden])")
        assert (
            "shipped 8 (approved by ann)"
            in page.locator("#outputs pre.value:not([hidden])").inner_text()
        )
        assert "event_received" in page.locator("#events").inner_text()


def test_a_refused_action_shows_the_clients_error(page: Any, site: str, db: Path) -> None:
    page.goto(f"{site}/instances/{IDS['waiting']}")
    form = page.wait_for_selector('.wait-form[data-step="manager"]')
    form.query_selector("textarea").fill("{not json")
    form.query_selector("button.send-event").click()
    assert "the payload is not JSON" in page.locator("#action-result").inner_text()
    page.locator("#live").uncheck()  # keep the page as it is while the instance changes
    store = rf.SQLiteStore(db)
    rf.Client(store).stop(IDS["waiting"])
    store.close()
    form.query_selector("textarea").fill("")
    form.query_selector("button.send-event").click()
    page.click("#confirm-ok")
    result = page.locator("#action-result")
    result.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#action-result').innerText.includes('Error')")
    assert result.inner_text() == (
        f"InstanceStateError: instance {IDS['waiting']!r} is stopped and takes no more events"
    )


def test_read_only_mode_refuses_actions(page: Any, db: Path) -> None:
    from runeflow.ui import create_app

    with live(create_app(rf.SQLiteStore(db), read_only=True)) as url:
        page.goto(f"{url}/instances/{IDS['waiting']}")
        page.wait_for_selector("#graph svg")
        assert page.locator("#actions").is_hidden()
        assert page.locator("#read-only").is_visible()
        answer = page.evaluate(
            """async () => {
                const response = await fetch("/api/stop/order-waiting", {
                    method: "POST", body: "{}",
                    headers: {"Content-Type": "application/json", "X-Runeflow-CSRF": RF.csrf},
                });
                return [response.status, await response.json()];
            }"""
        )
    assert answer[0] == 403 and answer[1]["error"]["type"] == "ReadOnlyError"
    assert rf.SQLiteStore(db).get(IDS["waiting"]).status == "waiting"


def test_stored_markup_is_shown_as_text(page: Any, site: str) -> None:
    page.goto(site + "/")
    listed = rows(page)
    assert SCRIPT in listed
    assert page.locator("#instances tbody").get_by_text(SCRIPT, exact=True).count() == 1
    page.goto(f"{site}/instances/{quote(SCRIPT, safe='')}")
    page.wait_for_selector("#graph svg")
    assert page.locator("#title").inner_text() == SCRIPT
    page.locator("#facts tbody tr", has_text="input").locator("button").click()
    page.wait_for_selector("#facts pre.value:not([hidden])")
    shown = page.locator("#facts pre.value:not([hidden])").inner_text()
    assert json.loads(shown) == {"id": SCRIPT}
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_token_is_enforced_on_a_non_local_bind(page: Any, db: Path) -> None:
    runeflow = [sys.executable, "-m", "runeflow", "--store", f"sqlite:///{db}", "ui"]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUNEFLOW_UI_TOKEN"}
    refused = subprocess.run(
        [*runeflow, "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert refused.returncode == 2
    assert "give --token TOKEN (or set RUNEFLOW_UI_TOKEN)" in refused.stderr
    server = subprocess.Popen(
        [*runeflow, "--host", "0.0.0.0", "--port", str(port)],
        env={**env, "RUNEFLOW_UI_TOKEN": "test-token-0123456789"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "runeflow ui did not start"
                time.sleep(0.1)
        response = page.request.get(f"{url}/api/instances")
        assert response.status == 401 and "access token" in response.json()["error"]["message"]
        bearer = {"Authorization": "Bearer test-token-0123456789"}
        assert page.request.get(f"{url}/api/instances", headers=bearer).status == 200
        page.goto(f"{url}/")
        assert "needs its access token" in page.locator("body").inner_text()
        page.goto(f"{url}/?token=test-token-0123456789")
        assert page.url == f"{url}/"  # the token left the address bar
        assert IDS["failed"] in rows(page)
        assert re.search(r"rf_token", str(page.context.cookies()))
    finally:
        server.terminate()
        server.wait(timeout=20)
