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


# --- secondary indexes: posting lists and the word index agree with a scan ----------------

MODELS = ("flux1-dev.safetensors", "sdxl_base_1.0.safetensors", "dreamshaper_8.safetensors")
SAMPLERS = ("euler", "dpmpp_2m", "euler_ancestral")
LORAS = ("detail-tweaker", "anime_style", "pixel-art")
B = user(2)
M = "u-member"


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance (the test's own reference for one typo)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _ref_values(r, field):
    src = r.source or {}
    if field == "model":
        return [src["model"]] if src.get("model") else []
    if field == "sampler":
        return [src["sampler"]] if src.get("sampler") else []
    if field == "lora":
        return [lo["name"] for lo in src.get("loras", [])]
    if field == "tag":
        return list(r.tags)
    value = getattr(r, field, None)
    return [value] if value else []


def _ref_words(r):
    import re

    src = r.source or {}
    parts = [getattr(r, "prompt", None), getattr(r, "negative_prompt", None), src.get("model"), src.get("sampler"),
             *[lo["name"] for lo in src.get("loras", [])], str(getattr(r, "seed", None) or ""), r.original_filename]
    return set(re.findall(r"[a-z0-9]+", " ".join(p for p in parts if p).lower()))


def _ref_word_match(query_word, words):
    typo = len(query_word) >= 4 and not query_word.isdigit()
    return any(w.startswith(query_word) or (typo and _osa(query_word, w) <= 1) for w in words)


def scan(store, owner, q):
    """Ids of ``owner``'s records that ``q`` selects, newest first, by reading every record."""
    idx = store.index(owner)
    out = []
    for r in idx.records.values():
        if r.kind != q.kind or (q.include != "all" and r.status != q.include):
            continue
        if q.created_from and r.created_at < q.created_from or q.created_before and r.created_at >= q.created_before:
            continue
        if q.favorite and not r.favorite:
            continue
        if any(value not in _ref_values(r, field) for field, value in q.facet_filters.items()):
            continue
        words = _ref_words(r)
        if not all(_ref_word_match(w, words) for raw in q.words for w in raw.lower().replace("-", " ").split()):
            continue
        out.append(r)
    out.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return out


def scan_facets(store, owner, q, field):
    counts = {}
    for r in scan(store, owner, q):
        for value in dict.fromkeys(_ref_values(r, field)):
            counts[value] = counts.get(value, 0) + 1
    return sorted(({"value": v, "count": n} for v, n in counts.items()), key=lambda d: (-d["count"], d["value"]))


QUERIES = [
    Query(size=500),
    Query(size=500, tag="even"),
    Query(size=500, model=MODELS[0]),
    Query(size=500, lora=LORAS[1]),
    Query(size=500, sampler=SAMPLERS[2], include="all"),
    Query(size=500, aspect_ratio="16:9", workflow_id="wf-a"),
    Query(size=500, favorite=True),
    Query(size=500, include="trash"),
    Query(size=500, words=("castel",)),  # one typo (swap) of castle
    Query(size=500, words=("drgon",)),  # one letter missing
    Query(size=500, words=("cas",)),  # prefix
    Query(size=500, words=("flux1-dev",)),  # model words
    Query(size=500, words=("pixle", "ComfyUI")),  # LoRA name with a typo, and the file name
    Query(size=500, words=("4242",)),  # seed prefix
    Query(size=500, words=("neon", "forest"), tag="even"),
    Query(size=500, words=("cat",), include="all"),
]


def _check_against_scan(store, owner):
    for q in QUERIES + [Query(size=500, created_from="2026-02-01T00:00:00.000+00:00", model=MODELS[1])]:
        want = [r.id for r in scan(store, owner, q)]
        page = store.list(owner, q)
        assert ids(page) == want and page.total == len(want), q
        for field in ("model", "lora", "sampler", "workflow_id", "aspect_ratio", "tag"):
            assert store.facets(owner, q, (field,), limit=100)[field] == scan_facets(store, owner, q, field), (q, field)


def _add(store, owner, i, **over):
    fields = dict(
        created_at=f"2026-0{1 + i % 3}-{10 + i % 10:02d}T12:00:{i % 60:02d}+00:00",
        prompt=f"a {('castle', 'dragon', 'cat', 'neon forest')[i % 4]} scene {i}",
        negative_prompt="blurry" if i % 5 == 0 else None,
        aspect_ratio="1:1" if i % 3 else "16:9",
        workflow_id="wf-a" if i % 2 else "wf-b",
        tags=["even"] if i % 2 == 0 else [],
        seed=4242000 + i,
        original_filename=f"ComfyUI_{i:05d}_.png",
        source={"tool": "comfyui", "model": MODELS[i % 3], "sampler": SAMPLERS[i % 3],
                "loras": [{"name": LORAS[i % 3]}, {"name": LORAS[(i + 1) % 3]}] if i % 4 else []},
        make_thumb=False,
    )
    fields.update(over)
    return store.ingest(make_png(8, 8, seed=1000 + i), owner, **fields).record


def test_secondary_indexes_agree_with_a_scan_after_every_event_kind(tmp_path):
    from casvault.merge import merge_users

    root = tmp_path / "r"
    reader = Store(Config(root=root, fsync=False, thumb_size=16))
    writer = Store(Config(root=root, fsync=False, thumb_size=16))  # another worker: reader follows the manifest tail
    recs = [_add(writer, A, i) for i in range(24)]
    _check_against_scan(reader, A)  # builds the secondary indexes
    assert reader.index(A)._secondary is not None
    # add (newest, and backdated: the slots fall out of time order)
    recs.append(_add(writer, A, 100, created_at="2026-03-30T00:00:00+00:00"))
    recs.append(_add(writer, A, 101, created_at="2025-12-01T00:00:00+00:00", prompt="old castle"))
    _check_against_scan(reader, A)
    assert not reader.index(A)._secondary.ordered
    writer.trash(A, recs[0].id)  # trash
    writer.trash(A, recs[1].id)
    _check_against_scan(reader, A)
    writer.restore(A, recs[0].id)  # restore
    _check_against_scan(reader, A)
    writer.purge(A, recs[1].id)  # purge
    _check_against_scan(reader, A)
    writer.update_meta(A, recs[2].id, tags=["even", "print"], favorite=True)  # meta
    writer.update_meta(A, recs[4].id, tags=[])
    _check_against_scan(reader, A)
    assert ids(reader.list(A, Query(tag="print"))) == [recs[2].id]
    guest = [_add(writer, B, 200 + i) for i in range(3)]  # move: guest to member
    _check_against_scan(reader, M)
    merge_users(writer, B, M)
    merge_users(writer, A, M)
    _check_against_scan(reader, M)
    _check_against_scan(reader, A)
    assert reader.list(A, Query(size=500, words=("castle",))).total == 0
    assert {g.id for g in guest} <= {r.id for r in reader.list(M, Query(size=500, include="all")).items}
    # a purge in the local process (apply_local) as well
    reader.trash(M, guest[0].id)
    reader.purge(M, guest[0].id)
    _check_against_scan(reader, M)


def test_typo_prefix_and_short_words(filled):
    store, recs = filled
    # prompts are "a red|blue Cat number i"
    assert store.list(A, Query(words=("nubmer",))).total == 30  # swapped neighbours
    assert store.list(A, Query(words=("numbr",))).total == 30  # a letter missing
    assert store.list(A, Query(words=("numbeer",))).total == 30  # a letter too many
    assert store.list(A, Query(words=("nomber",))).total == 30  # a letter replaced
    assert store.list(A, Query(words=("nmbrr",))).total == 0  # two typos
    assert store.list(A, Query(words=("num",))).total == 30  # prefix
    assert store.list(A, Query(words=("bed",))).total == 0  # three letters: no typo tolerance
    assert store.list(A, Query(words=("ret",))).total == 0
    assert store.list(A, Query(words=("red",))).total == 15
    assert store.list(A, Query(words=("12",))).total == 1  # numbers: prefix only ("12", not "1"..)
    assert store.list(A, Query(words=("13",))).total == 1
    assert store.list(A, Query(words=("!!",))).total == 30  # no letter or digit: no constraint


def test_paging_over_posting_lists(filled):
    store, recs = filled
    want = [r.id for r in recs if "red" in r.prompt]
    by_page = []
    for page in (1, 2, 3, 4):
        by_page += ids(store.list(A, Query(size=4, page=page, words=("red",))))
    assert by_page == want
    seen, cursor = [], None
    while True:
        page = store.list(A, Query(size=4, words=("red",), cursor=cursor))
        seen += ids(page)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == want


def test_posting_lists_hold_slots_in_time_order(filled):
    store, recs = filled
    sec = store.index(A).secondary()
    assert len(sec.slot_of) == 30 and sec.ordered
    even = list(sec.facets["tag"].get("even"))
    assert even == sorted(sec.slot_of[r.id] for r in recs if "even" in r.tags)
    assert [sec.key_at(s) for s in even] == sorted((r.created_at, r.id) for r in recs if "even" in r.tags)
