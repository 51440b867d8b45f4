"""The per-user index: order, paging, cursors under inserts, filters, refresh."""

import pytest

from casvault.config import Config
from casvault.errors import InvalidInput
from casvault.index import Query
from casvault.store import Store
from tests.conftest import make_png, user

A = user(1)


@pytest.fixture
def filled(tmp_path):
    store = Store(Config(root=tmp_path / "r", fsync=False, thumb_size=16))
    recs = []
    for i in range(30):
        recs.append(
            store.ingest(
                make_png(8, 8, seed=i),
                A,
                created_at=f"2026-0{1 + i % 3}-{10 + i % 10:02d}T12:00:{i:02d}+00:00",
                prompt=f"a {'red' if i % 2 else 'blue'} Cat number {i}",
                aspect_ratio="1:1" if i % 3 else "16:9",
                workflow_id="wf-a" if i < 15 else "wf-b",
                tags=["even"] if i % 2 == 0 else [],
                make_thumb=False,
            ).record
        )
    return store, sorted(recs, key=lambda r: (r.created_at, r.id), reverse=True)


def ids(page):
    return [r.id for r in page.items]


def test_recent_first_and_page_numbers(filled):
    store, recs = filled
    p1 = store.list(A, Query(size=10))
    p3 = store.list(A, Query(size=10, page=3))
    assert ids(p1) == [r.id for r in recs[:10]] and p1.total == 30
    assert ids(p3) == [r.id for r in recs[20:30]]
    assert store.list(A, Query(size=10, page=4)).items == []


def test_cursor_is_stable_under_inserts(filled):
    store, recs = filled
    p1 = store.list(A, Query(size=7))
    for i in range(5):  # newer images arrive while the visitor scrolls
        store.ingest(make_png(8, 8, seed=100 + i), A, make_thumb=False)
    seen = ids(p1)
    cursor = p1.next_cursor
    while cursor:
        page = store.list(A, Query(size=7, cursor=cursor))
        seen += ids(page)
        cursor = page.next_cursor
    assert seen == [r.id for r in recs]


def test_filters(filled):
    store, recs = filled
    assert {r.id for r in store.list(A, Query(size=100, tag="even")).items} == {r.id for r in recs if "even" in r.tags}
    assert store.list(A, Query(size=100, aspect_ratio="16:9")).total == 10
    assert store.list(A, Query(size=100, workflow_id="wf-b")).total == 15
    red_cat = store.list(A, Query(size=100, words=("CAT", "red")))
    assert red_cat.total == 15 and all("red" in r.prompt for r in red_cat.items)
    lo, hi = store.day_bounds("2026-02-01", "2026-02-28")
    feb = store.list(A, Query(size=100, created_from=lo, created_before=hi))
    assert feb.total == 10 and all(r.created_at.startswith("2026-02") for r in feb.items)
    fav = recs[3]
    store.update_meta(A, fav.id, favorite=True)
    assert ids(store.list(A, Query(favorite=True))) == [fav.id]


def test_filtered_cursor_paging_covers_all(filled):
    store, recs = filled
    want = [r.id for r in recs if "even" in r.tags]
    seen, cursor = [], None
    while True:
        page = store.list(A, Query(size=4, tag="even", cursor=cursor))
        seen += ids(page)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == want


def test_include_trash_and_all(filled):
    store, recs = filled
    store.trash(A, recs[0].id)
    assert store.list(A, Query(include="trash")).total == 1
    assert store.list(A, Query(include="all")).total == 30
    assert store.list(A, Query()).total == 29


def test_bad_cursor_and_include(filled):
    store, _ = filled
    with pytest.raises(InvalidInput):
        store.list(A, Query(cursor="!!notacursor"))
    with pytest.raises(InvalidInput):
        store.list(A, Query(include="everything"))


def test_kinds_are_listed_apart(filled):
    store, recs = filled
    copy = store.copy_as_input(A, recs[0].id)
    assert ids(store.list(A, Query(kind="input"))) == [copy.id]
    assert copy.id not in ids(store.list(A, Query(size=100)))
