"""Fuzzing: ids, user ids and paths never reach a 5xx or a file outside outputs/; records round-trip; the live API never 5xxes."""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casvault.layout import Layout
from casvault.records import (
    AddEvent,
    GeneratedRecord,
    InputRecord,
    MetaEvent,
    decode_event,
    decode_record,
    encode_event,
    encode_record,
    evolve,
)
from casvault.validate import ANON_RE, MEMBER_RE, is_id, is_user_id
from tests.conftest import INGEST_TOKEN, make_png
from tests.reliability.clients import AUTH, XRW, cookie, owner, server

SOAK = os.environ.get("CASVAULT_SOAK") == "1"
FUZZ = settings(
    max_examples=2000 if SOAK else 150, deadline=None, derandomize=not SOAK, database=None,
    suppress_health_check=list(HealthCheck),
)
VICTIM = owner(11)
INTRUDER = owner(12)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """A Flask app over a store holding one active and one trashed image of a victim."""
    from casvault.config import Config
    from tests.conftest import ADMIN_TOKEN, SECRET
    from web import create_app

    root = tmp_path_factory.mktemp("fuzz") / "root"
    app = create_app(Config(root=root, secret_key=SECRET, admin_token=ADMIN_TOKEN, ingest_token=INGEST_TOKEN,
                            thumb_size=32))
    client = app.test_client()
    made = []
    for seed in (1, 2):
        r = client.post("/api/v1/ingest", data={"file": (io.BytesIO(make_png(seed=seed)), "a.png"), "owner": VICTIM},
                        headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
        assert r.status_code == 201
        made.append(r.get_json())
    client.set_cookie("anon_id", cookie(VICTIM)["anon_id"])
    assert client.post(f"/api/v1/images/{made[1]['id']}/delete", headers=XRW).status_code == 200
    return app, root, made[0], made[1]


SEGMENTS = st.sampled_from([
    "..", ".", "%2e%2e", "%2E%2E%2F", "users", VICTIM, INTRUDER, "thumb", "inputs", "controls", "2026", "11", "28",
    "blobs", "sha256", "meta", "manifest.jsonl", "casvault.json", "trash", "tmp", "%00", "\\..\\", "", "~",
    "a" * 32 + ".png", "a" * 32 + ".json", "%252e%252e",
])


@st.composite
def outputs_paths(draw, active: dict, trashed: dict) -> str:
    """Paths under /outputs: mutations of the victim's real URLs, and segments from nothing."""
    real = draw(st.sampled_from([active["url"], active["thumb_url"], trashed["url"], "/outputs/users/" + VICTIM]))
    parts = real.split("/")
    ops = draw(st.lists(st.tuples(st.integers(0, len(parts) + 1), SEGMENTS | st.text(max_size=12)), max_size=4))
    for at, seg in ops:
        parts.insert(min(at, len(parts)), seg)
    if draw(st.booleans()):
        parts[-1] = parts[-1].replace(".png", draw(st.sampled_from([".json", ".PNG", ".png/", ".png%00", ".webp"])))
    return "/".join(parts)


def test_outputs_paths_never_serve_anything_else(fuzz_app):
    app, root, active, trashed = fuzz_app
    client = app.test_client()
    original = (root / active["url"].removeprefix("/")).read_bytes()
    allowed = {active["url"], active["thumb_url"]}

    @FUZZ
    @given(path=outputs_paths(active, trashed))
    def check(path: str) -> None:
        resp = client.get(quote(path, safe="/%"))
        assert resp.status_code < 500, (path, resp.status_code)
        if resp.status_code == 200:
            assert path in allowed or path.rstrip("/") in allowed, f"served {path!r}"
            if path == active["url"]:
                assert resp.get_data() == original
        elif resp.status_code != 308 and path.startswith("/outputs/"):
            assert resp.is_json and resp.get_json()["error"]["code"], path

    check()


def test_api_ids_never_reach_another_users_record(fuzz_app):
    app, _root, active, trashed = fuzz_app
    client = app.test_client()
    client.set_cookie("anon_id", cookie(INTRUDER)["anon_id"])
    victim_ids = {active["id"], trashed["id"]}
    suffixes = st.sampled_from(["", "/file", "/thumb", "/delete", "/restore", "/purge", "/share"])

    @FUZZ
    @given(rid=st.one_of(st.text(max_size=80), st.sampled_from(sorted(victim_ids)), st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
           suffix=suffixes, collection=st.sampled_from(["images", "inputs", "controls"]))
    def check(rid: str, suffix: str, collection: str) -> None:
        path = f"/api/v1/{collection}/{quote(rid, safe='')}{suffix}"
        method = "GET" if suffix in ("", "/file", "/thumb") else "POST"
        resp = client.open(path, method=method, headers=XRW)
        assert resp.status_code < 500, (path, resp.status_code, resp.get_data()[:200])
        assert resp.status_code in (400, 404, 405, 308), (path, resp.status_code)
        if resp.status_code != 308:
            assert resp.get_json()["error"]["code"]

    check()
    victim = app.test_client()
    victim.set_cookie("anon_id", cookie(VICTIM)["anon_id"])
    assert victim.get(f"/api/v1/images/{active['id']}").get_json()["status"] == "active"
    assert victim.get(f"/api/v1/images/{trashed['id']}").get_json()["status"] == "trash"


@FUZZ
@given(value=st.one_of(st.text(max_size=80), st.from_regex(ANON_RE, fullmatch=True), st.from_regex(MEMBER_RE, fullmatch=True)))
def test_user_ids_accepted_are_exactly_the_two_shapes_and_stay_inside_the_root(value):
    shaped = bool(ANON_RE.fullmatch(value) or MEMBER_RE.fullmatch(value)) and value.isascii() and "\n" not in value
    assert is_user_id(value) == shaped
    if is_user_id(value):
        root = Path("/srv/store")
        layout = Layout(root)
        for trashed in (False, True):
            base = layout.user_base(value, trashed)
            assert os.path.normpath(base) == str(base) and base.parent.parent.parent == root
            assert base.name == value


@FUZZ
@given(value=st.one_of(st.text(max_size=40), st.from_regex(r"[0-9a-f]{32}", fullmatch=True)))
def test_record_ids_are_32_lowercase_hex(value):
    assert is_id(value) == (len(value) == 32 and all(c in "0123456789abcdef" for c in value))


texts = st.text(max_size=200) | st.none()
records = st.builds(
    GeneratedRecord,
    id=st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    owner=st.from_regex(ANON_RE, fullmatch=True),
    original_filename=texts,
    mime=st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
    bytes=st.integers(0, 2**53),
    sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    # times every partition zone can show (records refuse the first and last day of years 1 and 9999)
    created_at=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 29)).map(
        lambda d: d.isoformat(timespec="milliseconds") + "+00:00"),
    status=st.sampled_from(["active", "trash"]),
    thumb=st.none(),
    tags=st.lists(st.text(max_size=64), max_size=8),
    workflow_id=texts,
    aspect_ratio=texts,
    seed=st.none() | st.integers(-(2**63), 2**64 - 1),
    prompt=texts,
    negative_prompt=texts,
    favorite=st.booleans(),
    source=st.none() | st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20), max_size=4),
).flatmap(
    # NOTE: a thumb names a path, so it must be thumb/<the record's own id>.<ext>
    lambda r: st.sampled_from([r, evolve(r, thumb=f"thumb/{r.id}.webp"), evolve(r, thumb=f"thumb/{r.id}.jpg")])
)


