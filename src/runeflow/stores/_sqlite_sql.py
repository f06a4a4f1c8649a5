"""The SQL of :class:`~runeflow.stores.sqlite.SQLiteStore`: its schema migrations and every
statement it sends (all parameterised)."""

from __future__ import annotations

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION_TABLE",
    "SELECT_INSTANCES_BY_ID",
    "SELECT_WORKFLOW_NAMES",
    "count_instances",
    "select_ids_by_prefix",
    "select_page_keys",
]

SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS runeflow_schema (version INTEGER NOT NULL)"

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE runeflow_instances (
            workflow_id TEXT PRIMARY KEY,
            definition_name TEXT NOT NULL,
            definition_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            cursor INTEGER NOT NULL DEFAULT 0,
            metadata TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX runeflow_instances_status ON runeflow_instances (status)",
        """CREATE TABLE runeflow_events (
            workflow_id TEXT NOT NULL,
            last INTEGER NOT NULL,
            first INTEGER NOT NULL,
            data BLOB NOT NULL,
            fact_ids TEXT,
            PRIMARY KEY (workflow_id, last))""",
        "CREATE TABLE runeflow_contents (hash TEXT PRIMARY KEY, data BLOB NOT NULL)",
        """CREATE TABLE runeflow_facts (
            fact_id TEXT PRIMARY KEY, hash TEXT NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE runeflow_snapshots (
            workflow_id TEXT PRIMARY KEY, cursor INTEGER NOT NULL, data BLOB NOT NULL)""",
        """CREATE TABLE runeflow_timers (
            timer_id TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            fire_at REAL NOT NULL,
            payload TEXT NOT NULL)""",
        "CREATE INDEX runeflow_timers_fire_at ON runeflow_timers (fire_at)",
        "CREATE INDEX runeflow_timers_workflow ON runeflow_timers (workflow_id, fire_at)",
        """CREATE TABLE runeflow_leases (
            workflow_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)""",
    ),
    # 2: an append writes its log row (and fact rows) only. The cursor is the log's last
    # position and ``updated_at`` the later of the instance row's and the last row's time,
    # so the instance row changes only with the status; its ``cursor`` column is no longer
    # kept up to date (it stays for SQLite builds without DROP COLUMN). Values no longer
    # than their hash live in the fact's row (``hash = ''``) rather than in runeflow_contents.
    (
        "ALTER TABLE runeflow_events ADD COLUMN at REAL",
        "ALTER TABLE runeflow_facts ADD COLUMN data BLOB",
    ),
    # 3: the lease moves into the instance row, with a fencing token (``epoch``) that an
    # append checks under the write lock; ``error`` says why a runner could not load it.
    (
        "ALTER TABLE runeflow_instances ADD COLUMN owner TEXT",
        "ALTER TABLE runeflow_instances ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runeflow_instances ADD COLUMN lease_expires REAL NOT NULL DEFAULT 0",
        "ALTER TABLE runeflow_instances ADD COLUMN error TEXT",
        """UPDATE runeflow_instances SET
            owner = (SELECT l.owner FROM runeflow_leases l
                WHERE l.workflow_id = runeflow_instances.workflow_id),
            lease_expires = (SELECT l.expires_at FROM runeflow_leases l
                WHERE l.workflow_id = runeflow_instances.workflow_id),
            epoch = 1
            WHERE workflow_id IN (SELECT workflow_id FROM runeflow_leases)""",
        "DROP TABLE runeflow_leases",
        "CREATE INDEX runeflow_instances_lease ON runeflow_instances (lease_expires)",
    ),
    # 4: checksums (see runeflow.stores.integrity). A log row, a snapshot and a value kept in
    # a fact's row carry the CRC-32 of their blob, checked on every read; rows written
    # before have NULL and are read unverified (not backfilled: that would vouch for data
    # nobody checked, and rewrite the whole log under the write lock). Values in
    # runeflow_contents need no column: they are checked against their SHA-256 key.
    (
        "ALTER TABLE runeflow_events ADD COLUMN checksum INTEGER",
        "ALTER TABLE runeflow_facts ADD COLUMN checksum INTEGER",
        "ALTER TABLE runeflow_snapshots ADD COLUMN checksum INTEGER",
    ),
    # 5: listing a page at a time (Store.list_page, count_instances, workflow_names): the
    # status index gains the page order (created_at, workflow_id), and one more index serves
    # the workflow filter. A page is read from a range of one of them per status, merged.
    (
        """CREATE INDEX runeflow_instances_status_created
            ON runeflow_instances (status, created_at, workflow_id)""",
        """CREATE INDEX runeflow_instances_name_status_created
            ON runeflow_instances (definition_name, status, created_at, workflow_id)""",
        "DROP INDEX runeflow_instances_status",
    ),
    # 6: bounded stores (see runeflow.runner.retention). ``compacted``: the events up to this
    # position were removed by compaction (the snapshot holds their state), so the cursor is
    # the later of it and the last row's position. A fact row names the one instance whose
    # log refers to it (``workflow_id``; NULL when several do, or for save_fact), so that
    # deleting an instance finds its facts by their ids, with no scan; existing rows get
    # their owner from the fact ids of the log rows. A snapshot lists the facts it refers to.
    # The index on hashes finds whether a content row is still used; the one on (status,
    # updated_at) the finished instances to prune.
    (
        "ALTER TABLE runeflow_instances ADD COLUMN compacted INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runeflow_facts ADD COLUMN workflow_id TEXT",
        "ALTER TABLE runeflow_snapshots ADD COLUMN fact_ids TEXT",
        "CREATE INDEX runeflow_facts_hash ON runeflow_facts (hash) WHERE hash <> ''",
        "CREATE INDEX runeflow_instances_updated ON runeflow_instances (status, updated_at)",
        """CREATE TEMP TABLE runeflow_fact_owners AS
            SELECT j.value AS fact_id, MIN(e.workflow_id) AS owner,
            COUNT(DISTINCT e.workflow_id) AS n
            FROM runeflow_events e, json_each(e.fact_ids) j
            WHERE typeof(e.fact_ids) = 'text' AND json_valid(e.fact_ids) GROUP BY j.value""",
        "CREATE INDEX temp.runeflow_fact_owners_id ON runeflow_fact_owners (fact_id)",
        """UPDATE runeflow_facts SET workflow_id = (SELECT o.owner FROM
            temp.runeflow_fact_owners o WHERE o.fact_id = runeflow_facts.fact_id)
            WHERE fact_id IN (SELECT fact_id FROM temp.runeflow_fact_owners WHERE n = 1)""",
        "DROP TABLE temp.runeflow_fact_owners",
    ),
]
"""Schema migrations in order; ``runeflow_schema.version`` counts those applied."""

