"""The SQL of :class:`~runeflow.stores.postgres.PostgresStore`: its schema migrations and
every statement it sends (all parameterised; ``{schema}`` stands for the quoted schema)."""

from __future__ import annotations

__all__ = [
    "MIGRATIONS",
    "QUERIES",
    "READS",
    "SCHEMA_VERSION_TABLE",
    "SELECT_INSTANCES_BY_ID",
    "SELECT_WORKFLOW_NAMES",
    "TABLES",
    "count_instances",
    "select_ids_by_prefix",
    "select_page_keys",
]

TABLES = ("instances", "events", "contents", "facts", "snapshots", "timers")
"""The store's tables (besides ``schema_version``), all in its schema."""

SCHEMA_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version INTEGER NOT NULL)"""

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE {schema}.instances (
            workflow_id TEXT PRIMARY KEY,
            definition_name TEXT NOT NULL,
            definition_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            cursor BIGINT NOT NULL DEFAULT 0,
            metadata JSONB NOT NULL DEFAULT '{{}}')""",
        "CREATE INDEX instances_status ON {schema}.instances (status)",
        """CREATE TABLE {schema}.events (
            workflow_id TEXT NOT NULL,
            last BIGINT NOT NULL,
            first BIGINT NOT NULL,
            data BYTEA NOT NULL,
            fact_ids TEXT[],
            PRIMARY KEY (workflow_id, last))""",
        "CREATE TABLE {schema}.contents (hash TEXT PRIMARY KEY, data BYTEA NOT NULL)",
        "CREATE TABLE {schema}.facts (fact_id TEXT PRIMARY KEY, hash TEXT NOT NULL)",
        """CREATE TABLE {schema}.snapshots (
            workflow_id TEXT PRIMARY KEY, cursor BIGINT NOT NULL, data BYTEA NOT NULL)""",
        """CREATE TABLE {schema}.timers (
            timer_id TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            fire_at DOUBLE PRECISION NOT NULL,
            payload JSONB NOT NULL)""",
        "CREATE INDEX timers_fire_at ON {schema}.timers (fire_at)",
        "CREATE INDEX timers_workflow ON {schema}.timers (workflow_id, fire_at)",
        """CREATE TABLE {schema}.leases (
            workflow_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL)""",
    ),
    # 2: values no longer than their hash live in the fact's row (hash = '').
    ("ALTER TABLE {schema}.facts ADD COLUMN data BYTEA",),
    # 3: the lease moves into the instance row, with a fencing token (epoch) that an append
    # checks on the row it locks anyway; error says why a runner could not load it.
    (
        """ALTER TABLE {schema}.instances ADD COLUMN owner TEXT,
            ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,
            ADD COLUMN lease_expires DOUBLE PRECISION NOT NULL DEFAULT 0,
            ADD COLUMN error TEXT""",
        """UPDATE {schema}.instances i SET owner = l.owner, lease_expires = l.expires_at,
            epoch = 1 FROM {schema}.leases l WHERE l.workflow_id = i.workflow_id""",
        "DROP TABLE {schema}.leases",
        "CREATE INDEX instances_lease ON {schema}.instances (lease_expires)",
    ),
    # 4: checksums (see runeflow.stores.integrity). A log row, a snapshot and a value kept in
    # a fact's row carry the CRC-32 of their blob (BIGINT: CRC-32 is unsigned), checked on
    # every read; rows written before have NULL and are read unverified (not backfilled:
    # that would vouch for data nobody checked, and rewrite every row). Values in contents
    # need no column: they are checked against their SHA-256 key.
    (
        "ALTER TABLE {schema}.events ADD COLUMN checksum BIGINT",
        "ALTER TABLE {schema}.facts ADD COLUMN checksum BIGINT",
        "ALTER TABLE {schema}.snapshots ADD COLUMN checksum BIGINT",
    ),
    # 5: an append no longer writes the instance row (which serialised appends behind one
    # row lock and left a dead row version per append): it takes a share lock on the row,
    # enough to keep the fencing check atomic against a new grant, and writes its log row
    # only. An instance's cursor is its log's last position and ``updated_at`` the later of
    # the row's time and the last log row's ``at``; the ``cursor`` column is no longer kept.
    ("ALTER TABLE {schema}.events ADD COLUMN at DOUBLE PRECISION",),
    # 6: listing a page at a time (Store.list_page, count_instances, workflow_names): the
    # status index gains the page order (created_at, workflow_id), one more index serves the
    # workflow filter, and one the id prefix search (COLLATE "C": code point order, where a
    # prefix is a range whatever the database's collation). A page is read from a range of
    # one of them per status, merged.
    (
        """CREATE INDEX instances_status_created
            ON {schema}.instances (status, created_at, workflow_id COLLATE "C")""",
        """CREATE INDEX instances_name_status_created
            ON {schema}.instances (definition_name, status, created_at, workflow_id COLLATE "C")""",
        'CREATE INDEX instances_id_c ON {schema}.instances (workflow_id COLLATE "C")',
        "DROP INDEX {schema}.instances_status",
    ),
    # 7: bounded stores (see runeflow.runner.retention). ``compacted``: the events up to this
    # position were removed by compaction (the snapshot holds their state), so the cursor is
    # the later of it and the last row's position. A fact row names the one instance whose
    # log refers to it (``workflow_id``; NULL when several do, or for save_fact), so that
    # deleting an instance finds its facts by their ids, with no scan; existing rows get
    # their owner from the fact ids of the log rows. A snapshot lists the facts it refers to.
    # The index on hashes finds whether a content row is still used; the one on (status,
    # updated_at) the finished instances to prune.
    (
        "ALTER TABLE {schema}.instances ADD COLUMN compacted BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE {schema}.facts ADD COLUMN workflow_id TEXT",
        "ALTER TABLE {schema}.snapshots ADD COLUMN fact_ids TEXT[]",
        "CREATE INDEX facts_hash ON {schema}.facts (hash) WHERE hash <> ''",
        "CREATE INDEX instances_updated ON {schema}.instances (status, updated_at)",
        """UPDATE {schema}.facts f SET workflow_id = o.owner FROM (
            SELECT u.fact_id, MIN(e.workflow_id) AS owner
            FROM {schema}.events e, unnest(e.fact_ids) AS u (fact_id)
            GROUP BY u.fact_id HAVING COUNT(DISTINCT e.workflow_id) = 1) o
            WHERE f.fact_id = o.fact_id""",
    ),
]
"""Schema migrations in order; ``schema_version.version`` counts those applied."""

