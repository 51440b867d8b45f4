"""Pull finished ComfyUI jobs into the store: poll ``/history``, fetch ``/view``, ingest once.

ComfyUI keeps the jobs it ran in memory (``GET /history``, at most 10000 of
them, cleared on restart). Each entry reads::

    {prompt_id: {"prompt": [number, prompt_id, graph, extra_data, outputs_to_execute],
                 "outputs": {node_id: {"images": [{"filename", "subfolder", "type"}]}},
                 "status": {"status_str": "success"|"error", "completed": bool, "messages": [...]}}}

:func:`sync` ingests every image of type "output" of each successful job
not seen before, as a generated record of the owner named in the job's
``extra_data`` (``--owner-from extra_data.owner_id``), with the ComfyUI
file name as ``original_filename``; the store fills seed and prompts from
the PNG's own metadata. What was handled is remembered in
``<root>/meta/comfy-sync.json`` (the last N prompt ids with their queue
numbers, the highest queue number handled, and a floor: the highest number
of an id dropped from that list, at or below which every job of the same
ComfyUI run counts as handled), written
atomically after each job; on top of that an image whose sha256 and file
name the owner already has is never ingested again, so a lost state file
costs a rescan, not duplicates.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from . import safefs
from .atomic import write_file
from .blobs import digest
from .errors import CasvaultError, InvalidInput, StorageError, StorageFull, UpstreamError
from .records import now_iso
from .validate import is_user_id

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ComfyClient", "SyncReport", "SyncState", "load_state", "resolve_owner", "state_path", "sync"]

STATE_NAME = "comfy-sync.json"
KEEP_IDS = 10_000  # as many as ComfyUI's own history holds (MAXIMUM_HISTORY_SIZE)
_MAX_HISTORY_BYTES = 512 << 20


class ComfyClient:
    """The two read endpoints of a ComfyUI server, over urllib with a timeout."""

    def __init__(self, url: str, timeout: float = 30.0, max_image_bytes: int = 50 << 20) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"ComfyUI URL must be http(s)://host:port, not {url!r}", field="url")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_image_bytes = max_image_bytes

    def _get(self, path: str, params: dict[str, str], limit: int) -> bytes:
        """GET a path; raises UpstreamError (with ``status`` for an HTTP error answer)."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        target = f"{self.url}{path}{query}"
        try:
            with urllib.request.urlopen(target, timeout=self.timeout) as resp:
                body = resp.read(limit + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise UpstreamError(f"ComfyUI answered {exc.code} for {path}", status=exc.code, url=target) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UpstreamError(f"cannot reach ComfyUI at {self.url}: {reason}", url=target) from None
        if len(body) > limit:
            raise UpstreamError(f"ComfyUI's answer for {path} is larger than {limit} bytes", url=target)
        return body

    def history(self, max_items: int | None = None) -> dict[str, Any]:
        """``GET /history`` as a dict; raises UpstreamError when unreachable or not a JSON object."""
        params = {"max_items": str(max_items)} if max_items else {}
        body = self._get("/history", params, _MAX_HISTORY_BYTES)
        try:
            data = json.loads(body)
        except ValueError:
            raise UpstreamError(f"ComfyUI at {self.url} answered /history with something that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(f"ComfyUI at {self.url} answered /history with a JSON {type(data).__name__}")
        return data

    def view(self, filename: str, subfolder: str = "", type_: str = "output") -> bytes:
        """``GET /view`` of one output file; raises UpstreamError."""
        params = {"filename": filename, "subfolder": subfolder, "type": type_}
        return self._get("/view", params, self.max_image_bytes)


class SyncState(msgspec.Struct, omit_defaults=True):
    """What comfy-sync has handled, kept in ``<root>/meta/comfy-sync.json``."""

    version: int = 1
    url: str | None = None
    synced: list[tuple[str, int | None]] = []  # (prompt id, queue number), oldest first, at most KEEP_IDS
    high_water: dict[str, Any] | None = None  # {"number", "prompt_id"} of the highest queue number handled
    floor: int | None = None  # every job numbered at or below this was handled (same ComfyUI run)
    updated_at: str | None = None


_state_decoder = msgspec.json.Decoder(SyncState)


def state_path(store: Store) -> Path:
    """Where the sync state of this store lives."""
    return store.layout.meta / STATE_NAME


def load_state(store: Store) -> SyncState:
    """The saved state, or a fresh one; raises CasvaultError if the file is damaged."""
    try:
        return _state_decoder.decode(safefs.read_regular(state_path(store), safefs.JSON_MAX_BYTES))
    except FileNotFoundError:
        return SyncState()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CasvaultError(f"{state_path(store)} is damaged ({exc}); move it aside to rescan") from None


def _save_state(store: Store, state: SyncState) -> None:
    state.updated_at = now_iso()
    data = msgspec.json.format(msgspec.json.encode(state)) + b"\n"
    write_file(state_path(store), data, store.layout.tmp, fsync=store.config.fsync)


@dataclass
class SyncReport:
    """What one pass did (``--json`` prints it)."""

    prompts_seen: int = 0
    prompts_synced: int = 0
    images_ingested: int = 0
    images_present: int = 0  # already in the store (same sha256 and file name for that owner)
    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # jobs not ingested, with the reason
    errors: list[dict[str, str]] = field(default_factory=list)  # images that could not be ingested

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return asdict(self)


def parse_owner_path(path: str) -> tuple[str, ...]:
    """Split ``extra_data.owner_id`` into keys below extra_data; raises InvalidInput."""
    parts = tuple(path.split("."))
    if len(parts) < 2 or parts[0] != "extra_data" or not all(parts):
        raise InvalidInput(f"--owner-from must be a dotted path under extra_data, e.g. extra_data.owner_id, not {path!r}")
    return parts[1:]


def resolve_owner(extra_data: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` inside a job's extra_data, or None when the path is absent."""
    value = extra_data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _finished_at(status: Any) -> datetime | None:
    """When ComfyUI reported the job done (``execution_success`` timestamp, ms), if it says."""
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, (list, tuple)) and len(message) == 2 and message[0] == "execution_success":
            stamp = message[1].get("timestamp") if isinstance(message[1], dict) else None
            if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and 0 < stamp < 1e14:
                return datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)
    return None


def _output_images(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(filename, subfolder) of every image of type "output" in a history entry, in node order."""
    found: list[tuple[str, str]] = []
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        return found
    for node_out in outputs.values():
        images = node_out.get("images") if isinstance(node_out, dict) else None
        for image in images if isinstance(images, list) else ():
            if not isinstance(image, dict) or image.get("type", "output") != "output":
                continue  # "temp" files are PreviewImage's, deleted by ComfyUI
            filename, subfolder = image.get("filename"), image.get("subfolder") or ""
            if isinstance(filename, str) and filename and isinstance(subfolder, str):
                found.append((filename, subfolder))
    return found


def _already_has(store: Store, owner: str, sha: str, filename: str) -> bool:
    """True when ``owner`` has a record (any status) with this sha256 and original name."""
    idx = store.index(owner)
    return any(
        idx.records[rid].original_filename == filename for rid in idx.by_sha.get(sha, ()) if rid in idx.records
    )


def _job(entry: Any) -> tuple[int | None, dict[str, Any]] | None:
    """(queue number, extra_data) of a history entry, or None if it does not have ComfyUI's shape."""
    if not isinstance(entry, dict):
        return None
    prompt = entry.get("prompt")
    if not isinstance(prompt, list) or len(prompt) < 4:
        return None
    number = prompt[0] if isinstance(prompt[0], (int, float)) and not isinstance(prompt[0], bool) else None
    extra = prompt[3] if isinstance(prompt[3], dict) else {}
    return (int(number) if number is not None else None), extra


def sync(
    store: Store,
    client: ComfyClient,
    owner_from: str = "extra_data.owner_id",
    *,
    default_owner: str | None = None,
    max_items: int | None = None,
    keep_ids: int = KEEP_IDS,
    should_stop: Callable[[], bool] | None = None,
) -> SyncReport:
    """One pass: ingest the outputs of every finished ComfyUI job not handled before.

    The owner is read from the job's extra_data at ``owner_from``; when the
    path is absent ``default_owner`` is used if given. A job whose owner is
    missing or not a valid user id, or that ended in error, is skipped,
    reported and remembered. An image that cannot be ingested (not an
    image, over quota, gone from ComfyUI) is reported and its job still
    counts as handled. ``should_stop`` is asked between jobs, so a poller
    told to stop ends after the job at hand. Holds the ``comfy-sync`` job
    lock. Raises
    InvalidInput, LockBusy, UpstreamError (ComfyUI unreachable: the jobs
    handled so far are saved), StorageError/StorageFull.
    """
    keys = parse_owner_path(owner_from)
    if default_owner is not None and not is_user_id(default_owner):
        raise InvalidInput(f"--default-owner {default_owner!r} is not a user id", field="default_owner")
    report = SyncReport()
    with store.locks.job("comfy-sync"):
        state = load_state(store)
        history = client.history(max_items)
        jobs = []
        for prompt_id, entry in history.items():
            job = _job(entry)
            if job is not None:
                jobs.append((prompt_id, entry, job[0], job[1]))
        report.prompts_seen = len(jobs)
        # NOTE: queue numbers restart at 0 when ComfyUI restarts, so the high
        # water and the floor are only trusted while the highest-numbered job
        # handled is still in the history (the same ComfyUI run); otherwise
        # they start over and the id list (plus the per-image check) decides.
        same_run = state.high_water is not None and state.high_water.get("prompt_id") in history
        if not same_run:
            state.high_water, state.floor = None, None
        done = {prompt_id for prompt_id, _ in state.synced}
        jobs.sort(key=lambda j: (j[2] is None, j[2] if j[2] is not None else 0))
        dirty = False
        try:
            for prompt_id, entry, number, extra in jobs:
                if should_stop is not None and should_stop():
                    break
                if prompt_id in done:
                    continue
                if same_run and state.floor is not None and number is not None and number <= state.floor:
                    continue
                ingested_before = report.images_ingested
                _handle_job(store, client, prompt_id, entry, extra, keys, owner_from, default_owner, report)
                _remember(state, prompt_id, number, keep_ids, client.url)
                done.add(prompt_id)
                report.prompts_synced += 1
                dirty = True
                # NOTE: saved at once after a job that stored something, so a
                # crash right after costs no rescan; skipped jobs are saved in
                # one go at the end (a first pass may skip thousands).
                if report.images_ingested != ingested_before:
                    _save_state(store, state)
                    dirty = False
        finally:
            if dirty:
                _save_state(store, state)
    return report


def _handle_job(
    store: Store,
    client: ComfyClient,
    prompt_id: str,
    entry: dict[str, Any],
    extra: dict[str, Any],
    keys: tuple[str, ...],
    owner_from: str,
    default_owner: str | None,
    report: SyncReport,
) -> None:
    """Ingest one job's outputs, or report why it is skipped."""
    status = entry.get("status")
    if isinstance(status, dict) and (status.get("status_str") != "success" or status.get("completed") is False):
        report.skipped.append({"prompt_id": prompt_id, "reason": f"job ended with status {status.get('status_str')!r}"})
        return
    owner = resolve_owner(extra, keys)
    if owner is None:
        owner = default_owner
    if owner is None:
        report.skipped.append({"prompt_id": prompt_id, "reason": f"no owner at {owner_from}"})
    elif not is_user_id(owner):
        report.skipped.append({"prompt_id": prompt_id, "reason": f"owner at {owner_from} is not a user id"})
    else:
        _ingest_job(store, client, prompt_id, entry, owner, report)


def _ingest_job(store: Store, client: ComfyClient, prompt_id: str, entry: dict[str, Any], owner: str, report: SyncReport) -> None:
    """Fetch and ingest every output image of one job (each at most once per owner)."""
    created_at = _finished_at(entry.get("status"))
    for filename, subfolder in _output_images(entry):
        where = f"{subfolder}/{filename}" if subfolder else filename
        try:
            data = client.view(filename, subfolder)
        except UpstreamError as exc:
            if exc.details.get("status") is None:
                raise  # ComfyUI went away: stop, this job is not remembered
            report.errors.append({"prompt_id": prompt_id, "file": where, "error": exc.message})
            continue
        # NOTE: this check runs outside the user's lock; the comfy-sync job
        # lock keeps two passes from racing each other.
        if _already_has(store, owner, digest(data), filename):
            report.images_present += 1
            continue
        try:
            result = store.ingest(data, owner, "generated", original_filename=filename, created_at=created_at)
        except (StorageError, StorageFull):
            raise
        except CasvaultError as exc:
            report.errors.append({"prompt_id": prompt_id, "file": where, "error": f"{exc.code}: {exc.message}"})
            continue
        report.images_ingested += 1
        report.ingested.append({"prompt_id": prompt_id, "file": where, "owner": owner, "id": result.record.id})


def _remember(state: SyncState, prompt_id: str, number: int | None, keep_ids: int, url: str) -> None:
    """Add a handled job to the state; ids dropped past ``keep_ids`` raise the floor."""
    state.url = url
    state.synced.append((prompt_id, number))
    if number is not None and (state.high_water is None or number >= state.high_water.get("number", number)):
        state.high_water = {"number": number, "prompt_id": prompt_id}
    if len(state.synced) > keep_ids:
        dropped, state.synced = state.synced[:-keep_ids], state.synced[-keep_ids:]
        numbers = [n for _, n in dropped if n is not None]
        if numbers:
            state.floor = max([*numbers, state.floor] if state.floor is not None else numbers)
