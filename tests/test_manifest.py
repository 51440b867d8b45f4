"""The append-only manifest: torn tails, bad lines, appends under failure."""

import pytest

from casvault import faults
from casvault.errors import ManifestCorrupt, StorageError
from casvault.manifest import Manifest
from casvault.records import PurgeEvent, TrashEvent, encode_event


def ev(i):
    return TrashEvent(at=f"2026-01-01T00:00:0{i}.000+00:00", id=f"{i:032x}")


def test_append_and_read(tmp_path):
    m = Manifest(tmp_path / "m" / "manifest.jsonl")
    m.append(ev(1))
    m.append(ev(2), ev(3))
    chunk = m.read()
    assert [e.id for e in chunk.events] == [f"{i:032x}" for i in (1, 2, 3)]
    assert chunk.offset == m.size() and not chunk.torn
    assert m.path.read_bytes().endswith(b"\n")
    assert m.read(chunk.offset).events == []


def test_torn_tail_is_ignored_then_repaired(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    m.append(ev(1))
    whole = m.path.read_bytes()
    # a crash mid-append, cutting a multi-byte UTF-8 character in half
    partial = encode_event(PurgeEvent(at="é", id="x" * 32))[:-4]
    with open(m.path, "ab") as fh:
        fh.write(partial)
    chunk = m.read()
    assert len(chunk.events) == 1 and chunk.torn and chunk.offset == len(whole)
    m.append(ev(2))
    assert m.path.read_bytes() == whole + encode_event(ev(2))


def test_bad_middle_line_is_an_error(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    m.append(ev(1))
    with open(m.path, "ab") as fh:
        fh.write(b"{not json}\n")
    m.append(ev(2))
    with pytest.raises(ManifestCorrupt) as err:
        m.read()
    assert err.value.details["line"] == 2


def test_failed_append_leaves_no_partial_line(tmp_path, monkeypatch):
    m = Manifest(tmp_path / "manifest.jsonl")
    m.append(ev(1))
    before = m.path.read_bytes()
    monkeypatch.setenv("CASVAULT_FAULTS", "manifest.append=eio")
    faults.reset()
    try:
        with pytest.raises(StorageError):
            m.append(ev(2))
    finally:
        monkeypatch.delenv("CASVAULT_FAULTS")
        faults.reset()
    assert m.path.read_bytes() == before


def test_missing_manifest_reads_empty(tmp_path):
    chunk = Manifest(tmp_path / "nope.jsonl").read()
    assert chunk.events == [] and chunk.offset == 0
