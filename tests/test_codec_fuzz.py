"""Decoders raise only CodecError, whatever they are given; so does encoding what has no form.

Hypothesis feeds random bytes, random JSON (with tagged objects and event rows that look
real) and damaged copies of real blobs to every decode entry point; the regressions below
pin the exceptions a 120,000-input fuzz once found escaping (``decimal.InvalidOperation``,
``OverflowError``, ``RecursionError`` and others). The fuzz is derandomized and sized to
take a few seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import pickle
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runeflow import codec as codec_module
from runeflow.codec import TAG, PickleCodec, default_codec
from runeflow.errors import CodecError
from runeflow.model import events as ev
from runeflow.model.events import EVENT_TYPES
from runeflow.model.facts import Fact, Signal

fuzz = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Opaque:
    """A class the codec has no encoding for."""


def only_codec_errors(decode: Any, *args: Any, **kwargs: Any) -> None:
    """Call ``decode``; a CodecError is fine, any other exception fails the test."""
    with contextlib.suppress(CodecError):
        decode(*args, **kwargs)


# --- strategies -------------------------------------------------------------------------------

TAGS = ["t", "s", "fs", "dict", "b", "ba", "dt", "dtz", "d", "tm", "td", "dec", "u"]
NAMED_TAGS = ["e", "dc", "pd", "x"]
TYPE_NAMES = [
    "runeflow.model.facts:Fact",
    "runeflow.model.facts:FactRef",
    "runeflow.model.facts:Signal",
    "runeflow.model.events:ErrorInfo",
    "runeflow.model.components:Halt",
    "os:system",
    "builtins:print",
    "subprocess:Popen",
    "nocolon",
    "a.b:C.<locals>.D",
    "",
]
PARSED_STRINGS = [
    "2020-01-01",
    "2020-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999",
    "12:30",
    "1.5",
    "NaN",
    "sNaN",
    "-Infinity",
    "1e999999",
    "AAAA",
    "!!",
    "UTC",
    "Europe/Paris",
    "../../etc/passwd",
    "",
    "00000000-0000-0000-0000-000000000000",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63), 10**10, 999_999_999, 86_400 * 10**9]),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(PARSED_STRINGS),
)


def tagged(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Tagged objects: known and unknown tags, type names, values of every shape."""
    tag = st.sampled_from(TAGS + NAMED_TAGS) | st.text(max_size=3) | inner
    name = st.sampled_from(TYPE_NAMES) | st.text(max_size=12) | inner
    value = inner | st.lists(st.integers() | st.floats() | st.text(max_size=5), max_size=4)
    return st.builds(
        lambda t, n, v, keep: {k: x for k, x in ((TAG, t), ("t", n), ("v", v)) if k in keep},
        tag,
        name,
        value,
        st.sets(st.sampled_from([TAG, "t", "v"]), min_size=1).map(lambda s: s | {TAG}),
    )


simple_tagged = st.builds(
    lambda t, v: {TAG: t, "v": v},
    st.sampled_from(TAGS),
    scalars | st.lists(scalars, max_size=4),
)
json_values = st.recursive(
    scalars | simple_tagged,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=4) | st.sampled_from([TAG, "t", "v"]), inner, max_size=3),
        tagged(inner),
    ),
    max_leaves=12,
)
nested_bytes = st.builds(
    lambda depth, opener, closer: opener * depth + b"1" + closer * depth,
    st.integers(1, 3000) | st.sampled_from([1_100, 5_000, 100_000]),
    st.sampled_from([b"[", b'{"a":', b'{"__rf__":"t","v":[', b"[1,["]),
    st.sampled_from([b"]", b"}", b"]}"]),
)

fact_rows = st.builds(
    lambda meta, value: [*meta, *value],
    st.lists(json_values, min_size=0, max_size=5)
    | st.just(["f", "c", "p", [], ["r"]])
    | st.just(["f", "c", "p", ["a"], ["r", ["m", "f", 0, 1]]]),
    st.lists(json_values, max_size=1),
)
rows = st.one_of(
    st.builds(
        lambda kind, fields: [kind, *fields],
        st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=4) | json_values,
        st.lists(json_values, max_size=8),
    ),
    st.builds(
        lambda fact, rest: ["fact_produced", fact, *rest],
        fact_rows,
        st.lists(json_values, max_size=2),
    ),
    json_values,
)
docs = (
    st.builds(
        lambda version, rs: [version, *rs],
        st.sampled_from([1, 0, 2, -1]) | json_values,
        st.lists(rows, max_size=4),
    )
    | json_values
)

