"""Opening a PostgresStore fails fast, with the server's reason and the password masked.

Also: ``rf.PostgresStore`` is exported lazily, so ``import runeflow`` never imports psycopg.
Tests against a refused port (127.0.0.1:1) need psycopg but no server.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import traceback

import pytest

import runeflow as rf
from conftest import PG_DSN

REFUSED = "postgresql://postgres@127.0.0.1:1/test"
"""Nothing listens on port 1: the connection is refused at once."""


def test_a_refused_port_raises_store_error_with_the_reason_within_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(rf.StoreError) as info:
        rf.PostgresStore(REFUSED, connect_timeout=5)
    elapsed = time.monotonic() - start
    assert elapsed < 10  # a bound on a hang (the pool alone waits 30 s), not a speed test
    message = str(info.value)
    assert "Connection refused" in message
    assert "postgresql://postgres@127.0.0.1:1/test" in message  # names the target
    assert "check that the server is running" in message.lower()  # says what to do
    assert "\n" not in message
    assert "couldn't get a connection" not in message  # not the pool's PoolTimeout


@pytest.mark.postgres
def test_b_an_unknown_database_names_it_and_the_reason(pg_schema: str) -> None:
    import psycopg

    dsn = psycopg.conninfo.make_conninfo(PG_DSN, dbname="runeflow_no_such_db")
    with pytest.raises(rf.StoreError) as info:
        rf.PostgresStore(dsn, schema=pg_schema, connect_timeout=5)
    assert 'database "runeflow_no_such_db" does not exist' in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://postgres:s3cret@127.0.0.1:1/test",
        "postgresql://postgres@127.0.0.1:1/test?password=s3cret&sslmode=disable",
        "host=127.0.0.1 port=1 dbname=test user=postgres password=s3cret",
        "host=127.0.0.1 port=1 dbname=test user=postgres password='s3cret x'",
        "postgresql://postgres:s3cret%zz@127.0.0.1:1/test",  # libpq quotes the bad token
        "postgresql://postgres:s3cret@[::1",  # libpq quotes the whole URL it cannot parse
    ],
    ids=["url", "url-query", "keywords", "keywords-quoted", "bad-percent", "bad-url"],
)
def test_c_the_password_never_appears_in_the_error(dsn: str) -> None:
    with pytest.raises(rf.StoreError) as info:
        rf.PostgresStore(dsn, connect_timeout=5)
    shown = "".join(traceback.format_exception(info.value))  # the chained errors too
    assert "s3cret" not in shown
    assert "***" in str(info.value)


def test_c_the_cli_masks_a_password_libpq_quotes() -> None:
    from runeflow.cli import CliError, _check_postgres

    url = "postgresql://postgres:s3cret%zz@127.0.0.1:1/test"
    with pytest.raises(CliError) as info:
        _check_postgres(url, "postgresql://postgres:***@127.0.0.1:1/test")
    assert "s3cret" not in "".join(traceback.format_exception(info.value))
    assert "invalid percent-encoded token" in str(info.value)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_a_connect_timeout_must_be_a_positive_number(timeout: float) -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        rf.PostgresStore(REFUSED, connect_timeout=timeout)


@pytest.mark.postgres
def test_the_pool_waits_at_most_the_connect_timeout(pg_schema: str) -> None:
    store = rf.PostgresStore(PG_DSN, schema=pg_schema, connect_timeout=2.5)
    try:
        assert store._pool.timeout == 2.5  # getconn's wait
        assert store._pool.kwargs is not None
        assert store._pool.kwargs["connect_timeout"] == 3  # libpq: whole seconds, rounded up
    finally:
        store.close()


def test_d_postgres_store_is_exported_from_the_top_level_package() -> None:
    from runeflow.stores.postgres import PostgresStore

    assert rf.PostgresStore is PostgresStore
    assert "PostgresStore" in rf.__all__
    with pytest.raises(AttributeError, match="no attribute 'NoSuchStore'"):
        _ = rf.NoSuchStore  # type: ignore[attr-defined]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_e_import_runeflow_does_not_import_psycopg() -> None:
    out = _run("import runeflow, sys; assert 'psycopg' not in sys.modules, 'psycopg imported'")
    assert out.returncode == 0, out.stderr


def test_without_psycopg_the_export_still_gives_the_install_hint() -> None:
    out = _run(
        """
        import sys
        sys.modules["psycopg"] = None  # `import psycopg` now raises ImportError
        sys.modules["psycopg_pool"] = None
        import runeflow as rf
        from runeflow.stores.postgres import INSTALL_HINT
        try:
            rf.PostgresStore("postgresql://postgres@127.0.0.1:1/test")
        except ImportError as exc:
            assert str(exc) == INSTALL_HINT, exc
        else:
            raise AssertionError("no ImportError")
        """
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.postgres
def test_a_store_that_fails_to_set_up_leaves_no_pool_behind(pg_schema: str) -> None:
    import threading

    import psycopg

    schema = f"{pg_schema}_taken"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:  # another program's table
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".instances (id INTEGER)')
    try:
        with pytest.raises(rf.StoreError, match="not as this runeflow made them"):
            rf.PostgresStore(PG_DSN, schema=schema, connect_timeout=5)
        deadline = time.monotonic() + 5
        while any(t.name.startswith(f"runeflow-{schema}") for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the pool's threads are still running"
            time.sleep(0.05)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
