"""An independent consistency checker for a store root, and helpers the reliability tests share.

It does not trust ``casvault fsck``: it walks outputs/, trash/, meta/ and
blobs/ itself and reports every way a record can be half-visible.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from casvault.errors import ManifestCorrupt
from casvault.index import UserIndex
from casvault.layout import Layout
from casvault.manifest import Manifest
from casvault.records import Record, decode_record
from casvault.validate import is_user_id

REPO = Path(__file__).resolve().parents[2]
CASVAULT = Path(sys.executable).with_name("casvault")
IMAGE_RE = re.compile(r"([0-9a-f]{32})\.(png|jpg|webp)")
THUMB_RE = re.compile(r"([0-9a-f]{32})\.(webp|jpg)")
SIDECAR_RE = re.compile(r"([0-9a-f]{32})\.json")


@dataclass
class Report:
    """What the checker found: the problems and the records it saw, by owner and id."""

    problems: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Record]] = field(default_factory=dict)

    def ids(self, owner: str, status: str | None = None) -> set[str]:
        """Ids of ``owner``'s records (optionally only those in one status)."""
        return {r.id for r in self.records.get(owner, {}).values() if status is None or r.status == status}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess, without any armed fault or stray store setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASVAULT_")}
    env.update(extra)
    return env


def run_cli(root: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run the installed ``casvault`` command over ``root`` (``env``: extra CASVAULT_* settings)."""
    return subprocess.run(
        [str(CASVAULT), "--root", str(root), *args],
        capture_output=True, text=True, timeout=timeout, env=clean_env(**env), cwd=REPO,
    )


def _blob_path(root: Path, sha: str) -> Path:
    return root / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha


def check(root: Path, *, deep: bool = True) -> Report:
    """Walk a store and report every inconsistency (empty ``problems`` means consistent).

    Checks: every sidecar parses, sits where its status and date say, has its
    blob, projection (same bytes as the blob) and thumbnail; no projection or
    thumbnail without a sidecar; no stray file in outputs/ or trash/; every
    manifest parses and its folded state equals the sidecars (ids, status,
    tags, favorite); with ``deep`` every blob's name is its sha256.
    """
    rep = Report()
    layout = Layout(root)
    sidecars: dict[str, tuple[Path, Record]] = {}
    for trashed, base in ((False, root / "outputs" / "users"), (True, root / "trash" / "users")):
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            d = Path(dirpath)
            for name in files:
                path = d / name
                rel = path.relative_to(root)
                parts = rel.parts
                owner = parts[2] if len(parts) > 2 else ""
                if not is_user_id(owner):
                    rep.problems.append(f"stray file outside a user folder: {rel}")
                    continue
                if d.name == "thumb":
                    m = THUMB_RE.fullmatch(name)
                    if not m:
                        rep.problems.append(f"stray file in a thumb folder: {rel}")
                    elif not (d.parent / f"{m.group(1)}.json").exists():
                        rep.problems.append(f"thumbnail without a sidecar: {rel}")
                    continue
                if m := SIDECAR_RE.fullmatch(name):
                    try:
                        record = decode_record(path.read_bytes())
                    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                        rep.problems.append(f"unreadable sidecar {rel}: {exc}")
                        continue
                    if record.id != m.group(1) or record.owner != owner:
                        rep.problems.append(f"sidecar {rel} names id {record.id} of {record.owner}")
                        continue
                    if record.id in sidecars:
                        rep.problems.append(f"two sidecars for {record.id}: {sidecars[record.id][0]} and {rel}")
                        continue
                    if (record.status == "trash") != trashed:
                        rep.problems.append(f"sidecar {rel} says {record.status!r} but lies in {parts[0]}/")
                    elif path != layout.sidecar_path(record):
                        rep.problems.append(f"sidecar {rel} is not at {layout.sidecar_path(record).relative_to(root)}")
                    sidecars[record.id] = (path, record)
                    continue
                if m := IMAGE_RE.fullmatch(name):
                    if not (d / f"{m.group(1)}.json").exists():
                        rep.problems.append(f"projection without a sidecar: {rel}")
                    continue
                rep.problems.append(f"stray file: {rel}")
    for rid, (path, record) in sidecars.items():
        rel = path.relative_to(root)
        rep.records.setdefault(record.owner, {})[rid] = record
        blob = _blob_path(root, record.sha256)
        if not blob.is_file():
            rep.problems.append(f"sidecar {rel} without its blob {record.sha256}")
            continue
        image = path.with_name(f"{rid}.{record.ext}")
        if not image.is_file():
            rep.problems.append(f"sidecar {rel} without its projection {image.name}")
        elif not (os.path.samefile(image, blob) or image.read_bytes() == blob.read_bytes()):
            rep.problems.append(f"projection {image.relative_to(root)} differs from its blob")
        if record.thumb and not (path.parent / record.thumb).is_file():
            rep.problems.append(f"sidecar {rel} without its thumbnail {record.thumb}")
        if blob.stat().st_size != record.bytes:
            rep.problems.append(f"blob of {rid} has {blob.stat().st_size} bytes, the record says {record.bytes}")
    owners = set(rep.records)
    meta = root / "meta" / "users"
    if meta.is_dir():
        owners |= {p.name for p in meta.iterdir() if is_user_id(p.name)}
    for owner in sorted(owners):
        _check_manifest(root, layout, owner, rep)
    if deep:
        _check_blobs(root, rep)
    return rep


def _check_manifest(root: Path, layout: Layout, owner: str, rep: Report) -> None:
    manifest = Manifest(layout.manifest_path(owner), fsync=False)
    index = UserIndex(owner, manifest)
    try:
        index.refresh()
    except ManifestCorrupt as exc:
        rep.problems.append(f"manifest of {owner} is corrupt: {exc.message}")
        return
    have = rep.records.get(owner, {})
    logged = index.records
    for rid in sorted(set(logged) - set(have)):
        rep.problems.append(f"manifest of {owner} lists {rid}, which has no sidecar")
    for rid in sorted(set(have) - set(logged)):
        rep.problems.append(f"sidecar of {owner}/{rid} is missing from the manifest")
    for rid in sorted(set(have) & set(logged)):
        a, b = have[rid], logged[rid]
        for name in ("status", "tags", "favorite", "sha256", "kind", "created_at"):
            if getattr(a, name) != getattr(b, name):
                rep.problems.append(
                    f"{owner}/{rid}: sidecar {name}={getattr(a, name)!r}, manifest {name}={getattr(b, name)!r}"
                )


def _check_blobs(root: Path, rep: Report) -> None:
    base = root / "blobs" / "sha256"
    if not base.is_dir():
        return
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            path = Path(dirpath) / name
            if not re.fullmatch(r"[0-9a-f]{64}", name):
                rep.problems.append(f"stray file in blobs/: {path.relative_to(root)}")
                continue
            if hashlib.sha256(path.read_bytes()).hexdigest() != name:
                rep.problems.append(f"blob {name} does not hash to its name")


def blob_names(root: Path) -> set[str]:
    """The sha256 names of every stored blob."""
    base = root / "blobs" / "sha256"
    return {n for _d, _s, files in os.walk(base) for n in files if re.fullmatch(r"[0-9a-f]{64}", n)}


def file_set(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (lock files aside) with its size and mtime, for before/after checks."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith("locks/"):
                continue
            st = path.lstat()
            out[rel] = (st.st_size, st.st_mtime_ns)
    return out
