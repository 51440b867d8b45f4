"""The store end to end: layout on disk, dedupe, sidecars, manifest, trash, quota."""

import json
import stat
from itertools import islice

import pytest

from casvault.blobs import digest
from casvault.config import Config
from casvault.errors import Conflict, NotAnImage, NotFound, QuotaExceeded, StorageError
from casvault.index import Query
from casvault.store import Store
from tests.conftest import make_jpeg, make_png, user

A, B = user(1), user(2)


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "locks" not in p.parts)


def test_one_image_two_users_one_blob_two_hardlinks(store, corpus):
    data = (corpus / "lora_lora.png").read_bytes()
    ra = store.ingest(data, A, prompt="a girl", seed=851616030078638, workflow_id="txt2img", aspect_ratio="21:9").record
    rb = store.ingest(data, B, prompt="a girl", seed="42").record
    sha = digest(data)
    blob = store.blobs.path(sha)
    assert [b.sha256 for b in store.blobs.iter()] == [sha]
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    ia, ib = store.layout.image_path(ra), store.layout.image_path(rb)
    assert ia.stat().st_ino == blob.stat().st_ino == ib.stat().st_ino
    assert blob.stat().st_nlink == 3
    day = "/".join(store.layout.day(ra.created_at))
    assert ia == store.layout.root / "outputs" / "users" / A / day / f"{ra.id}.png"
    side = json.loads((ia.parent / f"{ra.id}.json").read_text())
    assert side["seed"] == 851616030078638 and side["owner"] == A and side["sha256"] == sha
    assert side["prompt"] == "a girl" and side["width"] == 2153 and side["height"] == 788
    assert json.loads((ib.parent / f"{rb.id}.json").read_text())["seed"] == 42
    thumb = ia.parent / "thumb" / f"{ra.id}.webp"
    assert thumb.read_bytes()[:4] == b"RIFF"
    manifest = store.layout.root / "meta" / "users" / A / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["record"]["id"] == ra.id
    assert not any("manifest" in f for f in files_under(store.layout.outputs))


def test_input_upload_lands_under_inputs(store):
    rec = store.ingest(make_jpeg(), A, "input", original_filename="photo.JPG").record
    path = store.layout.image_path(rec)
    assert path.parts[-5] == "inputs" and path.suffix == ".jpg"
    assert (path.parent / f"{rec.id}.json").is_file()
    assert (path.parent / "thumb" / f"{rec.id}.webp").is_file()
    assert rec.original_filename == "photo.JPG" and rec.kind == "input"


def test_bad_file_leaves_nothing_behind(store):
    before = files_under(store.layout.root)
    with pytest.raises(NotAnImage):
        store.ingest(b"<svg onload=alert(1)>", A)
    assert files_under(store.layout.root) == before


def test_ext_comes_from_signature_not_name(store):
    rec = store.ingest(make_jpeg(), A, original_filename="looks.png").record
    assert store.layout.image_path(rec).suffix == ".jpg" and rec.mime == "image/jpeg"


def test_trash_restore_purge_move_files_together(store):
    rec = store.ingest(make_png(seed=1), A).record
    img, side, thumb = store.layout.paths(rec)
    trashed = store.trash(A, rec.id)
    timg, tside, tthumb = store.layout.paths(trashed)
    assert not img.exists() and not side.exists() and not thumb.exists()
    assert timg.exists() and tthumb.exists()
    assert json.loads(tside.read_text())["status"] == "trash"
    assert "trash" in timg.parts
    with pytest.raises(Conflict):
        store.trash(A, rec.id)
    restored = store.restore(A, rec.id)
    assert img.exists() and json.loads(side.read_text())["status"] == "active" and not timg.exists()
    with pytest.raises(Conflict):
        store.purge(A, rec.id)
    store.trash(A, restored.id)
    assert store.purge(A, rec.id) == rec.bytes
    assert not timg.exists() and not tside.exists()
    assert store.blobs.has(rec.sha256)  # only gc removes blobs
    with pytest.raises(NotFound):
        store.get(A, rec.id)


