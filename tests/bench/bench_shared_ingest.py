"""Ingest on the shared deployment: S3 blobs + the PostgreSQL index, vs its floor.

The services are started as ``tests/services.py`` starts them: moto's S3
protocol server in a thread on 127.0.0.1 and a private PostgreSQL cluster
(fsync off). A store is opened on both backends the way a switched store
opens them (``blob_backend=s3``, ``index_backend=postgres``; its manifests,
sidecars and thumbnails stay local, with fsync on).

- ``shared.ingest_vs_floor``: images/s of ``Store.ingest(make_thumb=False)``
  on that store ÷ images/s of the floor: sha256 in memory, one raw S3 PUT of
  the same bytes under that key, and one INSERT (autocommit) of a row built
  like the index's own row of such a record into a table with the records
  table's columns and primary key. Same images, one at a time, the two sides
  alternating image by image (``common.interleave``). The floor's PUT and
  INSERT medians sit beside it.

Then the ingest loop runs once more under cProfile over fresh images: the
top 15 entries by cumulative time go into ``shared.ingest_profile_top``.
"""

from __future__ import annotations

import cProfile
import hashlib
import logging
import os
import pstats
import sys
import time
import uuid
from typing import Callable

import msgspec

from casvault.config import Config
from casvault.index import Query
from casvault.store import Store

from common import interleave, median, realistic_pngs, scratch, user

IMAGES = 100
OWNER = user(17)
PROMPT = "a photo of a cat"


# (file, function) of the steps of one ingest whose cumulative time is reported
PARTS = {
    "s3_put": ("s3.py", "put"), "s3_exists_check": ("s3.py", "has"), "s3_upload": ("s3.py", "upload"),
    "check_image": ("validate.py", "check_image"), "manifest_append": ("manifest.py", "append"),
    "record_index_sync": ("postgres.py", "sync"), "local_index_apply": ("index.py", "apply_local"),
    "fsync": ("~", "<built-in method posix.fsync>"),
}


def _profile(fn: Callable[[], object], n: int = 15) -> tuple[list[str], dict[str, float], float]:
    """``fn`` under cProfile: its top ``n`` entries by cumulative time, seconds per part, total seconds."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    parts = dict.fromkeys(PARTS, 0.0)
    for (file, line, name), (_cc, calls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        base = os.path.basename(file)
        for part, (pfile, pname) in PARTS.items():
            if (base, name) == (pfile, pname):
                parts[part] += ct
        if base != os.path.basename(__file__):  # the bench's own loop is not a finding
            rows.append((ct, tt, calls, f"{base}:{line}({name})" if line else name))
    rows.sort(reverse=True)
    top = [f"{ct:7.3f}s cum {tt:7.3f}s own {calls:6d} calls  {where}" for ct, tt, calls, where in rows[:n]]
    return top, {k: round(v, 3) for k, v in parts.items()}, stats.total_tt  # type: ignore[attr-defined]


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['shared']['ingest_*']``."""
    import psycopg

    from casvault.backends.postgres import COLUMNS, _row
    from tests.services import S3_ENV, MotoS3, Postgres, postgres_bin

    section = results.setdefault("shared", {})
    bindir = postgres_bin()
    if bindir is None:
        section["ingest_missing"] = "PostgreSQL server binaries are not installed"
        return
    count = 24 if quick else IMAGES
    # NOTE: one set for the timed pairs, a second for the profile (a repeated
    # image would be a dedupe, not an ingest).
    paths = realistic_pngs(2 * count)
    images = [p.read_bytes() for p in paths[:count]]
    profiled = [p.read_bytes() for p in paths[count:]]
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    s3 = MotoS3()
    s3.start()
    cluster = Postgres(bindir)
    cluster.start()
    try:
        dsn = cluster.create_database()
        bucket = s3.create_bucket()
        work = scratch("shared-ingest")
        store = Store(Config(root=work / "store", blob_backend="s3", s3_bucket=bucket, s3_endpoint=s3.endpoint,
                             index_backend="postgres", pg_dsn=dsn))
        assert store.record_index is not None
        store.record_index.create_schema()
        # the floor's row: what the index stores for such a record (a real one, with a new id each time)
        template = store.ingest(profiled[0], OWNER, prompt=PROMPT, make_thumb=False).record
        profiled = profiled[1:]
        client = s3.client()
        floor_bucket = s3.create_bucket()
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("CREATE TABLE floor_records (LIKE casvault.records INCLUDING DEFAULTS, PRIMARY KEY (owner, id))")
        placeholders = ", ".join(["%s"] * len(COLUMNS.split(",")))
        insert = f"INSERT INTO floor_records ({COLUMNS}) VALUES ({placeholders})"

        put_s: list[float] = []
        insert_s: list[float] = []

        def floor(data: bytes) -> None:
            sha = hashlib.sha256(data).hexdigest()
            t = time.perf_counter()
            client.put_object(Bucket=floor_bucket, Key=sha, Body=data)
            put_s.append(time.perf_counter() - t)
            record = msgspec.structs.replace(template, id=uuid.uuid4().hex, sha256=sha, bytes=len(data))
            t = time.perf_counter()
            conn.execute(insert, _row(OWNER, record))
            insert_s.append(time.perf_counter() - t)

        def ingest(data: bytes) -> None:
            store.ingest(data, OWNER, prompt=PROMPT, make_thumb=False)

        state = {"floor": 0, "cas": 0}

        def one(side: str, write: Callable[[bytes], object]) -> Callable[[], float]:
            def round_() -> float:
                data = images[state[side]]
                state[side] += 1
                t = time.perf_counter()
                write(data)
                return 1.0 / (time.perf_counter() - t)
            return round_

        floor_ips, cas_ips = interleave(one("floor", floor), one("cas", ingest), count)
        top, parts, profiled_s = _profile(lambda: [ingest(d) for d in profiled])
        rows = conn.execute("SELECT count(*) FROM floor_records").fetchone()[0]
        conn.close()
        stored = store.list(OWNER, Query(size=1)).total
        store.record_index.close()
    finally:
        cluster.stop()
        s3.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    section.update(
        ingest_vs_floor=round(median(cas_ips) / median(floor_ips), 3),
        ingest_images_per_s=round(median(cas_ips), 2),
        ingest_floor_images_per_s=round(median(floor_ips), 2),
        ingest_ms_per_image=round(1000 / median(cas_ips), 2),
        ingest_floor_ms_per_image=round(1000 / median(floor_ips), 2),
        ingest_floor_put_ms=round(1000 * median(put_s), 2),
        ingest_floor_insert_ms=round(1000 * median(insert_s), 2),
        ingest_image_bytes_mean=int(sum(map(len, images)) / len(images)),
        ingest_images_per_side=count,
        ingest_floor_rows=rows,
        ingest_records_indexed=stored,
        ingest_profile_images=len(profiled),
        ingest_profile_s=round(profiled_s, 3),
        ingest_profile_parts_s=parts,
        ingest_profile_top=top,
    )
    for line in top + [f"{k}: {v:.3f}s" for k, v in parts.items()] + [f"total: {profiled_s:.3f}s"]:
        print("[bench] shared ingest profile: " + line, file=sys.stderr, flush=True)
