"""Maintenance commands through the installed ``casvault`` executable.

- ``backup.incremental_bytes_ratio``: bytes a second ``casvault backup`` of
  the same, unchanged days adds to the backup folder ÷ bytes the first wrote.
- ``scrub.blake3_vs_sha256``: bytes/s of ``fsck --scrub`` (blake3) ÷ bytes/s
  of ``fsck --scrub --sha256`` over the same blobs (page cache warm for
  both), on a ~2.8 GB store (:func:`stores.scrub_store`) so that the
  command's fixed costs, reported as ``fsck_without_scrub_s``, do not
  hide the hashing.
A command that is missing (another issue builds it) is reported, not faked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from casvault.config import Config
from casvault.store import Store

from bench_thumbs import PARALLEL_IMAGES, cli, thumbs_store
from common import interleave, median, scratch, user
from stores import SCRUB_USER, scrub_store


def folder_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path`` (hardlinks counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def snapshot(path: Path) -> dict[str, tuple[int, int, int]]:
    """path → (inode, mtime_ns, size) of every regular file under ``path``."""
    found = {}
    for dirpath, _, files in os.walk(path):
        for name in files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[full] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def written_since(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> int:
    """Bytes of files that are new or were rewritten between two snapshots."""
    return sum(meta[2] for path, meta in after.items() if before.get(path) != meta)


def has_command(root: Path, name: str) -> bool:
    """True when ``casvault NAME --help`` works."""
    try:
        cli(root, name, "--help")
        return True
    except subprocess.CalledProcessError:
        return False


def _days(root: Path) -> tuple[str, str]:
    store = Store(Config(root=root, fsync=False))
    times = sorted(r.created_at for r in store.index(user(11)).records.values())
    day = lambda t: store.layout.day(t)  # noqa: E731
    return "-".join(day(times[0])), "-".join(day(times[-1]))


def _blob_bytes(root: Path) -> int:
    return sum(info.size for info in Store(Config(root=root, fsync=False)).blobs.iter())


def run(results: dict, quick: bool = False) -> None:
    """Fill ``results['backup']`` and ``results['scrub']``."""
    root = thumbs_store(60 if quick else PARALLEL_IMAGES)
    backup = results.setdefault("backup", {})
    if has_command(root, "backup"):
        lo, hi = _days(root)
        out = scratch("backup") / "out"
        cli(root, "backup", "--from", lo, "--to", hi, "--out", str(out))
        first = snapshot(out)
        cli(root, "backup", "--from", lo, "--to", hi, "--out", str(out))
        first_bytes = sum(meta[2] for meta in first.values())
        second = written_since(first, snapshot(out))
        backup.update(
            incremental_bytes_ratio=round(second / first_bytes, 5) if first_bytes else None,
            first_bytes=first_bytes,
            second_bytes_written=second,
            days=f"{lo}..{hi}",
        )
        shutil.rmtree(out.parent, ignore_errors=True)
    else:
        backup["missing"] = "casvault backup is not there yet"
    scrub = results.setdefault("scrub", {})
    if not has_command(root, "fsck"):
        scrub["missing"] = "casvault fsck is not there yet"
        return
    root = scrub_store()
    total = _blob_bytes(root)
    exe = str(Path(sys.executable).with_name("casvault"))

    def fsck(*extra: str) -> float:
        t = time.perf_counter()
        done = subprocess.run([exe, "--root", str(root), "fsck", "--json", *extra], capture_output=True, text=True)
        scrub.setdefault("exit_codes", []).append(done.returncode)
        return time.perf_counter() - t

    fsck("--scrub")  # warm the page cache
    rounds = 2 if quick else 5
    sha_s, b3_s = interleave(lambda: fsck("--scrub", "--sha256"), lambda: fsck("--scrub"), rounds)
    plain_s = [fsck() for _ in range(rounds)]
    store = Store(Config(root=root, fsync=False))
    digests = {r.sha256: r.blake3 for r in store.index(SCRUB_USER).records.values()}

    def hash_only(algo: str) -> float:
        t = time.perf_counter()
        for sha, b3 in digests.items():
            store.blobs.verify(sha, algo=algo, expected=b3)
        return total / (time.perf_counter() - t)

    sha_only, b3_only = interleave(lambda: hash_only("sha256"), lambda: hash_only("blake3"), rounds)
    scrub.update(
        blake3_vs_sha256=round(median(sha_s) / median(b3_s), 3),
        blake3_mb_per_s=round(total / median(b3_s) / 1e6, 1),
        sha256_mb_per_s=round(total / median(sha_s) / 1e6, 1),
        blake3_s=round(median(b3_s), 3),
        sha256_s=round(median(sha_s), 3),
        fsck_without_scrub_s=round(median(plain_s), 3),
        hash_only_blake3_vs_sha256=round(median(b3_only) / median(sha_only), 3),
        hash_only_blake3_mb_per_s=round(median(b3_only) / 1e6, 1),
        hash_only_sha256_mb_per_s=round(median(sha_only) / 1e6, 1),
        blob_bytes=total,
        blobs=len(digests),
    )