real_events = [
    ev.WorkflowCreated(name="w", outputs=(("o", "c"),)),
    ev.RunnableDispatched(runnable_id="r", component="c"),
    ev.FactProduced(
        fact=Fact(
            "f",
            {"when": dt.datetime(2026, 1, 2, 3, 4, 5), "amount": Decimal("1.50"), "ids": {1, 2}},
            "c",
            "p",
            ("a",),
            ("r", ("m", "f", 0, 1)),
        )
    ),
    ev.EventReceived(
        wait_id="w",
        component="c",
        event="e",
        payload=Signal(event="e", payload=(b"x", uuid.UUID(int=1))),
    ),
    ev.RunnableFailed(runnable_id="r", component="c", error=ev.ErrorInfo(type="E", message="m")),
    ev.TimerScheduled(timer_id="t", wait_id="w", component="c", fire_at=1.5),
    ev.StateInitiated(component="a", scope_key="", value=dt.timedelta(days=1)),
]
real_blob = default_codec.encode_events(real_events)


# --- fuzz -----------------------------------------------------------------------------------


@fuzz
@given(st.binary(max_size=300) | nested_bytes)
def test_random_bytes(data: bytes) -> None:
    only_codec_errors(default_codec.decode, data)
    only_codec_errors(default_codec.decode_events, data)
    only_codec_errors(codec_module.decode_event, data)
    only_codec_errors(default_codec.decode_event_batch, [data, data], [1, 1])


@fuzz
@given(json_values)
def test_random_json_values(obj: Any) -> None:
    only_codec_errors(default_codec.from_jsonable, obj)
    only_codec_errors(codec_module.from_jsonable, [obj, {"k": obj}])
    only_codec_errors(default_codec.decode, json.dumps(obj).encode())


@fuzz
@given(docs, st.lists(st.integers(0, 5) | json_values, max_size=3))
def test_random_event_blobs(doc: Any, counts: list[Any]) -> None:
    blob = json.dumps(doc).encode()
    only_codec_errors(default_codec.decode_events, blob)
    only_codec_errors(default_codec.decode_events, blob, load_value=lambda fid: fid)
    only_codec_errors(default_codec.decode_event_batch, [real_blob, blob], counts or None)
    only_codec_errors(default_codec.decode_event_batch, [blob], counts or None)


@fuzz
@given(
    st.lists(st.tuples(st.integers(0, len(real_blob) - 1), st.integers(0, 255)), max_size=4),
    st.integers(0, len(real_blob)),
    st.binary(max_size=8),
)
def test_damaged_real_blobs(flips: list[tuple[int, int]], cut: int, inserted: bytes) -> None:
    data = bytearray(real_blob)
    for position, byte in flips:
        data[position] = byte
    damaged = bytes(data[:cut]) + inserted + bytes(data[cut:])
    only_codec_errors(default_codec.decode_events, damaged)
    only_codec_errors(default_codec.decode, damaged)
    only_codec_errors(default_codec.decode_event_batch, [real_blob, damaged], [7, 7])


_CALLING_OPCODES = bytes(b"ci" + b"o" + b"R" + b"b" + b"\x81\x82\x83\x84\x92\x93")


@settings(fuzz, max_examples=200)
@given(st.binary(max_size=200).map(lambda b: b.translate(None, delete=_CALLING_OPCODES)))
def test_random_bytes_into_pickle(data: bytes) -> None:
    # opcodes that import or call are removed: this checks the errors, not pickle's safety
    only_codec_errors(PickleCodec().decode, data)


# --- regressions: each exception once found escaping, now a CodecError ------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"__rf__":"dec","v":"abc"}', "Decimal"),  # decimal.InvalidOperation
        (b'{"__rf__":"td","v":[1000000000000,0,0]}', "out of range"),  # OverflowError
        (b'{"__rf__":"d","v":"2020-13-45"}', "ValueError"),
        (b'{"__rf__":"d","v":5}', "TypeError"),
        (b'{"__rf__":"b","v":"!!"}', "base64"),  # binascii.Error
        (b'{"__rf__":"u","v":[]}', "AttributeError"),
        (b'{"__rf__":"t"}', "KeyError"),
        (b'{"__rf__":"td","v":[]}', "IndexError"),
        (b'{"__rf__":["t"],"v":1}', "TypeError"),  # an unhashable tag
        (b'{"__rf__":"s","v":[[1]]}', "TypeError"),  # an unhashable item
        (b'{"__rf__":"dtz","v":["2020-01-01T00:00:00","../../etc/passwd",0]}', "time zone"),
        (b'{"__rf__":"dtz","v":["2020-01-01T00:00:00","UTC",7]}', "ValueError"),
        (b'{"__rf__":"dc","t":5,"v":{}}', "malformed tagged object"),
        (b"1" * 5000, "malformed"),  # more digits than int() accepts
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # RecursionError
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b"[" * 5000 + b'{"__rf__":"t","v":[]}' + b"]" * 5000, "nested too deeply"),
        ("text".encode("utf-16"), "not UTF-8"),
    ],
)
def test_malformed_values_are_codec_errors(data: bytes, expected: str) -> None:
    with pytest.raises(CodecError, match=expected) as info:
        default_codec.decode(data)
    assert type(info.value) is CodecError
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return
    with pytest.raises(CodecError):
        default_codec.from_jsonable(obj)