_META = (
    "workflow_id, definition_name, definition_hash, status, created_at, updated_at, cursor, "
    "metadata"
)
_LAST_ROW = """LEFT JOIN LATERAL (SELECT e.last, e.at FROM {schema}.events e
    WHERE e.workflow_id = i.workflow_id ORDER BY e.last DESC LIMIT 1) l ON true"""
_META_READ = """i.workflow_id, i.definition_name, i.definition_hash, i.status, i.created_at,
    GREATEST(i.updated_at, COALESCE(l.at, 0)), GREATEST(COALESCE(l.last, 0), i.compacted),
    i.metadata, i.owner, i.lease_expires, i.epoch, i.error, i.compacted"""
_APPEND = """WITH inst AS (
            SELECT epoch, status, compacted FROM {schema}.instances WHERE workflow_id = %(wid)s
            FOR SHARE),
        pos AS (
            SELECT GREATEST(COALESCE((SELECT last FROM {schema}.events
                WHERE workflow_id = %(wid)s ORDER BY last DESC LIMIT 1), 0), compacted) AS cursor
            FROM inst WHERE %(token)s::bigint IS NULL OR epoch = %(token)s),
        st AS (
            UPDATE {schema}.instances SET status = %(status)s, updated_at = %(now)s
            WHERE workflow_id = %(wid)s AND %(status)s::text IS NOT NULL
            AND status IS DISTINCT FROM %(status)s AND EXISTS (SELECT 1 FROM pos)),
        ev AS (
            INSERT INTO {schema}.events (workflow_id, last, first, data, fact_ids, checksum, at)
            SELECT %(wid)s, cursor + %(n)s, cursor + 1, %(data)s, %(fact_ids)s, %(crc)s,
                %(now)s
            FROM pos WHERE %(n)s > 0),
        fa AS (
            INSERT INTO {schema}.facts AS ft (fact_id, hash, data, checksum, workflow_id)
            SELECT f, h, d, c, %(wid)s FROM unnest(
                %(fids)s::text[], %(fhashes)s::text[], %(fdata)s::bytea[], %(fcrcs)s::bigint[]
            ) AS u (f, h, d, c)
            WHERE EXISTS (SELECT 1 FROM pos)
            ON CONFLICT (fact_id) DO UPDATE
            SET hash = EXCLUDED.hash, data = EXCLUDED.data, checksum = EXCLUDED.checksum,
            workflow_id = CASE WHEN ft.workflow_id = EXCLUDED.workflow_id
                THEN ft.workflow_id END)"""