def test_reingest_of_trashed_bytes_is_not_refused(store):
    data = make_png(seed=7)
    first = store.ingest(data, A).record
    store.trash(A, first.id)
    again = store.ingest(data, A)
    assert again.in_trash == [first.id] and again.record.id != first.id
    assert again.record.sha256 == first.sha256


def test_copy_as_input_shares_the_blob(store):
    rec = store.ingest(make_png(seed=3), A).record
    copy = store.copy_as_input(A, rec.id)
    assert copy.kind == "input" and copy.sha256 == rec.sha256
    assert store.layout.image_path(copy).stat().st_ino == store.layout.image_path(rec).stat().st_ino
    assert store.layout.thumb_path(copy).is_file()
    with pytest.raises(NotFound):
        store.copy_as_input(B, rec.id)


def test_other_users_records_are_not_found(store):
    rec = store.ingest(make_png(seed=4), A).record
    with pytest.raises(NotFound):
        store.get(B, rec.id)
    with pytest.raises(NotFound):
        store.trash(B, rec.id)


def test_meta_update_rewrites_sidecar_and_logs(store):
    rec = store.ingest(make_png(seed=5), A).record
    new = store.update_meta(A, rec.id, tags=["cat", "cat", " dog "], favorite=True)
    assert new.tags == ["cat", "dog"] and new.favorite
    side = json.loads(store.layout.sidecar_path(new).read_text())
    assert side["tags"] == ["cat", "dog"] and side["favorite"] is True
    assert json.loads(store.layout.manifest_path(A).read_text().splitlines()[-1])["event"] == "meta"


def test_another_process_sees_writes_via_manifest(config):
    s1, s2 = Store(config), Store(config)
    assert s2.list(A, Query()).total == 0
    rec = s1.ingest(make_png(seed=6), A).record
    assert [r.id for r in s2.list(A, Query()).items] == [rec.id]
    s1.trash(A, rec.id)
    assert s2.list(A, Query()).total == 0 and s2.list(A, Query(include="trash")).total == 1


def test_damaged_manifest_is_rebuilt_from_sidecars(config):
    s1 = Store(config)
    ids = {s1.ingest(make_png(seed=i), A).record.id for i in range(3)}
    path = s1.layout.manifest_path(A)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(lines[0] + b"\n{garbage\n" + b"\n".join(lines[1:]))
    s2 = Store(config)
    assert {r.id for r in s2.list(A, Query()).items} == ids
    assert b"garbage" not in path.read_bytes()


def test_missing_manifest_is_rebuilt_by_rebuild(store):
    ids = {store.ingest(make_png(seed=i), A).record.id for i in range(2)}
    store.layout.manifest_path(A).unlink()
    assert store.rebuild_manifest(A) == 2
    assert {r.id for r in Store(store.config).list(A, Query()).items} == ids


def test_io_error_during_ingest_is_reported_and_not_acknowledged(store, monkeypatch):
    from casvault import faults

    monkeypatch.setenv("CASVAULT_FAULTS", "sidecar.write=eio")
    faults.reset()
    try:
        with pytest.raises(StorageError):
            store.ingest(make_png(seed=11), A)
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    assert store.list(A, Query()).total == 0
    assert not list(store.layout.outputs.rglob("*.json"))
    assert not list(store.layout.tmp.iterdir())


def test_link_mode_recorded(store):
    meta = json.loads((store.layout.root / "casvault.json").read_text())
    assert meta["format"] == 1 and meta["link_mode"] == "hardlink" and meta["partition_tz"] == "UTC"


def test_partition_tz_puts_late_utc_on_next_local_day(tmp_path):
    store = Store(Config(root=tmp_path / "seoul", partition_tz="Asia/Seoul"))
    rec = store.ingest(make_png(seed=1), A, created_at="2026-03-01T20:00:00+00:00").record
    assert store.layout.image_path(rec).parts[-4:-1] == ("2026", "03", "02")
    assert rec.created_at == "2026-03-01T20:00:00.000+00:00"