INSERT_INSTANCE = """INSERT OR IGNORE INTO runeflow_instances
    (workflow_id, definition_name, definition_hash, status, created_at, updated_at, cursor,
    metadata, owner, epoch, lease_expires) VALUES (?,?,?,?,?,?,0,?,?,?,?)"""
_LAST_ROW = """(SELECT MAX(last) FROM runeflow_events WHERE workflow_id = i.workflow_id)"""
_SELECT_META = f"""SELECT i.workflow_id, i.definition_name, i.definition_hash, i.status,
    i.created_at, MAX(i.updated_at, COALESCE(e.at, 0)), MAX(COALESCE(e.last, 0), i.compacted),
    i.metadata, i.owner, i.lease_expires, i.epoch, i.error, i.compacted
    FROM runeflow_instances i LEFT JOIN runeflow_events e
    ON e.workflow_id = i.workflow_id AND e.last = {_LAST_ROW}"""
SELECT_INSTANCE = f"{_SELECT_META} WHERE i.workflow_id = ?"
SELECT_INSTANCES = f"{_SELECT_META} ORDER BY i.created_at, i.workflow_id"
_CURSOR = f"MAX(COALESCE({_LAST_ROW}, 0), i.compacted)"
"""An instance's cursor: its last row's position, or where its compacted log starts."""
SELECT_CURSOR = f"""SELECT {_CURSOR}, i.epoch FROM runeflow_instances i
    WHERE i.workflow_id = ?"""
SELECT_LOG_START = "SELECT compacted FROM runeflow_instances WHERE workflow_id = ?"
SELECT_APPEND_STATE = f"""SELECT i.workflow_id, {_CURSOR}, i.epoch, i.status
    FROM runeflow_instances i WHERE i.workflow_id IN ({{marks}})"""
"""``(workflow_id, last position, fencing token, status)`` of the instances a batch of
appends writes to (read under the write lock)."""
SELECT_APPEND_STATE_ONE = f"""SELECT {_CURSOR}, i.epoch, i.status
    FROM runeflow_instances i WHERE i.workflow_id = ?"""