"""One append (fenced by a share lock on the instance row, see migration 5): its log row and
fact rows (a fact written by another instance too has no owner: see migration 6). Ends with
the appends' ``SELECT``; :data:`_APPEND_ALL` adds contents and timers."""

_APPEND_ALL = (
    _APPEND
    + """,
        gc AS (SELECT pg_advisory_xact_lock_shared(%(gc)s::bigint) FROM pos),
        ct AS (
            INSERT INTO {schema}.contents (hash, data)
            SELECT h, d FROM unnest(%(hashes)s::text[], %(blobs)s::bytea[]) AS u (h, d)
            WHERE EXISTS (SELECT 1 FROM pos) AND EXISTS (SELECT 1 FROM gc)
            ON CONFLICT (hash) DO NOTHING),
        tm AS (
            INSERT INTO {schema}.timers (timer_id, workflow_id, fire_at, payload)
            SELECT t, w, f, p::jsonb FROM unnest(
                %(tids)s::text[], %(twids)s::text[], %(tfire)s::float8[], %(tpay)s::text[]
            ) AS u (t, w, f, p)
            WHERE EXISTS (SELECT 1 FROM pos)
            ON CONFLICT (timer_id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id,
            fire_at = EXCLUDED.fire_at, payload = EXCLUDED.payload),
        td AS (
            DELETE FROM {schema}.timers WHERE timer_id = ANY(%(done)s::text[])
            AND EXISTS (SELECT 1 FROM pos))"""
)
"""Contents are written under a shared advisory lock (after the instance row's lock): the
collection of unused contents takes it exclusively, so it never deletes a value that a fact
being written refers to."""
_APPEND += "\n        SELECT cursor + %(n)s FROM pos"
_APPEND_ALL += "\n        SELECT cursor + %(n)s FROM pos"

_PRUNABLE = """SELECT i.workflow_id FROM {schema}.instances i
    WHERE i.status = ANY(%(statuses)s) AND i.updated_at < %(before)s
    AND (i.owner IS NULL OR i.lease_expires <= %(now)s)
    AND NOT EXISTS (SELECT 1 FROM {schema}.timers t WHERE t.workflow_id = i.workflow_id)
    AND COALESCE((SELECT e.at FROM {schema}.events e WHERE e.workflow_id = i.workflow_id
        ORDER BY e.last DESC LIMIT 1), 0) < %(before)s
    ORDER BY i.updated_at, i.workflow_id LIMIT %(limit)s"""
"""Finished instances last updated before the threshold, with no live lease and no pending
timer or command."""