def test_newest_merges_users_and_kinds(config):
    s1 = Store(config)
    made = []
    for i in range(6):
        owner = A if i % 2 else user(3)
        made.append(s1.ingest(make_png(seed=50 + i), owner, created_at=f"2026-05-0{i + 1}T00:00:00+00:00").record)
    made.append(s1.copy_as_input(A, made[1].id))
    s2 = Store(config)
    assert [r.id for r in islice(s2.newest(), 4)] == [made[6].id, made[5].id, made[4].id, made[3].id]
    newest = s1.ingest(make_png(seed=99), user(3)).record
    assert next(s2.newest()).id == newest.id  # another process's write is seen


def test_missing_manifest_is_rebuilt_on_first_read(config):
    s1 = Store(config)
    ids = {s1.ingest(make_png(seed=i), A).record.id for i in range(2)}
    s1.layout.manifest_path(A).unlink()
    s2 = Store(config)
    assert {r.id for r in s2.list(A, Query()).items} == ids
    assert s2.layout.manifest_path(A).is_file()
    # and an ingest into a user whose manifest vanished neither deadlocks nor loses records
    s1.layout.manifest_path(A).unlink()
    s3 = Store(config)
    s3.ingest(make_png(seed=9), A)
    assert s3.list(A, Query()).total == 3


def test_add_and_remove_tags_apply_to_current_tags(config):
    s1, s2 = Store(config), Store(config)
    rec = s1.ingest(make_png(seed=21), A, tags=["a"]).record
    s2.index(A)  # s2 has seen tags ["a"]
    s1.update_meta(A, rec.id, add_tags=["b"])
    new = s2.update_meta(A, rec.id, add_tags=["c"], remove_tags=["a"])  # another worker, later
    assert new.tags == ["b", "c"]
    assert Store(config).get(A, rec.id).tags == ["b", "c"]


def test_bad_line_appended_while_serving_is_rebuilt(config):
    s1 = Store(config)
    ids = {s1.ingest(make_png(seed=i), A).record.id for i in range(2)}
    s2 = Store(config)
    assert s2.list(A, Query()).total == 2  # s2 has read the manifest
    with open(s1.layout.manifest_path(A), "ab") as fh:
        fh.write(b'{"event": "nonsense"}\n')
    assert {r.id for r in s2.list(A, Query()).items} == ids  # rebuilt, not wedged
    s2.ingest(make_png(seed=5), A)
    assert s2.list(A, Query()).total == 3


def test_threads_of_one_process_share_a_store_safely(config):
    import concurrent.futures as cf

    store = Store(config.with_(quota_max_count=30))
    datas = [make_png(seed=200 + i) for i in range(40)]

    def ingest(data):
        try:
            return store.ingest(data, A).record.id
        except QuotaExceeded:
            return None

    with cf.ThreadPoolExecutor(8) as pool:
        ids = [i for i in pool.map(ingest, datas) if i]
    assert len(ids) == 30
    assert {r.id for r in Store(config).list(A, Query(size=100)).items} == set(ids)
    assert len(store.layout.manifest_path(A).read_text().splitlines()) == 30


def test_copy_makes_a_missing_thumbnail_with_the_configured_quality(config):
    store = Store(config.with_(thumb_quality=10))
    src = store.ingest(make_png(seed=61, width=300, height=200), A).record
    store.layout.thumb_path(src).unlink()
    copy = store.copy_as_input(A, src.id)
    from casvault import thumbs

    made = store.layout.thumb_path(copy).read_bytes()
    assert made == thumbs.make_thumbnail(store.read_original(src), config.thumb_size, 10)
    assert made != thumbs.make_thumbnail(store.read_original(src), config.thumb_size, 80)
