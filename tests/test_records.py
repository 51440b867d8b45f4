"""Records and events: exact seed-memo field names, round trips, unknown fields kept."""

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from casvault.records import (
    AddEvent,
    ControlRecord,
    GeneratedRecord,
    InputRecord,
    decode_events,
    decode_record,
    encode_event,
    encode_record,
    evolve,
)

GENERATED_FIELDS = {
    "id", "owner", "kind", "workflow_id", "aspect_ratio", "seed", "prompt", "original_filename",
    "mime", "bytes", "sha256", "created_at", "status", "thumb", "tags",
}
OTHER_FIELDS = {"id", "owner", "kind", "original_filename", "mime", "bytes", "sha256", "created_at", "status", "thumb", "tags"}


def base(**kw):
    return dict(
        id="a" * 32, owner="anon-" + "b" * 32, original_filename="x.png", mime="image/png", bytes=10,
        sha256="c" * 64, created_at="2026-11-28T10:00:00.000+00:00", status="active", thumb="thumb/" + "a" * 32 + ".webp", tags=[],
    ) | kw


def test_generated_has_exactly_the_memo_fields_when_optional_are_default():
    rec = GeneratedRecord(**base(), workflow_id=None, aspect_ratio=None, seed=None, prompt=None)
    assert set(json.loads(encode_record(rec))) == GENERATED_FIELDS


def test_control_and_input_fields():
    for cls, kind in ((ControlRecord, "control"), (InputRecord, "input")):
        data = json.loads(encode_record(cls(**base())))
        assert set(data) == OTHER_FIELDS and data["kind"] == kind


def test_optional_fields_appear_when_set():
    rec = GeneratedRecord(**base(), workflow_id="w", aspect_ratio="1:1", seed=1, prompt="p", width=5, favorite=True)
    data = json.loads(encode_record(rec))
    assert data["width"] == 5 and data["favorite"] is True and "height" not in data


def test_unknown_fields_from_newer_version_are_kept():
    raw = json.loads(encode_record(InputRecord(**base())))
    raw["future_field"] = {"x": 1}
    rec = decode_record(json.dumps(raw).encode())
    again = json.loads(encode_record(evolve(rec, tags=["t"])))
    assert again["future_field"] == {"x": 1} and again["tags"] == ["t"]


@given(
    seed=st.one_of(st.none(), st.integers(min_value=0, max_value=2**64 - 1)),
    prompt=st.one_of(st.none(), st.text(max_size=200)),
    tags=st.lists(st.text(min_size=1, max_size=10), max_size=5),
)
def test_round_trip(seed, prompt, tags):
    rec = GeneratedRecord(**base(tags=tags), workflow_id="w", aspect_ratio=None, seed=seed, prompt=prompt)
    assert decode_record(encode_record(rec)) == rec
    line = encode_event(AddEvent(at="t", record=rec))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_events(line)[0].record == rec


def test_bad_sidecar_raises():
    import pytest

    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_record(b'{"kind": "generated", "id": 5}')


def test_apply_event_rules():
    from casvault.records import MetaEvent, MoveEvent, PurgeEvent, RestoreEvent, TrashEvent, apply_event

    owner = "anon-" + "b" * 32
    rec = InputRecord(**base())
    assert apply_event(None, AddEvent(at="t0", record=rec), owner) == rec
    trashed = apply_event(rec, TrashEvent(at="t1", id=rec.id), owner)
    assert trashed.status == "trash" and trashed.trashed_at == "t1"
    assert apply_event(trashed, TrashEvent(at="t2", id=rec.id), owner) is trashed  # idempotent
    back = apply_event(trashed, RestoreEvent(at="t3", id=rec.id), owner)
    assert back.status == "active" and back.trashed_at == "t1"  # the last trashing is kept
    tagged = apply_event(back, MetaEvent(at="t4", id=rec.id, tags=["x"]), owner)
    assert tagged.tags == ["x"] and tagged.favorite is False
    assert apply_event(tagged, PurgeEvent(at="t5", id=rec.id), owner) is None
    assert apply_event(None, TrashEvent(at="t6", id=rec.id), owner) is None
    moved = evolve(rec, owner="u-member")
    assert apply_event(rec, MoveEvent(at="t7", id=rec.id, owner_from=owner, owner_to="u-member"), owner) is None
    assert apply_event(None, MoveEvent(at="t7", id=rec.id, owner_from=owner, owner_to="u-member", record=moved), "u-member") == moved


import pytest


@pytest.mark.parametrize(
    "field,value",
    [("id", "../../etc"), ("thumb", "../../../tmp/x.webp"), ("thumb", "thumb/" + "b" * 32 + ".webp"),
     ("mime", "text/html"), ("owner", "../root")],
)
def test_sidecars_naming_paths_of_their_own_are_refused(field, value):
    raw = json.loads(encode_record(InputRecord(**base())))
    raw[field] = value
    with pytest.raises(msgspec.ValidationError):
        decode_record(json.dumps(raw).encode())


def test_layout_refuses_crafted_records(tmp_path):
    from casvault.errors import InvalidInput
    from casvault.layout import Layout

    rec = evolve(InputRecord(**base()), thumb="../../../../tmp/evil.webp")
    with pytest.raises(InvalidInput):
        Layout(tmp_path).paths(rec)