def test_deeply_nested_structures_are_codec_errors() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.from_jsonable(deep)
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.encode(deep)
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.decode_events(b"[1," + b"[" * 100_000 + b"]" * 100_000 + b"]")
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.decode_event_batch([b"[1]", b"[" * 100_000 + b"]" * 100_000])


@pytest.mark.parametrize(
    "data",
    [
        b"[1,5]",
        b'[1,{"a":1}]',
        b"[1,[]]",
        b'[1,[["kind"],1]]',
        b'[1,["fact_produced",[]]]',
        b'[1,["fact_produced",[1,2,3,4,5,6,7],null]]',
        b'[1,["fact_produced",["f","c","p",5,["r"]],null]]',
        b'[1,["runnable_failed","r","c",5,1,true,0.0]]',
        b'[1,["timer_fired"]]',
        b"[1.5]",
        b"[1,[" + b'"' + b"k" * 1000 + b'"]]',
    ],
)
def test_malformed_event_blobs_are_codec_errors(data: bytes) -> None:
    with pytest.raises(CodecError) as info:
        default_codec.decode_events(data)
    assert type(info.value) is CodecError and len(str(info.value)) < 400
    with pytest.raises(CodecError):
        default_codec.decode_event_batch([data, data])
    with pytest.raises(CodecError):
        codec_module.decode_event(data)


def test_malformed_batches_are_codec_errors() -> None:
    blob = default_codec.encode_event(ev.TimerFired(timer_id="t"))
    assert default_codec.decode_event_batch([blob, blob], [1, 1]) == [ev.TimerFired("t")] * 2
    bad: list[tuple[Any, Any]] = [
        ([blob, blob], [1]),  # counts do not match the blobs
        ([blob], [2]),  # the single blob holds another number of events
        ([blob, blob], [1, 2]),
        ([blob, "text"], None),  # not bytes
        (5, None),
        ([blob, blob], 5),
        ([b"[1", b"1]"], None),  # blobs that merge into one
    ]
    for blobs, counts in bad:
        with pytest.raises(CodecError):
            default_codec.decode_event_batch(blobs, counts)


def test_decoding_non_bytes_is_a_codec_error() -> None:
    for data in ("[1]", 5, None, [1]):
        with pytest.raises(CodecError, match="expected bytes"):
            default_codec.decode(data)  # type: ignore[arg-type]
        with pytest.raises(CodecError):
            default_codec.decode_events(data)  # type: ignore[arg-type]
    assert default_codec.decode(memoryview(b"[1]")) == [1]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [range(3), object(), Opaque(), 10**5000, {"k": (1, 2, [Opaque()])}],
    ids=["range", "object", "unregistered class", "huge int", "nested"],
)
def test_unencodable_values_are_codec_errors(value: Any) -> None:
    with pytest.raises(CodecError) as info:
        default_codec.encode(value)
    assert type(info.value) is CodecError
    if type(value) is not int:  # a huge int is JSON data; only writing it as text fails
        with pytest.raises(CodecError):
            default_codec.to_jsonable([value])


def test_self_containing_values_are_codec_errors() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.encode(loop)
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.encode_events([ev.EventReceived("w", "c", "e", payload=loop)])


def test_nan_and_infinity_round_trip_as_json_allows() -> None:
    data = default_codec.encode([math.inf, -math.inf, math.nan])
    assert data == b"[Infinity,-Infinity,NaN]"
    back = default_codec.decode(data)
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2])


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", pickle.dumps([1, 2])[:-3], "text", None],
    ids=["empty", "garbage", "truncated", "str", "none"],
)
def test_pickle_codec_decode_raises_only_codec_errors(data: Any) -> None:
    with pytest.raises(CodecError, match="cannot unpickle"):
        PickleCodec().decode(data)


def test_pickle_codec_encode_raises_only_codec_errors() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CodecError):
        PickleCodec().encode(deep)
