"""The JSON codec round-trips every supported type and fails clearly on the rest."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runeflow as rf
from runeflow import codec as codec_module
from runeflow.codec import EVENT_FORMAT_VERSION, TAG, JsonCodec, PickleCodec, default_codec
from runeflow.errors import CodecError
from runeflow.model import events as ev
from runeflow.model.facts import Fact, FactRef, Signal


@rf.register_type
class Color(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


@rf.register_type(name="test_codec.Level")
class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: Any = None


codec_module.register_type(Point)


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    __hash__ = None  # type: ignore[assignment]


# --- strategies -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(timezones=st.none() | st.just(dt.UTC)),
    st.timedeltas(),
    st.sampled_from([Color.RED, Color.PAIR, Level.LOW]),
)
hashables = st.recursive(
    scalars.filter(lambda v: not isinstance(v, dt.datetime) or v.tzinfo is None),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.dictionaries(hashables, inner, max_size=3),
        st.dictionaries(st.just(TAG) | st.just("v"), inner, max_size=2),
        st.sets(hashables, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.builds(Point, x=st.integers(), label=inner),
        st.builds(Signal, event=st.text(max_size=5), payload=inner),
        inner.map(lambda v: Fact("f", v, "c", "p", ("a",), ("r", ("m", "f", 0, 1)))),
        st.just(FactRef("f", "c", "p", (), ("r",))),
        st.just(ev.ErrorInfo(type="builtins.ValueError", message="m")),
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return (
            a == b
            and all(same(k, next(k2 for k2 in b if k2 == k)) for k in a)
            and all(same(a[k], b[k]) for k in a)
        )
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(values)
def test_values_round_trip_with_their_types(value: Any) -> None:
    decoded = default_codec.decode(default_codec.encode(value))
    assert same(decoded, value)
    assert same(codec_module.from_jsonable(codec_module.to_jsonable(value)), value)


@given(st.sets(hashables, max_size=5))
def test_equal_sets_encode_to_equal_bytes(items: set[Any]) -> None:
    assert default_codec.encode(items) == default_codec.encode(set(reversed(list(items))))


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(1987, 4, 5, 2, 0, tzinfo=ZoneInfo("America/Resolute")),  # in a DST gap
        dt.datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),  # fold
        dt.datetime(2026, 6, 1, 12, 0, 0, 5, tzinfo=ZoneInfo("Europe/Paris")),
    ],
)
def test_zoned_datetimes_come_back_in_their_zone(value: dt.datetime) -> None:
    back = default_codec.decode(default_codec.encode(value))
    assert back == value and back.tzinfo is value.tzinfo and back.fold == value.fold
    assert back.utcoffset() == value.utcoffset()


def test_an_unknown_zone_is_a_codec_error() -> None:
    data = b'{"__rf__":"dtz","v":["2026-01-01T00:00:00","Nowhere/Atlantis",0]}'
    with pytest.raises(CodecError, match="Nowhere/Atlantis"):
        default_codec.decode(data)


def test_plain_json_is_left_untouched() -> None:
    value = {"a": [1, 2.5, "x", None, True]}
    assert default_codec.encode(value) == b'{"a":[1,2.5,"x",null,true]}'
    assert same(default_codec.decode(default_codec.encode(1.0)), 1.0)


def test_a_dict_holding_the_tag_key_is_escaped() -> None:
    value = {TAG: "t", "v": [1, 2]}
    assert default_codec.decode(default_codec.encode(value)) == value


# --- events -----------------------------------------------------------------------------

ids = st.text(alphabet="abcdef0123456789", min_size=1, max_size=12)
facts = st.builds(
    Fact,
    ids,
    values,
    ids,
    ids,
    st.lists(ids, max_size=2).map(tuple),
    st.tuples(ids, st.tuples(ids, ids, st.integers(0, 9), st.integers(1, 9))).map(
        lambda t: (t[0], t[1])
    )
    | ids.map(lambda r: (r,)),
)
events = st.one_of(
    st.builds(ev.WorkflowCreated, name=ids, outputs=st.lists(st.tuples(ids, ids)).map(tuple)),
    st.builds(
        ev.ComponentAdded, name=ids, component_kind=ids, parents=st.lists(ids).map(tuple), hash=ids
    ),
    st.builds(ev.FactProduced, fact=facts, runnable_id=st.none() | ids),
    st.builds(ev.StateInitiated, component=ids, scope_key=st.just(""), value=values),
    st.builds(ev.RunnableDispatched, runnable_id=ids, component=ids, attempt=st.integers(1, 5)),
    st.builds(
        ev.RunnableFailed,
        runnable_id=ids,
        component=ids,
        error=st.builds(ev.ErrorInfo, type=ids, message=st.text(), traceback=st.text()),
        final=st.booleans(),
    ),
    st.builds(ev.EventReceived, wait_id=ids, component=ids, event=ids, payload=values),
    st.builds(
        ev.TimerScheduled, timer_id=ids, wait_id=ids, component=ids, fire_at=st.floats(0, 1e10)
    ),
    st.builds(ev.JoinCompleted, component=ids, fact_ids=st.lists(ids).map(tuple)),
    st.builds(
        ev.EventAwaited,
        wait_id=ids,
        component=ids,
        fact_id=ids,
        events=st.lists(ids).map(tuple),
        timeout=st.none() | st.floats(0, 100),
    ),
    st.builds(
        ev.DownstreamSkipped, runnable_id=ids, component=ids, skipped=st.lists(ids).map(tuple)
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=6))
def test_event_sequences_round_trip(log: list[Any]) -> None:
    decoded = default_codec.decode_events(default_codec.encode_events(log))
    assert decoded == log
    for before, after in zip(log, decoded, strict=True):
        assert type(after) is type(before)
        if isinstance(before, ev.FactProduced):
            assert same(after.fact.value, before.fact.value)
            assert same(after.fact.scope, before.fact.scope)


@given(events)
def test_single_event_round_trip(event: Any) -> None:
    assert codec_module.decode_event(codec_module.encode_event(event)) == event


def test_every_event_kind_is_covered() -> None:
    data = default_codec.encode_events(
        [ev.TimerFired(timer_id="t"), ev.FanOutEmitted(component="m", fact_id="f", count=2)]
    )
    assert [e.kind for e in default_codec.decode_events(data)] == ["timer_fired", "fan_out_emitted"]


def test_component_is_never_encoded() -> None:
    event = ev.ComponentAdded(
        name="s",
        component_kind="step",
        parents=("root",),
        hash="h",
        component=object(),  # type: ignore[arg-type]
    )
    data = default_codec.encode_event(event)
    assert b"object" not in data
    decoded = default_codec.decode_event(data)
    assert isinstance(decoded, ev.ComponentAdded) and decoded.component is None


def test_fact_sink_keeps_values_out_of_the_blob() -> None:
    fact = Fact("f1", {"big": "value"}, "c", "p", (), ("r",))
    kept: dict[str, Any] = {}
    data = default_codec.encode_events([ev.FactProduced(fact=fact)], fact_sink=kept.__setitem__)
    assert b"big" not in data and kept == {"f1": {"big": "value"}}
    (lean,) = default_codec.decode_events(data)
    assert isinstance(lean, ev.FactProduced) and lean.fact == fact.ref()
    (full,) = default_codec.decode_events(data, load_value=kept.__getitem__)
    assert isinstance(full, ev.FactProduced) and full.fact == fact


def test_event_field_order_is_the_wire_format() -> None:
    data = default_codec.encode_event(
        ev.RunnableFailed(runnable_id="r", component="c", error=ev.ErrorInfo(type="E", message="m"))
    )
    assert data == b'[1,["runnable_failed","r","c",["E","m",""],1,true,0.0]]'
    # A log written before a field was appended still decodes, with the default.
    old = default_codec.decode_events(b'[1,["runnable_dispatched","r","c"]]')
    assert old == [ev.RunnableDispatched(runnable_id="r", component="c", attempt=1)]


# --- registration and refusals ----------------------------------------------------------


def test_registered_type_round_trips() -> None:
    codec = JsonCodec()
    codec.register(Money, encode=lambda m: m.cents, decode=Money, name="money")
    assert codec.decode(codec.encode({"price": Money(250)})) == {"price": Money(250)}
    with pytest.raises(CodecError, match="not registered"):
        JsonCodec().decode(codec.encode(Money(1)))


def test_unencodable_value_names_type_and_fix() -> None:
    with pytest.raises(CodecError) as info:
        default_codec.encode({"x": [Money(1)]})
    message = str(info.value)
    assert "Money" in message and "codec.register(Money, encode=..., decode=...)" in message
    assert "dataclass" in message
    assert info.value.type_name is not None and info.value.type_name.endswith("Money")


def test_local_classes_are_refused_at_encode_time() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(CodecError, match="inside a function"):
        default_codec.encode(Local(1))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b'{"a": 1', "not valid JSON"),
        (b'{"__rf__":"dc","t":"os:system","v":{}}', "'os:system' .*does not trust"),
        (b'{"__rf__":"e","t":"builtins:print","v":1}', "'builtins:print' .*does not trust"),
        (b'{"__rf__":"dc","t":"no_such_module_xyz:Thing","v":{}}', "does not trust"),
        (b'{"__rf__":"zz","t":"a:b","v":1}', "unknown type tag"),
        (b'{"__rf__":"dc","t":"nocolon","v":{}}', "malformed type path"),
        (b'{"__rf__":"dc","t":"os:<locals>.X","v":{}}', "malformed type path"),
        (b'{"__rf__":"x","t":"os:system","v":1}', "not registered"),
        (b"[1] 2", "extra data"),
    ],
)
def test_bad_bytes_are_refused(data: bytes, expected: str) -> None:
    with pytest.raises(CodecError, match=expected):
        default_codec.decode(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'[1,["from_the_future","x"]]', "newer runeflow"),
        (f"[{EVENT_FORMAT_VERSION + 1}]".encode(), "newer than this runeflow"),
        (b'[1,["timer_fired","t","extra"]]', "more fields"),
        (b'{"kind":"timer_fired"}', "not an event blob"),
        (b'[1,["fact_produced",5]]', "malformed"),
    ],
)
def test_bad_event_blobs_are_refused(data: bytes, expected: str) -> None:
    with pytest.raises(CodecError, match=expected):
        default_codec.decode_events(data)


def test_not_an_event() -> None:
    with pytest.raises(CodecError, match="not a runeflow event"):
        default_codec.encode_events([Point(1)])


def test_circular_value() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CodecError, match="nested too deeply"):
        default_codec.encode(loop)


def test_pickle_codec_is_explicit_and_documented() -> None:
    codec = PickleCodec()
    assert codec.decode(codec.encode(Money(3))) == Money(3)
    assert "executes code" in (PickleCodec.__doc__ or "") or "runs code" in (
        PickleCodec.decode.__doc__ or ""
    )
    with pytest.raises(CodecError, match="cannot pickle"):
        codec.encode(lambda: 1)


def test_pydantic_models_round_trip() -> None:
    pytest.importorskip("pydantic", reason="pydantic is not installed (it is optional)")
    from _helpers_store_models import Line, Order

    codec = JsonCodec(types=[Order, Line])
    order = Order(id=1, tags=("a",), lines=[Line(sku="x", qty=2)], note=None)
    decoded = codec.decode(codec.encode({"order": order}))
    assert decoded == {"order": order} and type(decoded["order"]) is Order
    trusting = JsonCodec(trusted_modules=["_helpers_store_models"])
    assert trusting.decode(codec.encode(order)) == order
    with pytest.raises(CodecError, match="not a pydantic model class"):
        trusting.decode(b'{"__rf__":"pd","t":"_helpers_store_models:Point","v":{}}')
    with pytest.raises(CodecError, match="does not trust"):
        JsonCodec().encode(order)


# --- trust: stored data names only trusted types --------------------------------------------


@dataclasses.dataclass
class Unregistered:
    x: int


class Shade(enum.Enum):
    DARK = 1


@dataclasses.dataclass
class Checked:
    x: int

    def __post_init__(self) -> None:
        if self.x < 0:
            raise ValueError("x must not be negative")


def tagged(tag: str, cls: type, v: Any) -> bytes:
    """A tagged object naming ``cls`` by ``module:qualname``, as runeflow always wrote it."""
    return json.dumps({TAG: tag, "t": f"{cls.__module__}:{cls.__qualname__}", "v": v}).encode()


@pytest.fixture
def modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], None]]:
    """``write(relative_path, source)`` puts an importable file in tmp_path, forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    tops: set[str] = set()

    def write(relative: str, source: str) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        tops.add(relative.split("/")[0].removesuffix(".py"))
        importlib.invalidate_caches()

    yield write
    for name in list(sys.modules):
        if name.split(".")[0] in tops:
            del sys.modules[name]


