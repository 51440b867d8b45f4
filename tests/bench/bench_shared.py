"""The shared deployment's record index (PostgreSQL) at 1,000,000 records.

A private cluster is started as ``tests/services.py`` starts it (initdb as
the postgres user, fsync off: the data is thrown away) and one user's
1,000,000 records (the listing store's kind of records: 6–16 prompt words,
a ComfyUI source, 10% tagged) are applied through ``PostgresIndex.apply``,
the secondary indexes dropped during the load and built after it, then
``ANALYZE``. Figures are medians (p50) of in-process calls, each a page of
50 with its total:

- ``shared.list_1m_p50_ms``: the first page of the plain listing.
- ``shared.search_1m_p50_ms``: ``q=castle neon`` (every word by prefix or one typo).
Also: ``tag=``, ``model=``, a typo search and the facets at 1M.
"""

from __future__ import annotations

import random
import time
import uuid

from casvault.index import Query
from casvault.records import AddEvent, GeneratedRecord

from common import ASPECTS, LORAS, MODELS, SAMPLERS, TAGS, WORDS, median, spread_times, user

RECORDS = 1_000_000
BATCH = 20_000
REQUESTS = 15
OWNER = user(1_000_000)
INDEXES = ("records_owner_time", "records_tags", "records_prompt_tsv", "records_workflow", "records_id",
           "records_sha256", "records_prompt_trgm", "records_words", "records_loras", "records_model",
           "records_sampler")


def _records(count: int):
    rnd = random.Random(11)
    for i, created in enumerate(spread_times(count, days=3 * 365)):
        loras = rnd.sample(LORAS, rnd.choice((0, 0, 1, 2)))
        source = {"tool": "comfyui", "model": rnd.choice(MODELS), "sampler": rnd.choice(SAMPLERS)}
        if loras:
            source["loras"] = [{"name": name} for name in loras]
        rid = uuid.UUID(int=rnd.getrandbits(128), version=4).hex
        yield GeneratedRecord(
            id=rid, owner=OWNER, workflow_id=f"wf-{rnd.randrange(8)}",
            aspect_ratio=ASPECTS[rnd.randrange(len(ASPECTS))], seed=rnd.randrange(2**32),
            prompt=" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(6, 16))),
            original_filename=f"ComfyUI_{i:07d}_.png", mime="image/png", bytes=1_250_000,
            sha256=f"{i:064x}", created_at=created, status="active", thumb=f"thumb/{rid}.webp",
            tags=[TAGS[rnd.randrange(len(TAGS))]] if rnd.random() < 0.1 else [], width=1024, height=1024,
            source=source,
        )


def _load(index, count: int) -> float:
    """Apply ``count`` add events in batches; seconds."""
    t = time.perf_counter()
    batch = []
    for record in _records(count):
        batch.append(AddEvent(at=record.created_at, record=record))
        if len(batch) == BATCH:
            index.apply(OWNER, batch)
            batch = []
    if batch:
        index.apply(OWNER, batch)
    return time.perf_counter() - t


def _p50(fn, n: int) -> float:
    fn()  # warm the plan and the cache
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return median(samples) * 1000


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['shared']``."""
    import psycopg

    from casvault.backends.postgres import PostgresIndex
    from tests.services import Postgres, postgres_bin

    section = results.setdefault("shared", {})
    bindir = postgres_bin()
    if bindir is None:
        section["missing"] = "PostgreSQL server binaries are not installed"
        return
    count = 50_000 if quick else RECORDS
    cluster = Postgres(bindir)
    cluster.start()
    try:
        dsn = cluster.create_database()
        index = PostgresIndex(dsn)
        index.create_schema()
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS casvault.{name}")
        load_s = _load(index, count)
        t = time.perf_counter()
        index.create_schema()  # builds the dropped indexes
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
        index_s = time.perf_counter() - t
        n = 10 if quick else REQUESTS
        figures = {
            "list_1m_p50_ms": Query(size=50),
            "search_1m_p50_ms": Query(size=50, words=("castle", "neon")),
            "typo_search_1m_p50_ms": Query(size=50, words=("catsle",)),
            "tag_1m_p50_ms": Query(size=50, tag="portfolio"),
            "model_1m_p50_ms": Query(size=50, model="dreamshaper_8.safetensors"),
            "deep_page_1m_p50_ms": Query(size=50, page=200),
        }
        for key, q in figures.items():
            section[key] = round(_p50(lambda q=q: index.query(OWNER, q), n), 2)
        section["facets_1m_p50_ms"] = round(_p50(
            lambda: index.facets(OWNER, Query(), ("model", "lora", "sampler", "workflow_id", "aspect_ratio", "tag")),
            3), 2)
        total = index.query(OWNER, Query(size=1)).total
        index.close()
    finally:
        cluster.stop()
    section.update(records=total, load_s=round(load_s, 1), index_build_s=round(index_s, 1))
