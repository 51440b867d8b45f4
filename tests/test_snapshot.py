"""The listing snapshot: a cold process's first pages equal the loaded index's, whatever the tail holds."""

from __future__ import annotations

import pytest

from casvault import snapshot
from casvault.config import Config
from casvault.index import Query, UserIndex
from casvault.merge import merge_users
from casvault.store import Store
from tests.conftest import make_png, user

A = "u-snapshot"  # a member, so a guest can be merged into it (move events)
B = user(2)


def new_store(root):
    return Store(Config(root=root, fsync=False, thumb_size=16))


def cold(root, owner, q):
    """The page a fresh process answers from the snapshot (None: it could not)."""
    store = new_store(root)
    idx = store._user_index(owner)
    return idx.cold_page(q, lambda kind, created, rid, trashed: store.layout.sidecar_at(owner, kind, created, rid, trashed))


def loaded(root, owner, q):
    return UserIndex(owner, new_store(root).manifest(owner)).refresh().query(q)


QUERIES = [Query(size=5), Query(size=5, page=3), Query(size=100), Query(include="trash"), Query(include="all", size=7),
           Query(kind="input"), Query(size=4, page=50)]


def same_pages(root, owner):
    for q in QUERIES:
        got, want = cold(root, owner, q), loaded(root, owner, q)
        assert got is not None, q
        assert [r.id for r in got.items] == [r.id for r in want.items], q
        assert [r.tags for r in got.items] == [r.tags for r in want.items], q
        assert (got.total, got.next_cursor) == (want.total, want.next_cursor), q


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "r"
    store = new_store(root)
    ids = [store.ingest(make_png(8, 8, seed=i), A, created_at=f"2026-01-{1 + i % 28:02d}T10:00:{i:02d}+00:00",
                        prompt=f"p{i}", make_thumb=False).record.id for i in range(40)]
    store.copy_as_input(A, ids[0])
    for rid in ids[:4]:
        store.trash(A, rid)
    new_store(root).index(A)  # a full load writes the snapshot
    return root, ids


def test_a_cold_first_page_equals_the_loaded_index(root):
    root, _ = root
    assert snapshot.path_for(new_store(root).manifest(A)).is_file()
    same_pages(root, A)


def test_the_manifest_tail_is_laid_over_the_snapshot(root):
    root, ids = root
    writer = new_store(root)  # its appends stay in the tail: the snapshot is rewritten only after 1 MB
    writer.ingest(make_png(8, 8, seed=100), A, created_at="2026-02-01T00:00:00+00:00", make_thumb=False)  # newest
    writer.ingest(make_png(8, 8, seed=101), A, created_at="2025-12-01T00:00:00+00:00", make_thumb=False)  # backdated
    writer.trash(A, ids[39])  # trash (the newest image)
    writer.trash(A, ids[10])
    writer.restore(A, ids[0])  # restore
    writer.purge(A, ids[1])  # purge
    writer.update_meta(A, ids[38], tags=["fresh"])  # meta: the page shows the sidecar's tags
    writer.ingest(make_png(8, 8, seed=102), B, make_thumb=False)
    merge_users(writer, B, A)  # move in
    assert snapshot.stale(writer.manifest(A), writer.index(A)._ino, writer.index(A).manifest_offset) is False
    same_pages(root, A)
    shown = {r.id: r for r in cold(root, A, Query(size=100)).items}
    assert shown[ids[38]].tags == ["fresh"] and ids[1] not in shown and ids[39] not in shown


def test_a_store_answers_cold_and_loads_in_the_background(root):
    root, _ = root
    store = new_store(root)
    page = store.list(A, Query(size=5))
    assert [r.id for r in page.items] == [r.id for r in loaded(root, A, Query(size=5)).items]
    for thread in __import__("threading").enumerate():
        if thread.name == f"index-{A}":
            thread.join(30)
    assert store._user_index(A).loaded  # the background load finished
    assert store.list(A, Query(size=5, tag="x")).total == 0


def test_what_the_snapshot_cannot_answer_falls_back(root):
    root, ids = root
    store = new_store(root)
    assert cold(root, A, Query(size=5, tag="x")) is None  # filtered
    assert cold(root, A, Query(size=200, page=10)) is None  # deep
    sidecar = store.layout.sidecar_path(loaded(root, A, Query(size=5)).items[2])
    body = sidecar.read_bytes()
    sidecar.unlink()  # a sidecar that does not read
    assert cold(root, A, Query(size=5)) is None
    sidecar.write_bytes(body)
    path = snapshot.path_for(store.manifest(A))
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # torn
    assert cold(root, A, Query(size=5)) is None
    path.write_bytes(data)
    assert cold(root, A, Query(size=5)) is not None
    store.rebuild_manifest(A)  # a rewritten manifest (another inode)
    assert cold(root, A, Query(size=5)) is None
    new_store(root).index(A)  # the next full load writes a fresh snapshot
    same_pages(root, A)