def test_register_type_as_a_call_and_as_a_decorator() -> None:
    assert rf.register_type is codec_module.register_type
    assert Color in default_codec.registered_types  # @rf.register_type, bare
    codec = JsonCodec()
    assert codec_module.register_type(Unregistered, codec=codec) is Unregistered

    @codec_module.register_type(name="order", codec=codec)
    @dataclasses.dataclass
    class Order:
        sku: str

    assert Order.__name__ == "Order"
    data = codec.encode([Unregistered(1), Order("a")])
    assert b'"t":"order"' in data
    assert codec.decode(data) == [Unregistered(1), Order("a")]
    with pytest.raises(CodecError, match="does not trust"):
        JsonCodec().decode(data)


def test_an_untrusted_type_is_refused_when_written_naming_the_fix() -> None:
    for value in (Unregistered(1), Shade.DARK):
        with pytest.raises(CodecError) as info:
            JsonCodec().encode({"k": [value]})
        name = type(value).__qualname__
        assert info.value.type_name == f"{type(value).__module__}:{name}"
        message = str(info.value)
        assert f"rf.register_type({name})" in message and "@rf.register_type" in message
        assert f"trusted_modules=[{type(value).__module__!r}]" in message


def test_a_subclass_of_a_registered_dataclass_is_not_trusted_by_inheritance() -> None:
    @dataclasses.dataclass
    class Child(Unregistered):
        y: int = 0

    codec = JsonCodec(types=[Unregistered])
    with pytest.raises(CodecError, match="Child"):
        codec.encode(Child(1, 2))