@FUZZ
@given(record=records, extra=st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in GeneratedRecord.__struct_fields__ and k != "kind"), st.integers() | st.text(max_size=10), max_size=3))
def test_records_and_events_round_trip(record, extra):
    assert decode_record(encode_record(record)) == record
    line = encode_event(AddEvent(at=record.created_at, record=record))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_event(line[:-1]).record == record
    meta = MetaEvent(at=record.created_at, id=record.id, tags=record.tags, favorite=record.favorite)
    assert decode_event(encode_event(meta)[:-1]) == meta
    # unknown fields of a newer version survive a read and a write
    data = msgspec.json.decode(encode_record(record))
    data.update(extra)
    again = decode_record(encode_record(decode_record(msgspec.json.encode(data))))
    assert {k: v for k, v in msgspec.json.decode(encode_record(again)).items() if k in extra} == extra


def test_input_record_round_trip():
    rec = InputRecord(id="a" * 32, owner=VICTIM, original_filename="é\u202e.png", mime="image/png", bytes=1,
                      sha256="b" * 64, created_at="2026-11-28T00:00:00.000+00:00", status="active", thumb=None, tags=[])
    assert decode_record(encode_record(rec)) == rec


# --- schemathesis against a live 2-worker gunicorn ----------------------------------------


@pytest.fixture(scope="module")
def live_url(tmp_path_factory):
    """A real gunicorn (2 workers) with a victim's records in it."""
    import requests

    srv = server(tmp_path_factory.mktemp("live") / "root", workers=2)
    srv.start()
    for seed in range(3):
        r = requests.post(srv.url + "/api/v1/ingest", files={"file": ("a.png", make_png(seed=seed))},
                          data={"owner": VICTIM}, headers=AUTH, timeout=10)
        assert r.status_code == 201
    yield srv.url
    srv.stop()


def test_live_api_never_answers_5xx(live_url):
    """Every operation of the served OpenAPI document, fuzzed against the real server: never a 5xx."""
    from schemathesis.checks import not_a_server_error

    from tests.conftest import ADMIN_TOKEN

    schema = schemathesis.openapi.from_url(live_url + "/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    calls = 0
    for operation in operations:
        headers = dict(XRW)
        if operation.path.startswith("/api/v1/admin"):
            headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        elif operation.path == "/api/v1/ingest" or "stage" in operation.path:
            headers.update(AUTH)

        @settings(max_examples=40 if SOAK else 6, deadline=None, derandomize=not SOAK, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            nonlocal calls
            resp = case.call(headers=headers, cookies=cookie(INTRUDER), timeout=30)
            calls += 1
            case.validate_response(resp, checks=(not_a_server_error,))

        run()
    assert calls >= len(operations)