QUERIES: dict[str, str] = {
    "insert_instance": f"""INSERT INTO {{schema}}.instances
        ({_META}, owner, epoch, lease_expires)
        VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s) ON CONFLICT (workflow_id) DO NOTHING
        RETURNING workflow_id""",
    "select_instance": f"""SELECT {_META_READ} FROM {{schema}}.instances i {_LAST_ROW}
        WHERE i.workflow_id = %s""",
    "set_error": "UPDATE {schema}.instances SET error = %s WHERE workflow_id = %s",
    "select_epoch": "SELECT epoch FROM {schema}.instances WHERE workflow_id = %s",
    "select_instances": f"""SELECT {_META_READ} FROM {{schema}}.instances i {_LAST_ROW}
        WHERE %s::text[] IS NULL OR i.status = ANY(%s::text[])
        ORDER BY i.created_at, i.workflow_id""",
    "select_cursor": f"""SELECT GREATEST(COALESCE(l.last, 0), i.compacted)
        FROM {{schema}}.instances i {_LAST_ROW} WHERE i.workflow_id = %s""",
    "select_log_start": "SELECT compacted FROM {schema}.instances WHERE workflow_id = %s",
    "select_epochs": """SELECT workflow_id, epoch FROM {schema}.instances
        WHERE workflow_id = ANY(%s)""",
    "update_status": """UPDATE {schema}.instances SET status = %s, updated_at = %s
        WHERE workflow_id = %s""",
    "append": _APPEND,
    "append_all": _APPEND_ALL,
    "select_events": """SELECT first, data, fact_ids, last, checksum FROM {schema}.events
        WHERE workflow_id = %s AND last > %s ORDER BY last LIMIT %s""",
    "select_events_only": """SELECT first, data, NULL, last, checksum FROM {schema}.events
        WHERE workflow_id = %s AND last > %s ORDER BY last LIMIT %s""",
    "insert_content": """INSERT INTO {schema}.contents (hash, data) VALUES (%s, %s)
        ON CONFLICT (hash) DO NOTHING""",
    "upsert_fact": """INSERT INTO {schema}.facts (fact_id, hash, data, checksum)
        VALUES (%s, %s, %s, %s) ON CONFLICT (fact_id) DO UPDATE
        SET hash = EXCLUDED.hash, data = EXCLUDED.data, checksum = EXCLUDED.checksum,
        workflow_id = NULL""",
    "lock_contents_shared": "SELECT pg_advisory_xact_lock_shared(%s)",
    "lock_contents": "SELECT pg_advisory_xact_lock(%s)",
    "select_fact_values": """SELECT f.fact_id, COALESCE(f.data, c.data), f.checksum,
        CASE WHEN f.data IS NULL THEN f.hash END
        FROM {schema}.facts f LEFT JOIN {schema}.contents c ON c.hash = f.hash
        WHERE f.fact_id = ANY(%s) AND COALESCE(f.data, c.data) IS NOT NULL""",
    "upsert_snapshot": """INSERT INTO {schema}.snapshots
        (workflow_id, cursor, data, checksum, fact_ids) VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (workflow_id) DO UPDATE SET cursor = EXCLUDED.cursor, data = EXCLUDED.data,
        checksum = EXCLUDED.checksum, fact_ids = EXCLUDED.fact_ids""",
    "fence_share": """SELECT epoch, compacted FROM {schema}.instances WHERE workflow_id = %s
        FOR SHARE""",
    "fence_update": """SELECT epoch, compacted FROM {schema}.instances WHERE workflow_id = %s
        FOR UPDATE""",
    "snapshot_refs": "SELECT cursor, fact_ids FROM {schema}.snapshots WHERE workflow_id = %s",
    "compactable": """SELECT COALESCE(SUM(last - first + 1), 0), MAX(last), MAX(at),
        (SELECT MAX(last) FROM {schema}.events WHERE workflow_id = %(wid)s)
        FROM {schema}.events WHERE workflow_id = %(wid)s AND last <= %(upto)s""",
    "compacted_facts": """SELECT f.fact_id, f.hash FROM {schema}.facts f
        WHERE f.workflow_id = %(wid)s AND f.fact_id IN (SELECT unnest(e.fact_ids)
            FROM {schema}.events e WHERE e.workflow_id = %(wid)s AND e.last <= %(upto)s)""",
    "delete_compacted": "DELETE FROM {schema}.events WHERE workflow_id = %s AND last <= %s",
    "set_compacted": """UPDATE {schema}.instances SET compacted = GREATEST(compacted, %s),
        updated_at = GREATEST(updated_at, %s) WHERE workflow_id = %s""",
    "owned_facts": """SELECT f.fact_id, f.hash FROM {schema}.facts f JOIN (
            SELECT e.workflow_id, unnest(e.fact_ids) AS fact_id FROM {schema}.events e
            WHERE e.workflow_id = ANY(%(ids)s)
            UNION SELECT s.workflow_id, unnest(s.fact_ids) FROM {schema}.snapshots s
            WHERE s.workflow_id = ANY(%(ids)s)) r
        ON r.fact_id = f.fact_id AND r.workflow_id = f.workflow_id""",
    "delete_facts": "DELETE FROM {schema}.facts WHERE fact_id = ANY(%s)",
    "delete_unused_contents": """DELETE FROM {schema}.contents c WHERE c.hash = ANY(%s)
        AND NOT EXISTS (SELECT 1 FROM {schema}.facts f WHERE f.hash = c.hash AND f.hash <> '')""",
    "select_prunable": _PRUNABLE,
    "lock_prunable": _PRUNABLE + " FOR UPDATE OF i SKIP LOCKED",
    "select_snapshot": """SELECT cursor, data, checksum FROM {schema}.snapshots
        WHERE workflow_id = %s""",
    # only for an instance that exists, share-locked (a delete or prune holding it waits
    # for nothing: this waits for it, then finds no row and stores nothing)
    "upsert_timer": """INSERT INTO {schema}.timers (timer_id, workflow_id, fire_at, payload)
        SELECT u.t, u.w, u.f, u.p::jsonb FROM (VALUES (%s, %s, %s::float8, %s)) AS u (t, w, f, p)
        WHERE EXISTS (SELECT 1 FROM {schema}.instances i WHERE i.workflow_id = u.w FOR SHARE)
        ON CONFLICT (timer_id) DO UPDATE SET
        workflow_id = EXCLUDED.workflow_id, fire_at = EXCLUDED.fire_at,
        payload = EXCLUDED.payload""",
    "select_due_timers": """SELECT timer_id, workflow_id, fire_at, payload FROM {schema}.timers
        WHERE fire_at <= %s ORDER BY fire_at, timer_id LIMIT %s""",
    "select_owned_due_timers": """SELECT t.timer_id, t.workflow_id, t.fire_at, t.payload
        FROM {schema}.timers t JOIN {schema}.instances i ON i.workflow_id = t.workflow_id
        WHERE t.fire_at <= %s AND i.owner = %s AND i.lease_expires > %s
        ORDER BY t.fire_at, t.timer_id LIMIT %s""",
    "select_timers": """SELECT timer_id, workflow_id, fire_at, payload FROM {schema}.timers
        WHERE workflow_id = %s ORDER BY fire_at, timer_id""",
    "select_next_timer": "SELECT MIN(fire_at) FROM {schema}.timers",
    "delete_timer": "DELETE FROM {schema}.timers WHERE timer_id = %s",
    "lock_lease": """SELECT owner, lease_expires, epoch FROM {schema}.instances
        WHERE workflow_id = %s FOR UPDATE""",
    "grant_lease": """UPDATE {schema}.instances SET owner = %s, lease_expires = %s, epoch = %s
        WHERE workflow_id = %s""",
    "renew_lease": """UPDATE {schema}.instances SET lease_expires = %s
        WHERE workflow_id = %s AND owner = %s AND lease_expires > %s""",
    "renew_leases": """WITH o AS (SELECT workflow_id FROM {schema}.instances
            WHERE owner = %s AND lease_expires > %s ORDER BY workflow_id FOR UPDATE)
        UPDATE {schema}.instances i SET lease_expires = %s FROM o
        WHERE i.workflow_id = o.workflow_id RETURNING i.workflow_id, i.epoch""",
    # rows locked in id order, as a batch of appends locks them: the two never deadlock
    "release_lease": """UPDATE {schema}.instances SET owner = NULL, lease_expires = 0
        WHERE workflow_id = %s AND owner = %s""",
    "release_leases": """UPDATE {schema}.instances SET owner = NULL, lease_expires = 0
        WHERE workflow_id = ANY(%s) AND owner = %s""",
    "select_lease": """SELECT owner FROM {schema}.instances
        WHERE workflow_id = %s AND owner IS NOT NULL AND lease_expires > %s""",
    "live_owners": """SELECT DISTINCT owner FROM {schema}.instances
        WHERE lease_expires > %s AND owner IS NOT NULL ORDER BY owner""",
    "claim": """WITH c AS (
            SELECT workflow_id FROM {schema}.instances
            WHERE workflow_id IN (
                SELECT workflow_id FROM {schema}.instances WHERE status = 'running'
                UNION SELECT workflow_id FROM {schema}.timers WHERE fire_at <= %(due)s)
            AND (owner IS NULL OR lease_expires <= %(now)s OR owner = ANY(%(dead)s))
            AND NOT (workflow_id = ANY(%(exclude)s))
            ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
        UPDATE {schema}.instances i
        SET owner = %(owner)s, lease_expires = %(until)s, epoch = i.epoch + 1
        FROM c WHERE i.workflow_id = c.workflow_id RETURNING i.workflow_id, i.epoch""",
    "stats": """SELECT (SELECT COUNT(*) FROM {schema}.instances),
        (SELECT COALESCE(SUM(last - first + 1), 0) FROM {schema}.events),
        (SELECT COUNT(*) FROM {schema}.snapshots),
        (SELECT COUNT(*) FROM {schema}.facts), (SELECT COUNT(*) FROM {schema}.contents)""",
    "corrupt_event": """UPDATE {schema}.events
        SET data = substring(data FROM 1 FOR length(data) / 2)
        WHERE workflow_id = %s AND first <= %s AND last >= %s""",
    **{
        f"delete_{table}": f"DELETE FROM {{schema}}.{table} WHERE workflow_id = ANY(%s)"
        for table in ("events", "snapshots", "timers", "instances")
    },
}
"""Every statement the store sends, with ``{schema}`` standing for the quoted schema."""