def test_data_written_before_registration_decodes_once_registered() -> None:
    data = tagged("dc", Unregistered, {"x": 1})
    codec = JsonCodec()
    with pytest.raises(CodecError, match="does not trust") as info:
        codec.decode(data)
    assert info.value.type_name == f"{__name__}:Unregistered"
    codec.register(Unregistered)
    assert codec.decode(data) == Unregistered(1)
    # registered under a name: new data uses the name, old data is still found by its path
    named = JsonCodec()
    named.register(Unregistered, name="unregistered")
    assert named.decode(data) == Unregistered(1)
    assert named.encode(Unregistered(2)) == b'{"__rf__":"dc","t":"unregistered","v":{"x":2}}'
    assert JsonCodec(types=[Shade]).decode(tagged("e", Shade, 1)) is Shade.DARK
    # the wire form of a registered type is the one runeflow always wrote
    assert JsonCodec(types=[Unregistered]).encode(Unregistered(1)) == data.replace(b" ", b"")


def test_runeflow_value_types_are_trusted_by_every_codec() -> None:
    values = [
        Fact("f", 1, "c", "p", (), ("r",)),
        FactRef("f", "c", "p", (), ("r",)),
        Signal(event="e", payload=[1]),
        ev.ErrorInfo(type="E", message="m"),
        rf.halt(3),
    ]
    codec = JsonCodec()
    assert codec.decode(codec.encode(values)) == values


