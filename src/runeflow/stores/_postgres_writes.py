"""How :class:`~runeflow.stores.postgres.PostgresStore` turns appends into statement
parameters, and the rows the statements return into each append's cursor or refusal."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from runeflow.errors import LeaseLostError, StoreError
from runeflow.stores.encoding import EncodedAppend
from runeflow.stores.integrity import checksum

__all__ = ["append_params", "append_results"]


def append_params(
    workflow_id: str,
    encoded: EncodedAppend | None,
    status: str | None,
    token: int | None,
    timer_rows: Sequence[tuple[str, str, float, str]],
    done_timers: Sequence[str],
    contents_lock: int,
) -> dict[str, Any]:
    """The parameters of one ``append`` statement; ``_statement`` names the statement (the
    slimmer ``append`` unless contents or timers are written: ``append_all``)."""
    # One row per fact: (id, content hash, NULL, NULL) or, for an inline value,
    # (id, '', value, checksum).
    facts: list[tuple[str, str, bytes | None, int | None]] = []
    if encoded is not None:
        facts += [(fid, digest, None, None) for fid, digest in encoded.fact_hashes.items()]
        facts += [(fid, "", data, checksum(data)) for fid, data in encoded.inline.items()]
    params: dict[str, Any] = {
        "_statement": "append",
        "wid": workflow_id,
        "n": encoded.count if encoded else 0,
        "now": time.time(),
        "status": status,
        "token": token,
        "data": encoded.blob if encoded else None,
        "crc": checksum(encoded.blob) if encoded else None,
        "fact_ids": list(encoded.fact_ids) if encoded and encoded.fact_ids else None,
        "fids": [f[0] for f in facts],
        "fhashes": [f[1] for f in facts],
        "fdata": [f[2] for f in facts],
        "fcrcs": [f[3] for f in facts],
    }
    if (encoded is not None and encoded.contents) or timer_rows or done_timers:
        params.update(
            _statement="append_all",
            hashes=list(encoded.contents) if encoded else [],
            blobs=list(encoded.contents.values()) if encoded else [],
            tids=[t[0] for t in timer_rows],
            twids=[t[1] for t in timer_rows],
            tfire=[t[2] for t in timer_rows],
            tpay=[t[3] for t in timer_rows],
            done=list(done_timers),
            gc=contents_lock,
        )
    return params


def append_results(
    batch: Sequence[dict[str, Any]], rows: Sequence[Any], epochs: dict[str, int]
) -> list[int | Exception]:
    """Each append's new cursor, or why it was refused: a stale token (``epochs`` holds the
    current token of the refused ones' instances) or an unknown instance."""
    results: list[int | Exception] = []
    for params, row in zip(batch, rows, strict=True):
        if row is not None:
            results.append(int(row[0]))
            continue
        wid, token = params["wid"], params["token"]
        if wid in epochs and token is not None and epochs[wid] != token:
            results.append(LeaseLostError(wid, token, f"; it is at {epochs[wid]}"))
        else:
            results.append(
                StoreError(
                    f"cannot append to unknown workflow {wid!r}: create() it first",
                    workflow_id=wid,
                )
            )
    return results
