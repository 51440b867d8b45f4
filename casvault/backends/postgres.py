"""The record index in PostgreSQL (psycopg 3), fed from the manifests.

The manifests stay the durable log; this index is derived from them. Each
user's manifest is applied from the byte offset recorded in
``casvault.manifest_offsets`` (with the file's inode: a rewritten manifest is
reloaded from the start), in the same transaction as the rows it changes, so
a sync is atomic and a rerun reads only the tail. Listings answer with the
same pages and the same cursors as :class:`casvault.index.UserIndex`.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from ..errors import ConfigError, InvalidInput, StorageError
from ..index import INCLUDES, Page, Query, decode_cursor, encode_cursor
from ..manifest import Manifest
from ..quota import Usage
from ..records import (
    AddEvent,
    Event,
    Record,
    apply_event,
    decode_record,
    encode_record,
    event_id,
)
from ..secondary import MIN_TYPO_LEN, deletions, facet_values, record_words, top, within_one_edit, words_of

try:
    import psycopg
except ModuleNotFoundError:  # pragma: no cover - the postgres extra is not installed
    psycopg = None

SCHEMA_VERSION = 2
# NOTE: one advisory lock key serialises schema creation across processes
# (concurrent CREATE ... IF NOT EXISTS can still collide in the catalog).
SCHEMA_LOCK = 0x636173766C74

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS casvault;
CREATE TABLE IF NOT EXISTS casvault.records (
    owner        text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL,
    created_at   timestamptz NOT NULL,
    sha256       text NOT NULL,
    bytes        bigint NOT NULL,
    tags         text[] NOT NULL DEFAULT '{}',
    favorite     boolean NOT NULL DEFAULT false,
    workflow_id  text,
    aspect_ratio text,
    prompt       text,
    prompt_lower text,
    record       jsonb NOT NULL,
    prompt_tsv   tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(prompt, ''))) STORED,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS records_listing
    ON casvault.records (owner, kind, status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS records_owner_time ON casvault.records (owner, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS records_tags ON casvault.records USING gin (tags);
CREATE INDEX IF NOT EXISTS records_prompt_tsv ON casvault.records USING gin (prompt_tsv);
CREATE INDEX IF NOT EXISTS records_workflow ON casvault.records (workflow_id);
CREATE INDEX IF NOT EXISTS records_id ON casvault.records (id);
CREATE INDEX IF NOT EXISTS records_sha256 ON casvault.records (sha256);
CREATE TABLE IF NOT EXISTS casvault.manifest_offsets (
    owner      text COLLATE "C" PRIMARY KEY,
    inode      bigint NOT NULL,
    "offset"   bigint NOT NULL,
    events     bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS casvault.owner_counts (
    owner  text COLLATE "C" NOT NULL,
    kind   text NOT NULL,
    status text NOT NULL,
    count  bigint NOT NULL,
    bytes  bigint NOT NULL,
    PRIMARY KEY (owner, kind, status)
);
CREATE TABLE IF NOT EXISTS casvault.schema_version (version integer NOT NULL);
ALTER TABLE casvault.records ADD COLUMN IF NOT EXISTS words text[] NOT NULL DEFAULT '{}';
ALTER TABLE casvault.records ADD COLUMN IF NOT EXISTS model text;
ALTER TABLE casvault.records ADD COLUMN IF NOT EXISTS sampler text;
ALTER TABLE casvault.records ADD COLUMN IF NOT EXISTS loras text[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS records_words ON casvault.records USING gin (words);
CREATE INDEX IF NOT EXISTS records_loras ON casvault.records USING gin (loras);
CREATE INDEX IF NOT EXISTS records_model ON casvault.records (owner, model);
CREATE INDEX IF NOT EXISTS records_sampler ON casvault.records (owner, sampler);
CREATE TABLE IF NOT EXISTS casvault.words (
    owner text COLLATE "C" NOT NULL,
    word  text COLLATE "C" NOT NULL,
    n     bigint NOT NULL,
    near  text[] NOT NULL,
    PRIMARY KEY (owner, word)
);
CREATE INDEX IF NOT EXISTS words_near ON casvault.words USING gin (near);
CREATE TABLE IF NOT EXISTS casvault.facet_counts (
    owner  text COLLATE "C" NOT NULL,
    kind   text NOT NULL,
    status text NOT NULL,
    field  text NOT NULL,
    value  text COLLATE "C" NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (owner, kind, status, field, value)
);
"""