def test_trusted_modules_cover_a_module_and_its_submodules(
    modules: Callable[[str, str], None],
) -> None:
    modules("rftrust_pkg/__init__.py", "")
    modules(
        "rftrust_pkg/models.py",
        """
        import dataclasses, enum

        @dataclasses.dataclass
        class Thing:
            x: int

        class Kind(enum.Enum):
            A = "a"
        """,
    )
    models = importlib.import_module("rftrust_pkg.models")
    value = [models.Thing(1), models.Kind.A]
    for trusted in (["rftrust_pkg"], ["rftrust_pkg.models"], "rftrust_pkg"):
        codec = JsonCodec(trusted_modules=trusted)
        assert codec.decode(codec.encode(value)) == value
    data = JsonCodec(trusted_modules=["rftrust_pkg"]).encode(value)
    for trusted in (["rftrust"], ["rftrust_pkg.other"], []):  # a prefix is a package, not text
        with pytest.raises(CodecError, match="does not trust"):
            JsonCodec(trusted_modules=trusted).encode(value)
        with pytest.raises(CodecError, match="does not trust"):
            JsonCodec(trusted_modules=trusted).decode(data)
    codec = JsonCodec()
    codec.trust("rftrust_pkg")
    assert codec.trusted_modules == ("rftrust_pkg",)
    assert codec.decode(data) == value
    with pytest.raises(CodecError, match="module name"):
        JsonCodec(trusted_modules=["not a module"])