""":data:`SELECT_APPEND_STATE` of one instance."""
SET_ERROR = "UPDATE runeflow_instances SET error = ? WHERE workflow_id = ?"
UPDATE_STATUS = "UPDATE runeflow_instances SET status = ?, updated_at = ? WHERE workflow_id = ?"
INSERT_EVENTS = """INSERT INTO runeflow_events
    (workflow_id, last, first, data, fact_ids, at, checksum) VALUES (?,?,?,?,?,?,?)"""
SELECT_EVENTS = """SELECT first, data, fact_ids, last, checksum FROM runeflow_events
    WHERE workflow_id = ? AND last > ? ORDER BY last LIMIT ?"""
INSERT_CONTENT = "INSERT OR IGNORE INTO runeflow_contents (hash, data) VALUES (?, ?)"
_OWNER = """workflow_id = CASE WHEN runeflow_facts.workflow_id = excluded.workflow_id
    THEN excluded.workflow_id END"""
"""A fact written again keeps its owner only if the same instance writes it (NULL: shared)."""
UPSERT_FACT = f"""INSERT INTO runeflow_facts (fact_id, hash, data, checksum, workflow_id)
    VALUES (?, ?, NULL, NULL, ?) ON CONFLICT (fact_id) DO UPDATE SET hash = excluded.hash,
    data = NULL, checksum = NULL, {_OWNER}"""
UPSERT_INLINE_FACT = f"""INSERT INTO runeflow_facts (fact_id, hash, data, checksum, workflow_id)
    VALUES (?, '', ?, ?, ?) ON CONFLICT (fact_id) DO UPDATE SET hash = '',
    data = excluded.data, checksum = excluded.checksum, {_OWNER}"""
SELECT_FACT_VALUES = """SELECT f.fact_id, COALESCE(f.data, c.data) AS value,
    CASE WHEN f.data IS NULL THEN f.hash ELSE f.checksum END
    FROM runeflow_facts f LEFT JOIN runeflow_contents c ON c.hash = f.hash
    WHERE f.fact_id IN ({marks}) AND value IS NOT NULL"""
"""``(fact_id, value, check)``: ``check`` is the value's CRC-32 when it is kept in the fact's
row (``NULL`` if written before schema version 4), its SHA-256 key when in the content
table (see :func:`runeflow.stores.integrity.verified_values`)."""
SELECT_EVENTS_ONLY = """SELECT first, data, NULL, last, checksum FROM runeflow_events
    WHERE workflow_id = ? AND last > ? ORDER BY last LIMIT ?"""
""":data:`SELECT_EVENTS` without the fact ids (a stream without values needs none)."""
UPSERT_SNAPSHOT = """INSERT OR REPLACE INTO runeflow_snapshots
    (workflow_id, cursor, data, checksum, fact_ids) VALUES (?, ?, ?, ?, ?)"""
SELECT_SNAPSHOT_REFS = "SELECT cursor, fact_ids FROM runeflow_snapshots WHERE workflow_id = ?"
SELECT_FENCE = "SELECT epoch, compacted FROM runeflow_instances WHERE workflow_id = ?"
SELECT_COMPACTABLE = """SELECT COALESCE(SUM(last - first + 1), 0), MAX(last), MAX(at),
    (SELECT MAX(last) FROM runeflow_events WHERE workflow_id = ?1)
    FROM runeflow_events WHERE workflow_id = ?1 AND last <= ?2"""
"""``(events, last position, last time)`` of the rows a snapshot at ``?2`` covers, and the
log's last position."""
DELETE_COMPACTED = "DELETE FROM runeflow_events WHERE workflow_id = ? AND last <= ?"
SET_COMPACTED = """UPDATE runeflow_instances SET compacted = MAX(compacted, ?),
    updated_at = MAX(updated_at, ?) WHERE workflow_id = ?"""
_ROW_FACT_IDS = """SELECT j.value FROM runeflow_events e, json_each(e.fact_ids) j
    WHERE e.workflow_id = ?1 AND e.last <= ?2 AND typeof(e.fact_ids) = 'text'
    AND json_valid(e.fact_ids)"""