# NOTE: `q` means what it means in the manifest index (casvault.secondary):
# every query word matches a record's search word by prefix or within one
# typo. Each row keeps its search words (``words``, made by the same Python
# code, GIN-indexed); ``casvault.words`` is each owner's vocabulary with the
# deletion neighbourhood of each word (``near``, GIN-indexed). A query word is
# expanded against the vocabulary first (prefix: a range of the primary key;
# typo: candidates by ``near``, verified in Python), then rows are selected by
# ``words && <the matching words>``. The trigram index on prompt_lower stays
# for ad-hoc substring queries.
TRIGRAM_SQL = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS records_prompt_trgm ON casvault.records USING gin (prompt_lower gin_trgm_ops);
"""

COLUMNS = (
    "owner, id, kind, status, created_at, sha256, bytes, tags, favorite, "
    "workflow_id, aspect_ratio, prompt, prompt_lower, record, words, model, sampler, loras"
)
ON_CONFLICT = """
ON CONFLICT (owner, id) DO UPDATE SET
    kind = excluded.kind, status = excluded.status, created_at = excluded.created_at,
    sha256 = excluded.sha256, bytes = excluded.bytes, tags = excluded.tags, favorite = excluded.favorite,
    workflow_id = excluded.workflow_id, aspect_ratio = excluded.aspect_ratio, prompt = excluded.prompt,
    prompt_lower = excluded.prompt_lower, record = excluded.record, words = excluded.words,
    model = excluded.model, sampler = excluded.sampler, loras = excluded.loras
"""
UPSERT_SQL = (
    f"INSERT INTO casvault.records ({COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s::timestamptz, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)" + ON_CONFLICT
)
# NOTE: above this many rows a batch goes through COPY into a temporary table
# (several times faster than row-by-row upserts for a first load).
COPY_THRESHOLD = 500
FACET_COUNTS_SQL = """
INSERT INTO casvault.facet_counts (owner, kind, status, field, value, n) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (owner, kind, status, field, value) DO UPDATE SET n = casvault.facet_counts.n + excluded.n
"""
WORDS_SQL = """
INSERT INTO casvault.words (owner, word, n, near) VALUES (%s, %s, %s, %s)
ON CONFLICT (owner, word) DO UPDATE SET n = casvault.words.n + excluded.n
"""
# Column (or array column) of each facet field.
FACET_COLUMNS = {
    "model": ("model", False), "lora": ("loras", True), "sampler": ("sampler", False),
    "workflow_id": ("workflow_id", False), "aspect_ratio": ("aspect_ratio", False), "tag": ("tags", True),
}
COUNTS_SQL = """
INSERT INTO casvault.owner_counts (owner, kind, status, count, bytes) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (owner, kind, status) DO UPDATE SET
    count = casvault.owner_counts.count + excluded.count, bytes = casvault.owner_counts.bytes + excluded.bytes