def test_a_trusted_module_not_yet_imported_is_imported(
    modules: Callable[[str, str], None],
) -> None:
    modules(
        "rftrust_lazy.py",
        """
        import dataclasses

        @dataclasses.dataclass
        class Thing:
            x: int
        """,
    )
    data = b'{"__rf__":"dc","t":"rftrust_lazy:Thing","v":{"x":1}}'
    assert "rftrust_lazy" not in sys.modules
    value = JsonCodec(trusted_modules=["rftrust_lazy"]).decode(data)
    assert type(value) is sys.modules["rftrust_lazy"].Thing and value.x == 1


@pytest.mark.parametrize(
    "obj",
    [
        {TAG: "dc", "t": "rftrust_evil:Thing", "v": {}},
        {TAG: "e", "t": "rftrust_evil:Kind", "v": 1},
        {TAG: "pd", "t": "rftrust_evil:Model", "v": {}},
        {TAG: "x", "t": "rftrust_evil:Thing", "v": {}},
        {TAG: "dc", "t": "rftrust_evil.sub:Thing", "v": {}},
    ],
    ids=["dc", "e", "pd", "x", "submodule"],
)
def test_a_tag_naming_an_untrusted_module_imports_nothing(
    obj: dict[str, Any], modules: Callable[[str, str], None], tmp_path: Path
) -> None:
    marker = tmp_path / "imported.marker"
    evil = f"""
        import dataclasses, enum, pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")

        @dataclasses.dataclass
        class Thing:
            x: int = 0

        class Kind(enum.Enum):
            A = 1
        """
    modules("rftrust_evil/__init__.py", evil)
    modules("rftrust_evil/sub.py", evil)
    blob = b'[1,["fact_produced",["f","c","p",[],["r"],' + json.dumps(obj).encode() + b"],null]]"
    with pytest.raises(CodecError, match="rftrust_evil"):
        default_codec.decode(json.dumps({"value": [obj]}).encode())
    with pytest.raises(CodecError, match="rftrust_evil"):
        default_codec.from_jsonable(obj)
    with pytest.raises(CodecError, match="rftrust_evil"):
        default_codec.decode_events(blob)
    assert "rftrust_evil" not in sys.modules and "rftrust_evil.sub" not in sys.modules
    assert not marker.exists()