SELECT_OWNED_FACTS = f"""SELECT f.fact_id, f.hash FROM runeflow_facts f
    WHERE f.workflow_id = ?1 AND f.fact_id IN ({_ROW_FACT_IDS}
        UNION ALL SELECT j.value FROM runeflow_snapshots s, json_each(s.fact_ids) j
        WHERE ?3 AND s.workflow_id = ?1 AND typeof(s.fact_ids) = 'text'
        AND json_valid(s.fact_ids))"""
"""``(fact_id, hash)`` of the facts instance ``?1`` alone refers to from its log rows up to
position ``?2`` and, when ``?3``, from its snapshot."""
DELETE_FACT = "DELETE FROM runeflow_facts WHERE fact_id = ?"
DELETE_UNUSED_CONTENT = """DELETE FROM runeflow_contents WHERE hash = ?1 AND NOT EXISTS
    (SELECT 1 FROM runeflow_facts WHERE hash = ?1 AND hash <> '')"""
SELECT_PRUNABLE = """SELECT i.workflow_id FROM runeflow_instances i
    WHERE i.status IN ({marks}) AND i.updated_at < ?
    AND (i.owner IS NULL OR i.lease_expires <= ?)
    AND NOT EXISTS (SELECT 1 FROM runeflow_timers t WHERE t.workflow_id = i.workflow_id)
    AND COALESCE((SELECT e.at FROM runeflow_events e WHERE e.workflow_id = i.workflow_id
        ORDER BY e.last DESC LIMIT 1), 0) < ?
    ORDER BY i.updated_at, i.workflow_id LIMIT ?"""
"""Finished instances last updated before the threshold, with no live lease and no pending
timer or command (``?`` for the statuses, the threshold, now, the threshold, the limit)."""
SELECT_SNAPSHOT = "SELECT cursor, data, checksum FROM runeflow_snapshots WHERE workflow_id = ?"
UPSERT_TIMER = (
    "INSERT OR REPLACE INTO runeflow_timers (timer_id, workflow_id, fire_at, payload) "
    "VALUES (?, ?, ?, ?)"
)
SELECT_DUE_TIMERS = """SELECT timer_id, workflow_id, fire_at, payload FROM runeflow_timers
    WHERE fire_at <= ? ORDER BY fire_at, timer_id LIMIT ?"""
SELECT_OWNED_DUE_TIMERS = """SELECT t.timer_id, t.workflow_id, t.fire_at, t.payload
    FROM runeflow_timers t JOIN runeflow_instances i ON i.workflow_id = t.workflow_id
    WHERE t.fire_at <= ? AND i.owner = ? AND i.lease_expires > ?
    ORDER BY t.fire_at, t.timer_id LIMIT ?"""
SELECT_TIMERS = """SELECT timer_id, workflow_id, fire_at, payload FROM runeflow_timers
    WHERE workflow_id = ? ORDER BY fire_at, timer_id"""
SELECT_NEXT_TIMER = "SELECT MIN(fire_at) FROM runeflow_timers"
DELETE_TIMER = "DELETE FROM runeflow_timers WHERE timer_id = ?"
SELECT_LEASE_STATE = """SELECT owner, lease_expires, epoch FROM runeflow_instances
    WHERE workflow_id = ?"""
GRANT_LEASE = """UPDATE runeflow_instances SET owner = ?, lease_expires = ?, epoch = ?
    WHERE workflow_id = ?"""
RENEW_LEASE = """UPDATE runeflow_instances SET lease_expires = ?
    WHERE workflow_id = ? AND owner = ? AND lease_expires > ?"""
SELECT_OWNED = """SELECT workflow_id, epoch FROM runeflow_instances
    WHERE owner = ? AND lease_expires > ?"""
RENEW_LEASES = """UPDATE runeflow_instances SET lease_expires = ?
    WHERE owner = ? AND lease_expires > ?"""
RELEASE_LEASE = """UPDATE runeflow_instances SET owner = NULL, lease_expires = 0
    WHERE workflow_id = ? AND owner = ?"""
SELECT_LEASE = """SELECT owner FROM runeflow_instances
    WHERE workflow_id = ? AND owner IS NOT NULL AND lease_expires > ?"""
SELECT_LIVE_OWNERS = """SELECT DISTINCT owner FROM runeflow_instances
    WHERE lease_expires > ? AND owner IS NOT NULL ORDER BY owner"""