"""


def fold(owner: str, events: Iterable[Event], current: Mapping[str, Record]) -> dict[str, Record | None]:
    """The records that ``events`` change, given the ``current`` ones (None: removed).

    Mirrors :meth:`casvault.index.UserIndex._apply`, so both indexes agree.
    """
    changed: dict[str, Record | None] = {}

    def look(rid: str) -> Record | None:
        return changed[rid] if rid in changed else current.get(rid)

    for event in events:
        rid = event_id(event)
        changed[rid] = apply_event(look(rid), event, owner)
    return changed


def _row(owner: str, record: Record) -> tuple[Any, ...]:
    prompt = getattr(record, "prompt", None)
    values = facet_values(record)
    return (
        owner,
        record.id,
        record.kind,
        record.status,
        record.created_at,
        record.sha256,
        record.bytes,
        list(record.tags),
        bool(record.favorite),
        getattr(record, "workflow_id", None),
        getattr(record, "aspect_ratio", None),
        prompt,
        prompt.lower() if prompt is not None else None,
        encode_record(record).decode(),
        sorted(record_words(record)),
        (values["model"] or (None,))[0],
        (values["sampler"] or (None,))[0],
        list(values["lora"]),
    )


def _near(word: str) -> list[str]:
    """A vocabulary word's deletion neighbourhood (empty for words without typo tolerance)."""
    return sorted(deletions(word)) if len(word) >= MIN_TYPO_LEN - 1 and not word.isdigit() else []


def _time(value: str, field: str) -> str:
    """An ISO time checked before PostgreSQL sees it; raises InvalidInput."""
    try:
        if "\x00" in value:
            raise ValueError(value)
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} is not valid", field=field) from None
    return value


