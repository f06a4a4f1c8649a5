"""Running coroutines from synchronous code (kept out of the pure model package)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["run_coroutine"]


def run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from synchronous code.

    On a thread without a running loop this is ``asyncio.run``; when called from inside a
    running loop (synchronous code called by async code), it runs on a helper thread so the
    caller's loop is not re-entered.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="runeflow-coroutine")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