SELECT_CLAIMABLE = """SELECT workflow_id, epoch FROM runeflow_instances
    WHERE workflow_id IN (
        SELECT workflow_id FROM runeflow_instances WHERE status = 'running'
        UNION SELECT workflow_id FROM runeflow_timers WHERE fire_at <= ?)
    AND (owner IS NULL OR lease_expires <= ? OR owner IN ({dead}))
    ORDER BY updated_at LIMIT ?"""
DELETE_INSTANCE = tuple(
    f"DELETE FROM {table} WHERE workflow_id = ?"
    for table in (
        "runeflow_events",
        "runeflow_snapshots",
        "runeflow_timers",
        "runeflow_instances",
    )
)
COUNT_STATS = """SELECT (SELECT COUNT(*) FROM runeflow_instances),
    (SELECT COALESCE(SUM(last - first + 1), 0) FROM runeflow_events),
    (SELECT COUNT(*) FROM runeflow_snapshots),
    (SELECT COUNT(*) FROM runeflow_facts), (SELECT COUNT(*) FROM runeflow_contents)"""
CORRUPT_EVENT = """UPDATE runeflow_events SET data = substr(data, 1, length(data) / 2)
    WHERE workflow_id = ? AND first <= ? AND last >= ?"""


# --- listing a page at a time (schema 5) ----------------------------------------------------


_STATUS_RANGE = {
    "=": "status = ?",
    "<": "status < ?",
    ">": "status > ?",
    "><": "status > ? AND status < ?",
}


def select_page_keys(
    ranges: tuple[str, ...], workflow: bool, keyed: bool, newest_first: bool
) -> str:
    """The ``(created_at, workflow_id)`` of a page's instances, from the listing indexes:
    one part per status range (``ranges``: operators of
    :func:`runeflow.stores.listing.status_ranges`), merged.

    Parameters, for each part: the workflow name (when ``workflow``), the range's statuses,
    the key's two fields (when ``keyed``), the limit; then the limit again.
    """
    order = "DESC" if newest_first else "ASC"
    side = "<" if newest_first else ">"
    parts = []
    for op in ranges:
        conditions = ["definition_name = ?"] if workflow else []
        conditions.append(_STATUS_RANGE[op])
        conditions += [f"(created_at, workflow_id) {side} (?, ?)"] if keyed else []
        parts.append(
            f"""SELECT created_at, workflow_id FROM (SELECT created_at, workflow_id
            FROM runeflow_instances WHERE {" AND ".join(conditions)}
            ORDER BY created_at {order}, workflow_id {order} LIMIT ?)"""
        )
    return f"{' UNION ALL '.join(parts)} ORDER BY 1 {order}, 2 {order} LIMIT ?"


def select_ids_by_prefix(bounded: bool, forward: bool) -> str:
    """Up to ``?`` instances with an id in ``[?, ?)`` (``[?, ...)`` unless ``bounded``), after
    (or, unless ``forward``, before) the id ``?``, in id order from there:
    ``(workflow_id, status, definition_name, created_at)``."""
    upper = "AND workflow_id < ?" if bounded else ""
    side, order = (">", "ASC") if forward else ("<", "DESC")
    return f"""SELECT workflow_id, status, definition_name, created_at FROM runeflow_instances
        WHERE workflow_id >= ? {upper} AND workflow_id {side} ?
        ORDER BY workflow_id {order} LIMIT ?"""


SELECT_INSTANCES_BY_ID = f"{_SELECT_META} WHERE i.workflow_id IN ({{marks}})"
"""The rows of the instances whose ids fill ``{marks}`` (any order)."""


def count_instances(status: bool, workflow: bool) -> str:
    """How many instances have the status ``?`` (when ``status``) and the workflow ``?``
    (when ``workflow``), counting at most ``?`` index entries."""
    conditions = ["status = ?"] if status else []
    conditions += ["definition_name = ?"] if workflow else []
    where = " AND ".join(conditions) or "1"
    return f"SELECT COUNT(*) FROM (SELECT 1 FROM runeflow_instances WHERE {where} LIMIT ?)"


SELECT_WORKFLOW_NAMES = """WITH RECURSIVE names (name) AS (
        SELECT MIN(definition_name) FROM runeflow_instances
        UNION ALL SELECT (SELECT MIN(definition_name) FROM runeflow_instances
            WHERE definition_name > names.name) FROM names WHERE names.name IS NOT NULL)
    SELECT name FROM names WHERE name IS NOT NULL LIMIT ?"""
"""The distinct workflow names, in order: one index probe per name (a loose index scan)."""
