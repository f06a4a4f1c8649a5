"""Take the dashboard screenshots shown in the README (docs/dashboard-*.png).

    python scripts/ui_screenshots.py

It fills a fresh SQLite store with instances of the examples (order fulfillment, the
approval flow waiting for a manager, a payment whose charge fails), serves the dashboard
with uvicorn on a free local port, and photographs both pages with the system's headless
Chromium (``/usr/bin/chromium``, or ``$RUNEFLOW_TEST_CHROMIUM``) driven by Playwright. It
needs the dev extra: ``pip install -e '.[dev]'``.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from order_fulfillment import build as order_fulfillment  # noqa: E402
from tutorial_06_waits_and_timers import build as approval  # noqa: E402

import runeflow as rf  # noqa: E402

CHROMIUM = os.environ.get("RUNEFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def authorize(payment: dict[str, Any]) -> dict[str, Any]:
    return {"order": payment["order"], "amount": payment["amount"], "card": "visa-4242"}


def charge(authorization: dict[str, Any]) -> dict[str, Any]:
    raise ConnectionError(
        f"payment gateway timed out charging {authorization['amount']} EUR "
        f"for order {authorization['order']}"
    )


def receipt(charged: dict[str, Any]) -> str:
    return f"receipt for order {charged['order']}"


def notify(payment: dict[str, Any]) -> str:
    return f"customer of order {payment['order']} notified"


def payment() -> rf.Workflow:
    """Authorize, charge (which fails), then a receipt; a notification on the side."""
    return (
        rf.workflow(name="payment", outputs={"receipt": "receipt"})
        .add(rf.step(authorize))
        .add(rf.step(charge), to="authorize")
        .add(rf.step(receipt), to="charge")
        .add(rf.step(notify))
    )


def fill(path: Path) -> None:
    store = rf.SQLiteStore(path)
    flows = [order_fulfillment, approval, payment]
    with rf.Runner(store=store, workflows=flows, executor="inline", recover=False) as runner:
        for i in range(1, 61):
            kind = i % 6
            if kind == 1:
                runner.start_instance(
                    payment, {"order": 5000 + i, "amount": 120 + i}, id=f"pay-{5000 + i}"
                )
            elif kind in (2, 4):
                runner.start_instance(approval, {"id": 3000 + i}, id=f"approval-{3000 + i}")
            else:
                order = {
                    "customer_id": f"cust-{i:03d}",
                    "items": ["widget-a", "widget-b"][: 1 + i % 2],
                }
                runner.start_instance(order_fulfillment, order, id=f"order-{1000 + i}")
        for workflow_id in runner.list_workflows():
            runner.wait(workflow_id, timeout=60)
        for workflow_id in ("approval-3002", "approval-3010"):
            runner.resume(workflow_id, "approved", payload={"by": "ann"})
            runner.wait(workflow_id, timeout=60)
        runner.stop("approval-3016")
    store.close()


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from runeflow.ui import create_app

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runeflow.db"
        fill(path)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(
            uvicorn.Config(create_app(rf.SQLiteStore(path)), log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(url + "/")
                page.wait_for_selector("#instances tbody tr")
                page.wait_for_timeout(300)
                page.screenshot(path=str(ROOT / "docs" / "dashboard-instances.png"))
                page.set_viewport_size({"width": 1280, "height": 1240})
                page.goto(f"{url}/instances/pay-5031")
                page.wait_for_selector("#graph svg")
                page.locator("#live").uncheck()  # keep the redaction below on screen
                page.wait_for_timeout(300)
                # tracebacks name where the code ran: this checkout's path is nobody's business
                page.evaluate(
                    """root => document.querySelectorAll("pre.traceback").forEach(pre => {
                        pre.textContent = pre.textContent.split(root).join("/srv/shop");
                    })""",
                    str(ROOT),
                )
                page.evaluate("document.getElementById('live').checked = true")  # no event
                page.screenshot(path=str(ROOT / "docs" / "dashboard-instance.png"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    print("wrote docs/dashboard-instances.png and docs/dashboard-instance.png")


if __name__ == "__main__":
    main()
