"""The record index seam: the manifest index (UserIndex) and PostgresIndex (a real server)
read the same manifest and must answer every listing with the same pages and cursors."""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from casvault.backends.postgres import PostgresIndex
from casvault.config import Config
from casvault.errors import InvalidInput
from casvault.index import Page, Query, UserIndex, encode_cursor
from casvault.records import AddEvent, MoveEvent, PurgeEvent, TrashEvent, evolve, now_iso, to_dict
from casvault.store import Store
from tests.conftest import SECRET, make_png, user

pytest_plugins = ("tests.services",)

OWNER = user(1)
OTHER = user(2)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PROMPTS = [
    "A Cat on a mat, golden hour",
    "concatenate the strings",
    "portrait of a dog, studio light",
    "Straße bei Nacht",
    "ÉCOLE de danse",
    "café au lait, cozy",
    "50%_off sale banner",
    "a red fox in the snow",
    "CAT and DOG playing",
    "landscape, mountains, fog",
    None,
]
TAGS = [[], ["sunset"], ["portrait", "sunset"], ["Sunset"], ["a_b"]]
SOURCES = [
    None,
    {"tool": "comfyui", "model": "flux1-dev.safetensors", "sampler": "euler", "loras": [{"name": "detail"}]},
    {"tool": "comfyui", "model": "sdxl_base.safetensors", "sampler": "dpmpp_2m",
     "loras": [{"name": "detail"}, {"name": "film_grain"}]},
    {"tool": "comfyui", "model": "sdxl_base.safetensors", "sampler": "euler"},
]
FACET_FIELDS = ("model", "lora", "sampler", "workflow_id", "aspect_ratio", "tag")