@pytest.mark.parametrize(
    ("tag", "name", "expected"),
    [
        ("dc", "os:system", "not a class"),
        ("e", "os:system", "not a class"),
        ("dc", "rftrust_alias:system", "not a class"),
        ("dc", "rftrust_alias:Alias", "another name for rftrust_alias:Real"),
        ("dc", "rftrust_alias:Elsewhere", "another name for rftrust_alias_dep:Elsewhere"),
        ("dc", "rftrust_alias:Real.__init__", "not a class"),
        ("dc", "rftrust_alias:Real.missing", "defines no 'Real.missing'"),
        ("dc", "rftrust_alias:Missing", "defines no 'Missing'"),
        ("dc", "rftrust_alias:Plain", "not a dataclass"),
        ("dc", "rftrust_alias:Kind", "not a dataclass"),
        ("e", "rftrust_alias:Real", "not an Enum subclass"),
        ("pd", "rftrust_alias:Real", "not a pydantic model class"),
    ],
)
def test_a_tag_must_name_a_class_of_its_kind_defined_where_it_says(
    tag: str, name: str, expected: str, modules: Callable[[str, str], None]
) -> None:
    modules(
        "rftrust_alias_dep.py",
        """
        import dataclasses

        @dataclasses.dataclass
        class Elsewhere:
            x: int = 0
        """,
    )
    modules(
        "rftrust_alias.py",
        """
        import dataclasses, enum, os
        from rftrust_alias_dep import Elsewhere

        system = os.system

        @dataclasses.dataclass
        class Real:
            x: int = 0

        Alias = Real

        class Kind(enum.Enum):
            A = 1

        class Plain:
            pass
        """,
    )
    codec = JsonCodec(trusted_modules=["rftrust_alias", "os"])
    assert codec.decode(b'{"__rf__":"dc","t":"rftrust_alias:Real","v":{"x":1}}').x == 1
    data = json.dumps({TAG: tag, "t": name, "v": {}}).encode()
    with pytest.raises(CodecError, match=expected) as info:
        codec.decode(data)
    assert info.value.type_name == name


def test_a_trusted_module_that_cannot_be_imported_is_a_codec_error() -> None:
    codec = JsonCodec(trusted_modules=["no_such_module_xyz"])
    with pytest.raises(CodecError, match="cannot be imported"):
        codec.decode(b'{"__rf__":"dc","t":"no_such_module_xyz:Thing","v":{}}')


def test_decode_functions_and_constructors_that_raise_are_codec_errors() -> None:
    codec = JsonCodec(types=[Checked, Shade])
    codec.register(Money, encode=lambda m: m.cents, decode=lambda c: Money(int(c)), name="money")
    cases: list[tuple[bytes, str, type[BaseException]]] = [
        (b'{"__rf__":"x","t":"money","v":"abc"}', "money", ValueError),
        (tagged("dc", Checked, {"x": -1}), "Checked", ValueError),
        (tagged("dc", Checked, {"nope": 1}), "Checked", TypeError),
        (tagged("dc", Checked, [1]), "Checked", TypeError),
        (tagged("e", Shade, 99), "Shade", ValueError),
    ]
    for data, name, cause in cases:
        with pytest.raises(CodecError, match=name) as info:
            codec.decode(data)
        assert info.value.type_name is not None and name in info.value.type_name
        assert isinstance(info.value.__cause__, cause)


def test_an_encode_function_that_raises_is_a_codec_error() -> None:
    def refuse(m: Money) -> Any:
        raise ValueError("no")

    codec = JsonCodec({Money: (refuse, Money)})
    with pytest.raises(CodecError, match="Money") as info:
        codec.encode(Money(1))
    assert isinstance(info.value.__cause__, ValueError)


def test_register_refuses_what_it_cannot_store() -> None:
    codec = JsonCodec()
    with pytest.raises(CodecError, match=r"encode= and decode="):
        codec.register(Money)
    with pytest.raises(CodecError, match=r"without decode="):
        codec.register(Money, encode=lambda m: m.cents)
    with pytest.raises(CodecError, match="takes a class"):
        codec.register(Money(1))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="encode= and decode="):
        codec_module.register_type(Money, codec=codec)
    assert Money not in codec.registered_types