class PostgresIndex:
    """Every user's records in one PostgreSQL table, kept in step with the manifests."""

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        if psycopg is None:
            raise ConfigError("the PostgreSQL index needs psycopg: pip install 'casvault[postgres]'")
        if not dsn:
            raise ConfigError("the PostgreSQL index needs a DSN (CASVAULT_PG_DSN)")
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._pid = 0
        self._lock = threading.RLock()
        self._schema_ready = False

    def __repr__(self) -> str:
        return "PostgresIndex()"

    # --- connection -----------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """This process's connection (one per process, shared by its threads under a lock).

        Raises StorageError when PostgreSQL cannot be reached or fails.
        """
        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._pid != os.getpid():
                    # NOTE: a connection inherited across fork() belongs to the
                    # parent; the child opens its own and leaves that one alone.
                    self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
                    self._pid = os.getpid()
                yield self._conn
            except psycopg.OperationalError as exc:
                self._drop_connection()
                raise StorageError(f"PostgreSQL is not reachable: {_first_line(exc)}") from exc
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL failed: {_first_line(exc)}") from exc

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            self._drop_connection()

    def create_schema(self) -> None:
        """Create the tables and indexes if missing (idempotent, safe to race)."""
        with self.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                conn.execute(SCHEMA_SQL)
                version = conn.execute("SELECT max(version) FROM casvault.schema_version").fetchone()[0]
                if version is None:
                    conn.execute("INSERT INTO casvault.schema_version VALUES (%s)", (SCHEMA_VERSION,))
                elif version < SCHEMA_VERSION:
                    # NOTE: rows of schema 1 lack the search words and facet
                    # columns: forgetting the offsets makes each owner's next
                    # sync reload its rows from the manifest.
                    conn.execute("DELETE FROM casvault.manifest_offsets")
                    conn.execute("UPDATE casvault.schema_version SET version = %s", (SCHEMA_VERSION,))
                try:
                    with conn.transaction():
                        conn.execute(TRIGRAM_SQL)
                except psycopg.Error:
                    # NOTE: without pg_trgm (not installed, or no right to create
                    # it) the prompt filter still works, by scanning the owner's rows.
                    pass
        self._schema_ready = True

    def _ready(self) -> None:
        """Create the schema on first use, unless it is there (the app role may lack CREATE)."""
        if self._schema_ready:
            return
        with self.connection() as conn:
            exists = conn.execute("SELECT to_regclass('casvault.schema_version') IS NOT NULL").fetchone()[0]
            version = conn.execute("SELECT max(version) FROM casvault.schema_version").fetchone()[0] if exists else None
        if version is not None and version >= SCHEMA_VERSION:
            self._schema_ready = True
        else:
            self.create_schema()

    # --- writing --------------------------------------------------------------

    def _apply(self, conn: Any, owner: str, events: list[Event], *, empty: bool = False) -> None:
        """Apply events to the rows and the counts of ``owner`` (inside a transaction).

        ``empty`` says the owner has no rows yet (a first load): nothing to look up.
        """
        current: dict[str, Record] = {}
        touched = sorted({e.record.id if isinstance(e, AddEvent) else e.id for e in events})
        if touched and not empty:
            rows = conn.execute(
                "SELECT record::text FROM casvault.records WHERE owner = %s AND id = ANY(%s)", (owner, touched)
            ).fetchall()
            for (text,) in rows:
                record = decode_record(text.encode())
                current[record.id] = record
        changed = fold(owner, events, current)
        deltas: dict[tuple[str, str], list[int]] = {}
        for rid, new in changed.items():
            for record, sign in ((current.get(rid), -1), (new, +1)):
                if record is not None:
                    d = deltas.setdefault((record.kind, record.status), [0, 0])
                    d[0] += sign
                    d[1] += sign * record.bytes
        vocab: dict[str, int] = {}
        facet_deltas: dict[tuple[str, str, str, str], int] = {}
        for rid, new in changed.items():
            for record, sign in ((current.get(rid), -1), (new, +1)):
                if record is not None:
                    for word in record_words(record):
                        vocab[word] = vocab.get(word, 0) + sign
                    for name, values in facet_values(record).items():
                        if name in FACET_COLUMNS:
                            for value in values:
                                key = (record.kind, record.status, name, value)
                                facet_deltas[key] = facet_deltas.get(key, 0) + sign
        gone = [rid for rid, record in changed.items() if record is None and rid in current]
        kept = [_row(owner, record) for record in changed.values() if record is not None]
        if gone:
            conn.execute("DELETE FROM casvault.records WHERE owner = %s AND id = ANY(%s)", (owner, gone))
        if len(kept) > COPY_THRESHOLD:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS records_load (LIKE casvault.records) ON COMMIT DELETE ROWS")
            with conn.cursor() as cur:
                with cur.copy(f"COPY records_load ({COLUMNS}) FROM STDIN") as copy:
                    for row in kept:
                        copy.write_row(row)
                cur.execute(f"INSERT INTO casvault.records ({COLUMNS}) SELECT {COLUMNS} FROM records_load" + ON_CONFLICT)
                cur.execute("TRUNCATE records_load")
        elif kept:
            with conn.cursor() as cur:
                cur.executemany(UPSERT_SQL, kept)
        self._apply_vocabulary(conn, owner, vocab)
        self._apply_facet_counts(conn, owner, facet_deltas)
        counts = [(owner, kind, status, n, b) for (kind, status), (n, b) in deltas.items() if n or b]
        if counts:
            with conn.cursor() as cur:
                cur.executemany(COUNTS_SQL, counts)

    def _apply_vocabulary(self, conn: Any, owner: str, delta: dict[str, int]) -> None:
        """Add the word count changes of ``owner``; words no record holds any more are dropped."""
        rows = [(owner, word, n, _near(word)) for word, n in delta.items() if n]
        if not rows:
            return
        with conn.cursor() as cur:
            if len(rows) > COPY_THRESHOLD:
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS words_load (LIKE casvault.words) ON COMMIT DELETE ROWS")
                with cur.copy("COPY words_load (owner, word, n, near) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(
                    "INSERT INTO casvault.words SELECT * FROM words_load"
                    " ON CONFLICT (owner, word) DO UPDATE SET n = casvault.words.n + excluded.n"
                )
                cur.execute("TRUNCATE words_load")
            else:
                cur.executemany(WORDS_SQL, rows)
            fewer = [word for word, n in delta.items() if n < 0]
            if fewer:
                cur.execute("DELETE FROM casvault.words WHERE owner = %s AND word = ANY(%s) AND n <= 0", (owner, fewer))

    def _apply_facet_counts(self, conn: Any, owner: str, delta: dict[tuple[str, str, str, str], int]) -> None:
        """Add the facet value count changes of ``owner`` (the unfiltered facets read them, not the rows)."""
        rows = [(owner, *key, n) for key, n in delta.items() if n]
        if not rows:
            return
        with conn.cursor() as cur:
            cur.executemany(FACET_COUNTS_SQL, rows)
            if any(n < 0 for *_, n in rows):
                cur.execute("DELETE FROM casvault.facet_counts WHERE owner = %s AND n <= 0", (owner,))

    def _lock_owner(self, conn: Any, owner: str) -> None:
        """Serialise changes to one owner's rows and counts (until the transaction ends)."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("casvault.owner:" + owner,))

    def _clear_owner(self, conn: Any, owner: str) -> None:
        conn.execute("DELETE FROM casvault.records WHERE owner = %s", (owner,))
        conn.execute("DELETE FROM casvault.owner_counts WHERE owner = %s", (owner,))
        conn.execute("DELETE FROM casvault.words WHERE owner = %s", (owner,))
        conn.execute("DELETE FROM casvault.facet_counts WHERE owner = %s", (owner,))

    def apply(self, owner: str, events: list[Event]) -> int:
        """Apply manifest events of ``owner`` (idempotent: upsert by id); returns how many.

        Does not move the recorded manifest offset; :meth:`sync` does both.
        """
        self._ready()
        with self.connection() as conn, conn.transaction():
            self._lock_owner(conn, owner)
            self._apply(conn, owner, events)
        return len(events)

    def sync(self, owner: str, manifest: Manifest) -> int:
        """Apply what ``owner``'s manifest gained since the recorded offset; returns events applied.

        A manifest with another inode or shorter than the offset was
        rewritten: the owner's rows are reloaded from its start. A missing
        manifest empties the owner. Raises ManifestCorrupt, StorageError.
        """
        self._ready()
        with self.connection() as conn, conn.transaction():
            self._lock_owner(conn, owner)
            row = conn.execute(
                'SELECT inode, "offset" FROM casvault.manifest_offsets WHERE owner = %s', (owner,)
            ).fetchone()
            try:
                st = os.stat(manifest.path)
            except FileNotFoundError:
                if row is not None:
                    self._clear_owner(conn, owner)
                    conn.execute("DELETE FROM casvault.manifest_offsets WHERE owner = %s", (owner,))
                return 0
            offset = 0
            if row is None or row[0] != st.st_ino or st.st_size < row[1]:
                self._clear_owner(conn, owner)
            else:
                offset = row[1]
                if st.st_size == offset:
                    return 0
            chunk = manifest.read(offset)
            if chunk.events:
                self._apply(conn, owner, chunk.events, empty=offset == 0)
            conn.execute(
                """
                INSERT INTO casvault.manifest_offsets (owner, inode, "offset", events)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (owner) DO UPDATE SET inode = excluded.inode, "offset" = excluded."offset",
                    events = CASE WHEN %s THEN 0 ELSE casvault.manifest_offsets.events END + excluded.events,
                    updated_at = now()
                """,
                (owner, st.st_ino, chunk.offset, len(chunk.events), offset == 0),
            )
            return len(chunk.events)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Recorded (inode, offset) per owner."""
        self._ready()
        with self.connection() as conn:
            rows = conn.execute('SELECT owner, inode, "offset" FROM casvault.manifest_offsets').fetchall()
        return {owner: (inode, offset) for owner, inode, offset in rows}

    def offset(self, owner: str) -> int:
        """How far ``owner``'s manifest has been applied (bytes; 0 when never)."""
        self._ready()
        with self.connection() as conn:
            row = conn.execute('SELECT "offset" FROM casvault.manifest_offsets WHERE owner = %s', (owner,)).fetchone()
        return row[0] if row else 0

    # --- reading --------------------------------------------------------------

    def get(self, owner: str, rid: str) -> Record | None:
        """The record ``rid`` of ``owner``, or None."""
        self._ready()
        with self.connection() as conn:
            row = conn.execute(
                "SELECT record::text FROM casvault.records WHERE owner = %s AND id = %s", (owner, rid)
            ).fetchone()
        return decode_record(row[0].encode()) if row else None

    def find(self, rid: str) -> Record | None:
        """A record by id across all owners, or None."""
        self._ready()
        with self.connection() as conn:
            row = conn.execute(
                "SELECT record::text FROM casvault.records WHERE id = %s ORDER BY owner LIMIT 1", (rid,)
            ).fetchone()
        return decode_record(row[0].encode()) if row else None

    def usage(self, owner: str) -> Usage:
        """Counts and logical bytes of ``owner``, trash included."""
        self._ready()
        with self.connection() as conn:
            count, total, trash_count, trash_bytes = conn.execute(
                """
                SELECT coalesce(sum(count), 0), coalesce(sum(bytes), 0),
                       coalesce(sum(count) FILTER (WHERE status = 'trash'), 0),
                       coalesce(sum(bytes) FILTER (WHERE status = 'trash'), 0)
                FROM casvault.owner_counts WHERE owner = %s
                """,
                (owner,),
            ).fetchone()
        return Usage(count=int(count), bytes=int(total), trash_count=int(trash_count), trash_bytes=int(trash_bytes))

    def users(self) -> list[str]:
        """Every owner with records or a synced manifest."""
        self._ready()
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT owner FROM casvault.manifest_offsets UNION SELECT DISTINCT owner FROM casvault.records"
            ).fetchall()
        return sorted(r[0] for r in rows)

    def states(self, owner: str) -> dict[str, tuple[str, str, str]]:
        """id → (kind, status, sha256) of every record of ``owner`` (for verification)."""
        self._ready()
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT id, kind, status, sha256 FROM casvault.records WHERE owner = %s", (owner,)
            ).fetchall()
        return {rid: (kind, status, sha) for rid, kind, status, sha in rows}

    def digests(self) -> set[str]:
        """Every sha256 referenced by a record (active or trash)."""
        self._ready()
        with self.connection() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM casvault.records").fetchall()}

    def _matching_words(self, conn: Any, owner: str, word: str) -> list[str]:
        """The words of ``owner``'s vocabulary that a query word matches (prefix, or one typo)."""
        # NOTE: three index-friendly lookups (a range of the primary key, primary
        # key hits, the GIN of ``near``), not one OR that would read the owner's
        # whole vocabulary (a seed and a file number a record).
        last = ord(word[-1])
        upper = word[:-1] + chr(last + 1) if last < 0x10FFFF else word + chr(last)
        sql = "SELECT word FROM casvault.words WHERE owner = %s AND word >= %s AND word < %s"
        args: list[Any] = [owner, word, upper]
        typo = len(word) >= MIN_TYPO_LEN and not word.isdigit()
        if typo:
            shorter = sorted(deletions(word))
            sql += (" UNION SELECT word FROM casvault.words WHERE owner = %s AND word = ANY(%s)"
                    " UNION SELECT word FROM casvault.words WHERE near && %s::text[] AND owner = %s")
            args += [owner, shorter, [word, *shorter], owner]
        rows = conn.execute(sql, args).fetchall()
        return sorted(w for (w,) in rows if w.startswith(word) or (typo and within_one_edit(word, w)))

    def _where(self, conn: Any, owner: str, q: Query) -> tuple[list[str], list[Any]] | None:
        """The WHERE terms and arguments of a listing (None when nothing can match)."""
        texts = (*q.facet_filters.values(), *q.words)
        if any("\x00" in t for t in texts):
            # NOTE: PostgreSQL text cannot hold NUL, and no record does: nothing matches.
            return None
        where = ["owner = %s", "kind = %s"]
        args: list[Any] = [owner, q.kind]
        if q.include != "all":
            where.append("status = %s")
            args.append(q.include)
        if q.created_from is not None:
            where.append("created_at >= %s::timestamptz")
            args.append(_time(q.created_from, "from_date"))
        if q.created_before is not None:
            where.append("created_at < %s::timestamptz")
            args.append(_time(q.created_before, "to_date"))
        if q.favorite:
            where.append("favorite")
        for name, value in q.facet_filters.items():
            column, is_array = FACET_COLUMNS[name]
            where.append(f"{column} @> ARRAY[%s]::text[]" if is_array else f"{column} = %s")
            args.append(value)
        for raw in q.words:
            for word in words_of(raw):
                matched = self._matching_words(conn, owner, word)
                if not matched:
                    return None
                where.append("words && %s::text[]")
                args.append(matched)
        return where, args

    def query(self, owner: str, q: Query) -> Page:
        """One page of ``owner``'s listing, newest first: the manifest index's pages and cursors.

        Raises InvalidInput for a bad include or cursor, StorageError.
        """
        if q.include not in INCLUDES:
            raise InvalidInput("include must be active, trash or all", field="include")
        skip = (q.page - 1) * q.size
        cursor: list[Any] = []
        if q.cursor:
            created_at, rid = decode_cursor(q.cursor)
            if "\x00" in rid:
                raise InvalidInput("cursor is not valid", field="cursor")
            cursor = [_time(created_at, "cursor"), rid]
            skip = 0
        self._ready()
        with self.connection() as conn:
            found = self._where(conn, owner, q)
            if found is None:
                return Page([], 0, None)
            where, args = found
            page_where, page_args = list(where), list(args)
            if cursor:
                page_where.append("(created_at, id) < (%s::timestamptz, %s)")
                page_args += cursor
            if q.filtered:
                total = conn.execute(
                    "SELECT count(*) FROM casvault.records WHERE " + " AND ".join(where), args
                ).fetchone()[0]
            else:
                # NOTE: the unfiltered total (every gallery page) comes from the
                # counts kept beside the rows, not from counting them.
                total = int(conn.execute(
                    "SELECT coalesce(sum(count), 0) FROM casvault.owner_counts WHERE "
                    + " AND ".join(where), args
                ).fetchone()[0])
            rows = conn.execute(
                "SELECT record::text FROM casvault.records WHERE " + " AND ".join(page_where)
                + " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
                page_args + [q.size + 1, skip],
            ).fetchall()
        items = [decode_record(text.encode()) for (text,) in rows[: q.size]]
        more = len(rows) > q.size
        last = items[-1] if items else None
        next_cursor = encode_cursor((last.created_at, last.id)) if more and last is not None else None
        return Page(items, total, next_cursor)

    def facets(self, owner: str, q: Query, fields: tuple[str, ...], prefix: str = "", limit: int = 20) -> dict[str, list[dict]]:
        """The top values with counts of facet ``fields`` among ``owner``'s records that ``q`` selects."""
        if q.include not in INCLUDES:
            raise InvalidInput("include must be active, trash or all", field="include")
        self._ready()
        answer: dict[str, list[dict]] = {}
        with self.connection() as conn:
            if not q.filtered:
                # NOTE: the gallery's first facets: from the counts kept beside
                # the rows (as owner_counts does for the plain total).
                statuses = ["active", "trash"] if q.include == "all" else [q.include]
                for name in fields:
                    rows = conn.execute(
                        "SELECT value, sum(n) FROM casvault.facet_counts WHERE owner = %s AND kind = %s"
                        " AND status = ANY(%s) AND field = %s GROUP BY value",
                        (owner, q.kind, statuses, name),
                    ).fetchall()
                    answer[name] = top({v: int(n) for v, n in rows}, prefix, limit)
                return answer
            found = self._where(conn, owner, q)
            for name in fields:
                if found is None:
                    answer[name] = []
                    continue
                where, args = found
                column, is_array = FACET_COLUMNS[name]
                value = "v" if is_array else column
                source = f"casvault.records, unnest({column}) AS v" if is_array else "casvault.records"
                rows = conn.execute(
                    f"SELECT {value}, count(*) FROM {source} WHERE " + " AND ".join(where)
                    + f" AND {value} IS NOT NULL GROUP BY {value}",
                    args,
                ).fetchall()
                # NOTE: the prefix and the order are applied by the same Python
                # code as the manifest index's (PostgreSQL's lower() differs).
                answer[name] = top({v: int(n) for v, n in rows}, prefix, limit)
        return answer


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