READS = frozenset(
    name for name in QUERIES if name.startswith("select") or name in ("live_owners", "stats")
)
"""Statements that only read, so that a failed attempt may be repeated."""


# --- listing a page at a time (schema 6); ``{schema}`` as above ------------------------------

_ID = 'workflow_id COLLATE "C"'


_STATUS_RANGE = {
    "=": "status = %s",
    "<": "status < %s",
    ">": "status > %s",
    "><": "status > %s AND status < %s",
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
        conditions = ["definition_name = %s"] if workflow else []
        conditions.append(_STATUS_RANGE[op])
        conditions += [f"(created_at, {_ID}) {side} (%s, %s)"] if keyed else []
        parts.append(
            f"""(SELECT created_at, {_ID} AS workflow_id FROM {{schema}}.instances
            WHERE {" AND ".join(conditions)}
            ORDER BY created_at {order}, {_ID} {order} LIMIT %s)"""
        )
    union = " UNION ALL ".join(parts)
    return f"SELECT * FROM ({union}) AS page ORDER BY 1 {order}, 2 {order} LIMIT %s"


def select_ids_by_prefix(bounded: bool, forward: bool) -> str:
    """Up to ``%s`` instances with an id in ``[%s, %s)`` (``[%s, ...)`` unless ``bounded``),
    after (or, unless ``forward``, before) the id ``%s``, in code point order from there:
    ``(workflow_id, status, definition_name, created_at)``."""
    upper = f"AND {_ID} < %s" if bounded else ""
    side, order = (">", "ASC") if forward else ("<", "DESC")
    return f"""SELECT workflow_id, status, definition_name, created_at FROM {{schema}}.instances
        WHERE {_ID} >= %s {upper} AND {_ID} {side} %s ORDER BY {_ID} {order} LIMIT %s"""


def count_instances(status: bool, workflow: bool) -> str:
    """How many instances have the status ``%s`` (when ``status``) and the workflow ``%s``
    (when ``workflow``), counting at most ``%s`` index entries."""
    conditions = ["status = %s"] if status else []
    conditions += ["definition_name = %s"] if workflow else []
    where = " AND ".join(conditions) or "TRUE"
    return f"SELECT COUNT(*) FROM (SELECT 1 FROM {{schema}}.instances WHERE {where} LIMIT %s) c"


SELECT_INSTANCES_BY_ID = f"""SELECT {_META_READ} FROM {{schema}}.instances i {_LAST_ROW}
    WHERE i.workflow_id = ANY(%s)"""
"""The rows of the instances whose ids are in the array ``%s`` (any order)."""
SELECT_WORKFLOW_NAMES = """WITH RECURSIVE names (name) AS (
        SELECT MIN(definition_name) FROM {schema}.instances
        UNION ALL SELECT (SELECT MIN(definition_name) FROM {schema}.instances
            WHERE definition_name > names.name) FROM names WHERE names.name IS NOT NULL)
    SELECT name FROM names WHERE name IS NOT NULL LIMIT %s"""
"""The distinct workflow names, in order: one index probe per name (a loose index scan)."""
