"""Trusting a sidecar found on disk: the rule against a record that names another user's blob.

A sidecar is the truth of one record, but a sidecar is also just a file in
a folder. One that names the sha256 of an image another user holds would,
once indexed, hand that image to its folder's user. A record of this user
may name a blob others hold only when this user's manifest already had that
blob, or when the record's own projection carries the bytes (an ingest,
adoption or restore that crashed before its manifest line). ``fsck`` and
``reindex`` quarantine a sidecar that fails; a manifest rebuild leaves it out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import safefs
from .blobs import digest
from .errors import CasvaultError, InvalidInput
from .manifest import replay
from .records import Record
from .validate import check_record

if TYPE_CHECKING:
    from .store import Store

CLAIM = "claims a blob of another user without carrying its bytes"
SIDECAR_MAX_RECORD_BYTES = 1 << 62  # NOTE: the upload limit may have been lowered since the ingest


def refusal(record: Record) -> str | None:
    """Why a decoded sidecar is not a record the store accepts (ids, digests, size, status, tags); None if it is."""
    try:
        check_record(record, max_bytes=SIDECAR_MAX_RECORD_BYTES, text=False)
    except InvalidInput as exc:
        return exc.message
    return None


def blob_owners(store: Store) -> dict[str, set[str]]:
    """sha256 → the users whose manifest names that blob (read without locks)."""
    owners: dict[str, set[str]] = {}
    for user in store.users():
        for record in replay(store.layout.manifest_path(user), user).records.values():
            owners.setdefault(record.sha256, set()).add(user)
    return owners


def carries_bytes(store: Store, record: Record, image: Path) -> bool:
    """True when ``image`` holds the record's blob: our relative link into blobs/, the same inode, or equal bytes."""
    try:
        blob = store.blobs.path(record.sha256)
    except (AttributeError, CasvaultError):
        return False
    if safefs.lkind(image) == "symlink":
        target = os.readlink(image)
        return not os.path.isabs(target) and os.path.realpath(image) == os.path.realpath(blob)
    try:
        if os.path.samefile(image, blob):
            return True
        return digest(safefs.read_regular(image, record.bytes)) == record.sha256
    except (OSError, CasvaultError):
        return False


def blob_claim(
    store: Store,
    record: Record,
    own_shas: set[str],
    images: list[Path],
    others: Callable[[], dict[str, set[str]]],
) -> str | None:
    """Why ``record`` may not name its blob (:data:`CLAIM`), or None when it may.

    ``own_shas``: the blobs the owner's manifest names; ``images``: the
    record's projection files found on disk; ``others``: the blob → users
    map, computed only when needed.
    """
    if record.sha256 in own_shas:
        return None
    if any(carries_bytes(store, record, image) for image in images):
        return None
    holders = others().get(record.sha256, set()) - {record.owner}
    return CLAIM if holders else None