def build_history(store: Store, owner: str, n: int, seed: int) -> None:
    """n generated images plus a few controls and inputs, then trash, restore, meta and purge."""
    rnd = random.Random(seed)
    ids = []
    for i in range(n):
        # NOTE: some records share a creation time, so the id breaks the tie.
        created = T0 + timedelta(hours=rnd.randrange(0, 24 * 20), minutes=rnd.choice([0, 0, 7]))
        result = store.ingest(
            make_png(16, 16, seed=seed * 10_000 + i % (n - 3)),  # a few duplicate blobs
            owner,
            created_at=created,
            workflow_id=rnd.choice(["txt2img", "img2img", None]),
            aspect_ratio=rnd.choice(["1:1", "16:9", "9:16"]),
            seed=i,
            prompt=rnd.choice(PROMPTS),
            tags=rnd.choice(TAGS),
            source=rnd.choice(SOURCES),
            make_thumb=False,
        )
        ids.append(result.record.id)
    for i, edge in enumerate(("2026-03-05T00:00:00+00:00", "2026-03-13T00:00:00+00:00", "2026-03-12T23:59:59.999Z")):
        # exactly on the bounds of the date-range queries below (lo inclusive, hi exclusive)
        store.ingest(make_png(8, 8, seed=seed * 10_000 + 7000 + i), owner, created_at=edge, prompt="edge",
                     make_thumb=False)
    for kind in ("control", "input"):
        for i in range(6):
            store.ingest(make_png(8, 8, seed=seed * 10_000 + 5000 + i), owner, kind,
                         created_at=T0 + timedelta(days=i), make_thumb=False)
    rnd.shuffle(ids)
    trashed = ids[: n // 5]
    for rid in trashed:
        store.trash(owner, rid)
    for rid in trashed[:5]:
        store.restore(owner, rid)
    for rid in trashed[5:9]:
        store.purge(owner, rid)
    for rid in ids[n // 5: n // 5 + 25]:
        store.update_meta(owner, rid, favorite=True, tags=rnd.choice(TAGS) + ["fav"])
    for rid in ids[n // 5: n // 5 + 5]:
        store.update_meta(owner, rid, favorite=False)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """A store root with a history for two users, built once for this module."""
    root = tmp_path_factory.mktemp("history") / "root"
    s = Store(Config(root=root, secret_key=SECRET, fsync=False))
    build_history(s, OWNER, 120, seed=1)
    build_history(s, OTHER, 20, seed=2)
    return root


@pytest.fixture
def store(history: Path, tmp_path: Path) -> Store:
    """A private copy of the history store (no fsync: the data is thrown away)."""
    shutil.copytree(history, tmp_path / "root", symlinks=True)
    return Store(Config(root=tmp_path / "root", secret_key=SECRET, fsync=False))


@pytest.fixture
def pg(pg_dsn: str) -> PostgresIndex:
    """A PostgreSQL index on a fresh database."""
    index = PostgresIndex(pg_dsn)
    index.create_schema()
    yield index
    index.close()


def synced(store: Store, pg: PostgresIndex) -> None:
    for owner in store.users():
        pg.sync(owner, store.manifest(owner))


def both(store: Store, pg: PostgresIndex, owner: str, q: Query) -> tuple[Page, Page]:
    """The same query over a fresh manifest index and over PostgreSQL."""
    manifest_page = UserIndex(owner, store.manifest(owner)).refresh().query(q)
    return manifest_page, pg.query(owner, q)


def same(a: Page, b: Page) -> None:
    assert [r.id for r in a.items] == [r.id for r in b.items]
    assert [to_dict(r) for r in a.items] == [to_dict(r) for r in b.items]
    assert (a.total, a.next_cursor) == (b.total, b.next_cursor)


def queries(store: Store) -> list[Query]:
    lo, hi = store.day_bounds("2026-03-05", "2026-03-12")
    qs = [
        Query(),
        Query(size=7),
        Query(size=7, page=2),
        Query(size=5, page=12),
        Query(size=50, page=40),  # past the end
        Query(size=200),
        Query(include="trash"),
        Query(include="all", size=30, page=3),
        Query(kind="control"),
        Query(kind="input", include="all"),
        Query(created_from=lo),
        Query(created_before=hi, size=9, page=2),
        Query(created_from=lo, created_before=hi, size=4),
        Query(aspect_ratio="16:9", size=6),
        Query(workflow_id="img2img", size=6, page=2),
        Query(tag="sunset"),
        Query(tag="Sunset"),
        Query(tag="a_b"),
        Query(tag="nope"),
        Query(favorite=True, size=4),
        Query(favorite=True, include="all"),
        Query(words=("cat",)),
        Query(words=("CAT", "dog")),
        Query(words=("straße",)),
        Query(words=("école",)),
        Query(words=("CAFÉ",)),
        Query(words=("50%_off",)),
        Query(words=("%",)),
        Query(words=("_",)),
        Query(words=("a", "o"), size=3, page=2),
        Query(words=("fox",), include="trash"),
        Query(words=("cat",), kind="control"),
        Query(tag="fav", favorite=True, aspect_ratio="1:1", include="all"),
        Query(model="sdxl_base.safetensors", size=8, page=2),
        Query(lora="detail", include="all"),
        Query(lora="film_grain", sampler="dpmpp_2m"),
        Query(sampler="euler", words=("cat",)),
        Query(words=("potrait",)),  # one typo
        Query(words=("lnadscape", "fog")),
        Query(words=("sdxl", "dpmpp")),
        Query(words=("1",), size=20),  # seeds by prefix
        Query(words=("flux1-dev",)),
        Query(words=("caf",), include="all"),
    ]
    return qs


def test_every_query_gives_the_same_page(store: Store, pg: PostgresIndex, monkeypatch) -> None:
    monkeypatch.setattr("casvault.backends.postgres.COPY_THRESHOLD", 10)  # the bulk (COPY) path
    synced(store, pg)
    lo, hi = store.day_bounds("2026-03-05", "2026-03-12")
    edges = pg.query(OWNER, Query(words=("edge",), created_from=lo, created_before=hi)).items
    assert sorted(r.created_at for r in edges) == ["2026-03-05T00:00:00.000+00:00", "2026-03-12T23:59:59.999+00:00"]
    nonempty = 0
    for q in queries(store):
        a, b = both(store, pg, OWNER, q)
        same(a, b)
        nonempty += bool(a.items)
    assert nonempty >= 25  # the data exercises the filters, not empty pages


def test_applied_in_small_batches_gives_the_same_answers(store: Store, pg: PostgresIndex) -> None:
    for owner in (OWNER, OTHER):
        events = store.manifest(owner).read(0).events
        for i in range(0, len(events), 7):
            pg.apply(owner, events[i:i + 7])
        assert pg.usage(owner) == UserIndex(owner, store.manifest(owner)).refresh().usage()
    for q in queries(store):
        same(*both(store, pg, OWNER, q))


def test_search_is_by_word_prefix_and_one_typo_case_insensitive(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    page = pg.query(OWNER, Query(words=("cat",), size=200))
    prompts = {r.prompt for r in page.items}
    assert prompts == {"A Cat on a mat, golden hour", "CAT and DOG playing"}  # not "concatenate"
    assert {r.prompt for r in pg.query(OWNER, Query(words=("école",), size=200)).items} == {"ÉCOLE de danse"}
    assert {r.prompt for r in pg.query(OWNER, Query(words=("ecole",), size=200)).items} == {"ÉCOLE de danse"}
    assert {r.prompt for r in pg.query(OWNER, Query(words=("stduio",), size=200)).items} == {
        "portrait of a dog, studio light"}


def test_facets_agree_with_the_manifest_index(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    nonempty = 0
    for q in queries(store):
        mine = UserIndex(OWNER, store.manifest(OWNER)).refresh().facets(q, FACET_FIELDS, "", 100)
        assert pg.facets(OWNER, q, FACET_FIELDS, "", 100) == mine, q
        nonempty += any(mine.values())
    assert nonempty >= 25
    assert pg.facets(OWNER, Query(), ("model",), "SD", 1) == {"model": [
        {"value": "sdxl_base.safetensors", "count": pg.query(OWNER, Query(model="sdxl_base.safetensors")).total}]}


def test_a_schema_1_database_is_reloaded_with_search_words(store: Store, pg_dsn: str) -> None:
    import psycopg

    old = PostgresIndex(pg_dsn)
    old.create_schema()
    synced(store, old)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # what schema 1 left: no words, no vocabulary
        conn.execute("UPDATE casvault.records SET words = '{}', model = NULL")
        conn.execute("DELETE FROM casvault.words")
        conn.execute("UPDATE casvault.schema_version SET version = 1")
    old.close()
    upgraded = PostgresIndex(pg_dsn)
    assert upgraded.query(OWNER, Query(words=("cat",))).total == 0  # the upgrade forgot the offsets...
    synced(store, upgraded)  # ...so the next sync reloads every owner
    same(*both(store, upgraded, OWNER, Query(words=("cat",), model="sdxl_base.safetensors")))
    assert upgraded.query(OWNER, Query(words=("cat",))).total > 0
    upgraded.close()


def test_cursor_paging_while_inserting(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    cursors = [None, None]
    seen: list[list[str]] = [[], []]
    step = 0
    while True:
        pages = [
            UserIndex(OWNER, store.manifest(OWNER)).refresh().query(Query(size=11, cursor=cursors[0])),
            pg.query(OWNER, Query(size=11, cursor=cursors[1])),
        ]
        same(*pages)
        for i, page in enumerate(pages):
            seen[i] += [r.id for r in page.items]
            cursors[i] = page.next_cursor
        if pages[0].next_cursor is None:
            break
        step += 1
        # a newer record (above every cursor) and an older one (below it) arrive
        store.ingest(make_png(8, 8, seed=90_000 + step), OWNER, created_at=datetime.now(timezone.utc),
                     prompt="late arrival", make_thumb=False)
        store.ingest(make_png(8, 8, seed=95_000 + step), OWNER, created_at=T0 - timedelta(days=step),
                     prompt="backfilled", make_thumb=False)
        pg.sync(OWNER, store.manifest(OWNER))
    assert seen[0] == seen[1]
    assert len(seen[0]) == len(set(seen[0]))
    assert step >= 8


def test_get_usage_and_users_agree(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    for owner in (OWNER, OTHER):
        idx = UserIndex(owner, store.manifest(owner)).refresh()
        assert pg.usage(owner) == idx.usage()
        for rid, record in idx.records.items():
            assert to_dict(pg.get(owner, rid)) == to_dict(record)
    assert pg.usage(OWNER).trash_count > 0
    assert pg.users() == sorted([OWNER, OTHER])
    assert pg.get(OTHER, next(iter(UserIndex(OWNER, store.manifest(OWNER)).refresh().records))) is None


def test_sync_reads_only_the_tail(store: Store, pg: PostgresIndex) -> None:
    first = pg.sync(OWNER, store.manifest(OWNER))
    assert first == len(store.manifest(OWNER).read(0).events)
    assert pg.sync(OWNER, store.manifest(OWNER)) == 0
    rid = store.ingest(make_png(8, 8, seed=77), OWNER, prompt="tail", make_thumb=False).record.id
    store.trash(OWNER, rid)
    assert pg.offset(OWNER) < store.manifest(OWNER).size()
    assert pg.sync(OWNER, store.manifest(OWNER)) == 2
    assert pg.offset(OWNER) == store.manifest(OWNER).size()
    assert pg.get(OWNER, rid).status == "trash"
    assert pg.usage(OWNER) == UserIndex(OWNER, store.manifest(OWNER)).refresh().usage()


def test_rewritten_manifest_is_reloaded(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    before = pg.states(OWNER)
    store.rebuild_manifest(OWNER)  # new inode, only add lines now
    assert pg.sync(OWNER, store.manifest(OWNER)) == len(before)
    assert pg.states(OWNER) == before
    same(*both(store, pg, OWNER, Query(include="all", size=200)))


def test_apply_is_idempotent_and_handles_moves(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    record = UserIndex(OWNER, store.manifest(OWNER)).refresh().query(Query(size=1)).items[0]
    events = [TrashEvent(at=now_iso(), id=record.id)]
    pg.apply(OWNER, events)
    pg.apply(OWNER, events)
    assert pg.get(OWNER, record.id).status == "trash"
    moved = evolve(record, owner=OTHER)
    pg.apply(OTHER, [MoveEvent(at=now_iso(), id=record.id, owner_from=OWNER, owner_to=OTHER, record=moved)])
    pg.apply(OWNER, [MoveEvent(at=now_iso(), id=record.id, owner_from=OWNER, owner_to=OTHER)])
    assert pg.get(OWNER, record.id) is None
    assert pg.get(OTHER, record.id).owner == OTHER
    pg.apply(OTHER, [PurgeEvent(at=now_iso(), id=record.id), AddEvent(at=now_iso(), record=moved),
                     PurgeEvent(at=now_iso(), id=record.id)])
    assert pg.get(OTHER, record.id) is None


def test_missing_manifest_empties_the_owner(store: Store, pg: PostgresIndex) -> None:
    synced(store, pg)
    store.manifest(OTHER).path.unlink()
    assert pg.sync(OTHER, store.manifest(OTHER)) == 0
    assert pg.usage(OTHER).count == 0
    assert pg.users() == [OWNER]


def test_bad_cursor_and_include_are_invalid(pg: PostgresIndex) -> None:
    with pytest.raises(InvalidInput):
        pg.query(OWNER, Query(cursor="!!!"))
    with pytest.raises(InvalidInput):
        pg.query(OWNER, Query(cursor=encode_cursor(("not a time", "0" * 32))))
    with pytest.raises(InvalidInput):
        pg.query(OWNER, Query(include="everything"))
    with pytest.raises(InvalidInput):
        pg.query(OWNER, Query(cursor=encode_cursor(("2026-01-01T00:00:00.000+00:00", "\x00" * 32))))
    for q in (Query(tag="a\x00"), Query(words=("x\x00",)), Query(workflow_id="\x00")):
        assert pg.query(OWNER, q) == Page([], 0, None)


def test_store_reads_from_postgres_and_writes_through(tmp_path: Path, pg_dsn: str) -> None:
    config = Config(root=tmp_path / "root", secret_key=SECRET, fsync=False, index_backend="postgres", pg_dsn=pg_dsn)
    store = Store(config)
    assert store.record_index is not None
    rids = [store.ingest(make_png(8, 8, seed=i), OWNER, prompt=f"pic {i}", make_thumb=False).record.id
            for i in range(5)]
    store.trash(OWNER, rids[0])
    store.update_meta(OWNER, rids[1], tags=["x"], favorite=True)
    # every write is already in PostgreSQL, nothing left to catch up
    assert store.record_index.offset(OWNER) == store.manifest(OWNER).size()
    page = store.list(OWNER, Query())
    assert [r.id for r in page.items] == list(reversed(rids[1:]))
    assert store.get(OWNER, rids[1]).tags == ["x"]
    assert store.usage(OWNER).trash_count == 1
    # the reads really come from PostgreSQL: rows removed there vanish from the listing
    with store.record_index.connection() as conn:
        conn.execute("DELETE FROM casvault.records WHERE id = %s", (rids[4],))
    assert [r.id for r in store.list(OWNER, Query()).items] == list(reversed(rids[1:4]))
    # the manifest stays the durable log: a rewrite of the offsets brings it back
    with store.record_index.connection() as conn:
        conn.execute("DELETE FROM casvault.manifest_offsets")
    store.record_index.sync(OWNER, store.manifest(OWNER))
    assert [r.id for r in store.list(OWNER, Query()).items] == list(reversed(rids[1:]))


def test_store_in_a_non_postgres_config_keeps_the_manifest_index(store: Store) -> None:
    assert store.record_index is None
    assert store.list(OWNER, Query(size=3)).total == store.index(OWNER).count("generated")


def test_index_backend_comes_from_casvault_json_and_the_environment_overrides_it(pg_dsn: str) -> None:
    from casvault.backends import index_spec, open_record_index
    from casvault.errors import ConfigError

    meta = {"index_backend": {"type": "postgres", "dsn": "host=db dbname=casvault"}}
    assert index_spec(Config(), {}) == {"type": "manifest"}
    assert open_record_index(index_spec(Config(), {})) is None
    assert index_spec(Config(), meta) == meta["index_backend"]
    assert index_spec(Config(pg_dsn=pg_dsn), meta) == {"type": "postgres", "dsn": pg_dsn}
    assert index_spec(Config(index_backend="manifest"), meta) == {"type": "manifest"}
    with pytest.raises(ConfigError):
        Config.from_env({"CASVAULT_INDEX_BACKEND": "mysql"})
    with pytest.raises(ConfigError):
        open_record_index({"type": "postgres"})  # no DSN


def test_an_existing_schema_is_used_without_creating_anything(pg_dsn: str) -> None:
    import uuid

    import psycopg

    PostgresIndex(pg_dsn).create_schema()
    reader = "reader_" + uuid.uuid4().hex[:8]  # roles are cluster-wide
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {reader} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA casvault TO {reader}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA casvault TO {reader}")
    index = PostgresIndex(pg_dsn.replace("user=postgres", f"user={reader}"))
    assert index.usage(OWNER).count == 0
    assert index.query(OWNER, Query()).items == []
