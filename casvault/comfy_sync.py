"""Pull finished ComfyUI jobs into the store: poll ``/history``, fetch ``/view``, ingest once.

ComfyUI keeps the jobs it ran in memory (``GET /history``, at most 10000 of
them, cleared on restart). Each entry reads::

    {prompt_id: {"prompt": [number, prompt_id, graph, extra_data, outputs_to_execute],
                 "outputs": {node_id: {"images": [{"filename", "subfolder", "type"}], "animated"?: [bool]}},
                 "status": {"status_str": "success"|"error", "completed": bool, "messages": [...]}}}

:func:`sync` ingests every file of type "output" of each job not seen
before, as a generated record of the owner named in the job's
``extra_data`` (``--owner-from extra_data.owner_id``), with the ComfyUI
file name and its subfolder as ``original_filename``; the store fills seed
and prompts from the file's own metadata. Jobs that ended in
``execution_error`` or ``execution_interrupted`` keep the files they saved
before the stop: those are ingested too, tagged ``comfyui:failed`` or
``comfyui:interrupted``.

A job is identified by its prompt id *and* its ``execution_start``
timestamp (a client may reuse a prompt id, and ComfyUI then replaces the
entry in place), an output by that job, its node, subfolder and file name.
What was handled is remembered in ``<root>/meta/comfy-sync.json`` (the last
N job keys with their queue numbers, the highest queue number handled, and
a floor: the highest number of a key dropped from that list, at or below
which every job of the same ComfyUI run counts as handled), written
atomically after each job. What was *not* handled is remembered with its
reason, and retried where the answer can change: a job with no owner waits
until a default owner is configured; an output that answered 404 is fetched
again with a doubling back-off, up to a limit; a per-file failure (larger
than the limit, not a supported image) is recorded and never blocks other
files or jobs. On top of that a file whose sha256, name and kind the owner
already has is never ingested again, so a lost state file costs a rescan,
not duplicates.
"""

from __future__ import annotations

import json
import socket
import time
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
from .errors import CasvaultError, InvalidInput, StorageError, StorageFull, TooLarge, UpstreamError
from .records import now_iso
from .validate import is_user_id

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ComfyClient", "SyncReport", "SyncState", "load_state", "resolve_owner", "state_path", "sync"]

STATE_NAME = "comfy-sync.json"
KEEP_IDS = 10_000  # as many as ComfyUI's own history holds (MAXIMUM_HISTORY_SIZE)
KEEP_FAILED = 1000  # per-file failures remembered, newest last
RETRY_AFTER = 60.0  # seconds before a 404 output is fetched again; doubles each time
MAX_ATTEMPTS = 5  # fetches of a 404 output before it is given up
_MAX_HISTORY_BYTES = 512 << 20
VIDEO_SUFFIXES = (".mp4", ".webm")
# The job outcomes that keep what was saved before the stop, and their tags.
OUTCOME_TAGS = {"failed": "comfyui:failed", "interrupted": "comfyui:interrupted"}


class ComfyClient:
    """The two read endpoints of a ComfyUI server, over urllib with a timeout."""

    def __init__(
        self, url: str, timeout: float = 30.0, max_image_bytes: int = 50 << 20, max_video_bytes: int | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"ComfyUI URL must be http(s)://host:port, not {url!r}", field="url")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_image_bytes = max_image_bytes
        self.max_video_bytes = max_image_bytes if max_video_bytes is None else max_video_bytes

    def _get(self, path: str, params: dict[str, str], limit: int) -> bytes:
        """GET a path; raises UpstreamError (with ``status`` for an HTTP error answer), TooLarge past ``limit``."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        target = f"{self.url}{path}{query}"
        try:
            with urllib.request.urlopen(target, timeout=self.timeout) as resp:
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > limit:
                    # NOTE: refused on the header, so an oversized video is not downloaded at all.
                    raise TooLarge(f"ComfyUI's answer for {path} is larger than {limit} bytes ({length})", limit=limit)
                body = resp.read(limit + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise UpstreamError(f"ComfyUI answered {exc.code} for {path}", status=exc.code, url=target) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UpstreamError(f"cannot reach ComfyUI at {self.url}: {reason}", url=target) from None
        if len(body) > limit:
            raise TooLarge(f"ComfyUI's answer for {path} is larger than {limit} bytes", limit=limit)
        return body

    def history(self, max_items: int | None = None) -> dict[str, Any]:
        """``GET /history`` as a dict; raises UpstreamError when unreachable or not a JSON object."""
        params = {"max_items": str(max_items)} if max_items else {}
        try:
            body = self._get("/history", params, _MAX_HISTORY_BYTES)
        except TooLarge as exc:
            raise UpstreamError(exc.message) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise UpstreamError(f"ComfyUI at {self.url} answered /history with something that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(f"ComfyUI at {self.url} answered /history with a JSON {type(data).__name__}")
        return data

    def view(self, filename: str, subfolder: str = "", type_: str = "output") -> bytes:
        """``GET /view`` of one output file (videos have their own size limit); raises UpstreamError, TooLarge."""
        params = {"filename": filename, "subfolder": subfolder, "type": type_}
        video = filename.lower().endswith(VIDEO_SUFFIXES)
        return self._get("/view", params, self.max_video_bytes if video else self.max_image_bytes)


class SyncState(msgspec.Struct, omit_defaults=True):
    """What comfy-sync has handled, and what it has not and why, kept in ``<root>/meta/comfy-sync.json``."""

    version: int = 1
    url: str | None = None
    synced: list[tuple[str, int | None]] = []  # (job key, queue number), oldest first, at most KEEP_IDS
    high_water: dict[str, Any] | None = None  # {"number", "prompt_id"} of the highest queue number handled
    floor: int | None = None  # every job numbered at or below this was handled (same ComfyUI run)
    waiting: dict[str, dict[str, Any]] = {}  # job key -> {"prompt_id", "reason", "since"}: no owner yet
    retry: dict[str, dict[str, Any]] = {}  # output key -> what is needed to fetch it again, attempts, next_at
    failed: list[dict[str, Any]] = []  # per-file failures with their reason, newest last, at most KEEP_FAILED
    skipped: list[dict[str, Any]] = []  # jobs skipped for good with their reason, newest last, at most KEEP_FAILED
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
    images_present: int = 0  # already in the store (same sha256, file name and kind for that owner)
    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # jobs not ingested, with the reason
    errors: list[dict[str, str]] = field(default_factory=list)  # files that could not be ingested, with the reason
    retrying: int = 0  # outputs that answered 404, to be fetched again later

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


_END_MESSAGES = {"execution_success": None, "execution_error": "failed", "execution_interrupted": "interrupted"}


def _stamp(message: Any) -> int | None:
    """The millisecond timestamp of one status message, if it has a sane one."""
    body = message[1] if isinstance(message, (list, tuple)) and len(message) == 2 else None
    stamp = body.get("timestamp") if isinstance(body, dict) else None
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and 0 < stamp < 1e14:
        return int(stamp)
    return None


def _messages(entry: dict[str, Any]) -> list[Any]:
    status = entry.get("status")
    messages = status.get("messages") if isinstance(status, dict) else None
    return messages if isinstance(messages, list) else []


def _started_at(entry: dict[str, Any]) -> int | None:
    """The job's ``execution_start`` timestamp (ms): with the prompt id, what identifies one run."""
    for message in _messages(entry):
        if isinstance(message, (list, tuple)) and message and message[0] == "execution_start":
            return _stamp(message)
    return None


def _outcome(entry: dict[str, Any]) -> tuple[str | None, datetime | None] | None:
    """(None | "failed" | "interrupted", when it ended) of a finished job; None if it did not end."""
    status = entry.get("status")
    if not isinstance(status, dict):
        return None, None  # an entry without a status is taken as done, as before
    for message in reversed(_messages(entry)):
        if isinstance(message, (list, tuple)) and message and message[0] in _END_MESSAGES:
            stamp = _stamp(message)
            when = datetime.fromtimestamp(stamp / 1000, tz=timezone.utc) if stamp is not None else None
            return _END_MESSAGES[message[0]], when
    if status.get("status_str") == "success" and status.get("completed") is not False:
        return None, None
    if status.get("status_str") == "error":
        return "failed", None
    return None


def job_key(prompt_id: str, entry: dict[str, Any]) -> str:
    """A job's identity: its prompt id and its ``execution_start`` timestamp (a prompt id may be reused)."""
    started = _started_at(entry)
    return f"{prompt_id}@{started}" if started is not None else prompt_id


def _outputs(entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(node, filename, subfolder) of every file of type "output" in a history entry, in node order."""
    found: list[tuple[str, str, str]] = []
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        return found
    for node, node_out in outputs.items():
        images = node_out.get("images") if isinstance(node_out, dict) else None
        for image in images if isinstance(images, list) else ():
            if not isinstance(image, dict) or image.get("type", "output") != "output":
                continue  # "temp" files are PreviewImage's, deleted by ComfyUI
            filename, subfolder = image.get("filename"), image.get("subfolder") or ""
            if isinstance(filename, str) and filename and isinstance(subfolder, str):
                found.append((str(node), filename, subfolder))
    return found


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
    retry_after: float = RETRY_AFTER,
    max_attempts: int = MAX_ATTEMPTS,
) -> SyncReport:
    """One pass: ingest the outputs of every finished ComfyUI job not handled before.

    The owner is read from the job's extra_data at ``owner_from``; when the
    path is absent ``default_owner`` is used if given. A job with no owner
    is reported once and waits (a later pass with ``default_owner`` takes
    it); one whose owner is not a valid user id is skipped for good. Failed
    and interrupted jobs give what they saved, tagged with the outcome. A
    file that cannot be ingested (larger than the limit, not an image, over
    quota) is reported and recorded with its reason; one that answered 404
    is fetched again after ``retry_after`` seconds, doubling, at most
    ``max_attempts`` times; neither keeps its job from counting as handled.
    ``should_stop`` is asked between jobs, so a poller told to stop ends
    after the job at hand. Holds the ``comfy-sync`` job lock. Raises
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
                jobs.append((prompt_id, job_key(prompt_id, entry), entry, job[0], job[1]))
        report.prompts_seen = len(jobs)
        # NOTE: queue numbers restart at 0 when ComfyUI restarts, so the high
        # water and the floor are only trusted while the highest-numbered job
        # handled is still in the history (the same ComfyUI run); otherwise
        # they start over and the key list (plus the per-file check) decides.
        same_run = state.high_water is not None and state.high_water.get("prompt_id") in history
        if not same_run:
            state.high_water, state.floor = None, None
        # Old state files hold bare prompt ids; they still match their job.
        done = {key for key, _ in state.synced}
        due = list(state.retry)  # outputs that answered 404 in an earlier pass
        jobs.sort(key=lambda j: (j[3] is None, j[3] if j[3] is not None else 0))
        dirty = False
        try:
            for prompt_id, key, entry, number, extra in jobs:
                if should_stop is not None and should_stop():
                    break
                if key in done or prompt_id in done:
                    continue
                waiting = key in state.waiting
                if not waiting and same_run and state.floor is not None and number is not None and number <= state.floor:
                    continue
                ingested_before = report.images_ingested
                handled = _handle_job(store, client, state, prompt_id, key, entry, extra, keys, owner_from,
                                      default_owner, report, retry_after)
                if handled is None:
                    continue  # still waiting for an owner, already reported
                dirty = True
                if handled == "waiting":
                    continue
                state.waiting.pop(key, None)
                _remember(state, prompt_id, key, number, keep_ids, client.url)
                done.add(key)
                report.prompts_synced += 1
                # NOTE: saved at once after a job that stored something, so a
                # crash right after costs no rescan; skipped jobs are saved in
                # one go at the end (a first pass may skip thousands).
                if report.images_ingested != ingested_before:
                    _save_state(store, state)
                    dirty = False
            if should_stop is None or not should_stop():
                dirty = _retry_missing(store, client, state, due, report, retry_after, max_attempts) or dirty
            if max_items is None:
                # NOTE: a waiting job ComfyUI no longer lists (restart, history
                # trimmed) can never be taken: it is dropped.
                present = {key for _, key, *_ in jobs}
                for key in [k for k in state.waiting if k not in present]:
                    del state.waiting[key]
                    dirty = True
        finally:
            if dirty:
                _save_state(store, state)
    return report


def _handle_job(
    store: Store,
    client: ComfyClient,
    state: SyncState,
    prompt_id: str,
    key: str,
    entry: dict[str, Any],
    extra: dict[str, Any],
    keys: tuple[str, ...],
    owner_from: str,
    default_owner: str | None,
    report: SyncReport,
    retry_after: float,
) -> str | None:
    """Ingest one job's outputs, or say why not.

    Returns "handled", "skipped" (for good), "waiting" (newly waiting for
    an owner) or None (still waiting, already reported).
    """
    outcome = _outcome(entry)
    if outcome is None:
        status = entry.get("status") or {}
        return _skip(state, report, prompt_id, f"job ended with status {status.get('status_str')!r}")
    owner = resolve_owner(extra, keys)
    if owner is None:
        owner = default_owner
    if owner is None:
        # NOTE: jobs queued from ComfyUI's own page carry no owner; such a job
        # waits, so a later pass with --default-owner still takes it.
        if key not in state.waiting:
            state.waiting[key] = {"prompt_id": prompt_id, "reason": f"no owner at {owner_from}", "since": now_iso()}
            report.skipped.append({"prompt_id": prompt_id, "reason": f"no owner at {owner_from} (waiting for one)"})
            return "waiting"
        return None
    if not is_user_id(owner):
        return _skip(state, report, prompt_id, f"owner at {owner_from} is not a user id")
    _ingest_job(store, client, state, prompt_id, key, entry, owner, outcome, report, retry_after)
    return "handled"


def _skip(state: SyncState, report: SyncReport, prompt_id: str, reason: str) -> str:
    """Report and remember a job skipped for good, with its reason."""
    report.skipped.append({"prompt_id": prompt_id, "reason": reason})
    state.skipped.append({"prompt_id": prompt_id, "reason": reason, "at": now_iso()})
    del state.skipped[:-KEEP_FAILED]
    return "skipped"


def _ingest_job(
    store: Store,
    client: ComfyClient,
    state: SyncState,
    prompt_id: str,
    key: str,
    entry: dict[str, Any],
    owner: str,
    outcome: tuple[str | None, datetime | None],
    report: SyncReport,
    retry_after: float,
) -> None:
    """Fetch and ingest every output file of one job (each at most once per owner)."""
    result, ended_at = outcome
    tags = [OUTCOME_TAGS[result]] if result is not None else []
    created_at = ended_at.isoformat() if ended_at is not None else None
    for node, filename, subfolder in _outputs(entry):
        target = {"prompt_id": prompt_id, "owner": owner, "node": node, "filename": filename, "subfolder": subfolder,
                  "created_at": created_at, "tags": tags}
        if _fetch_and_ingest(store, client, state, target, report) == 404:
            where = f"{subfolder}/{filename}" if subfolder else filename
            report.errors.append({"prompt_id": prompt_id, "file": where,
                                  "error": "ComfyUI answered 404 for /view (fetched again later)"})
            state.retry[f"{key}/{node}/{subfolder}/{filename}"] = {
                **target, "attempts": 1, "next_at": time.time() + retry_after,
            }
            report.retrying += 1


def _fetch_and_ingest(
    store: Store, client: ComfyClient, state: SyncState, target: dict[str, Any], report: SyncReport
) -> int | None:
    """Fetch one output and ingest it; returns the HTTP status of a failed fetch (404: try later), else None."""
    filename, subfolder, owner = target["filename"], target["subfolder"], target["owner"]
    where = f"{subfolder}/{filename}" if subfolder else filename
    try:
        data = client.view(filename, subfolder)
    except UpstreamError as exc:
        if exc.details.get("status") is None:
            raise  # ComfyUI went away: stop, this job is not remembered
        if exc.details["status"] == 404:
            return 404  # the caller decides: fetched again later, or given up
        _failed(state, report, target, where, exc.message)
        return int(exc.details["status"])
    except TooLarge as exc:
        _failed(state, report, target, where, f"{exc.code}: {exc.message}")
        return None
    # NOTE: this check runs outside the user's lock; the comfy-sync job
    # lock keeps two passes from racing each other.
    duplicate = store.find_duplicate(owner, digest(data), where, "generated")
    if duplicate is not None:
        report.images_present += 1
        return None
    try:
        result = store.ingest(data, owner, "generated", original_filename=where, created_at=target["created_at"],
                              tags=target["tags"] or None, keep_folder=True)
    except (StorageError, StorageFull):
        raise
    except CasvaultError as exc:
        _failed(state, report, target, where, f"{exc.code}: {exc.message}")
        return None
    report.images_ingested += 1
    item = {"prompt_id": target["prompt_id"], "file": where, "owner": owner, "id": result.record.id}
    if target["tags"]:
        item["outcome"] = target["tags"][0].split(":", 1)[1]
    report.ingested.append(item)
    return None


def _failed(state: SyncState, report: SyncReport, target: dict[str, Any], where: str, reason: str) -> None:
    """Report and remember a per-file failure with its reason."""
    report.errors.append({"prompt_id": target["prompt_id"], "file": where, "error": reason})
    state.failed.append({"prompt_id": target["prompt_id"], "node": target["node"], "file": where, "error": reason,
                         "at": now_iso()})
    del state.failed[:-KEEP_FAILED]


def _retry_missing(
    store: Store,
    client: ComfyClient,
    state: SyncState,
    keys: list[str],
    report: SyncReport,
    retry_after: float,
    max_attempts: int,
) -> bool:
    """Fetch again those of ``keys`` that answered 404 and whose back-off is over; True when the state changed."""
    now = time.time()
    changed = False
    for key in keys:
        entry = state.retry.get(key)
        if entry is None:
            continue
        if entry.get("next_at", 0) > now:
            report.retrying += 1
            continue
        changed = True
        if _fetch_and_ingest(store, client, state, entry, report) != 404:
            del state.retry[key]
            continue
        attempts = int(entry.get("attempts", 1)) + 1
        if attempts >= max_attempts:
            del state.retry[key]
            where = f"{entry['subfolder']}/{entry['filename']}" if entry["subfolder"] else entry["filename"]
            _failed(state, report, entry, where, f"ComfyUI answered 404 for /view (gave up after {attempts} attempts)")
            continue
        entry.update(attempts=attempts, next_at=now + retry_after * 2 ** (attempts - 1))
        report.retrying += 1
    return changed


def _remember(state: SyncState, prompt_id: str, key: str, number: int | None, keep_ids: int, url: str) -> None:
    """Add a handled job to the state; keys dropped past ``keep_ids`` raise the floor."""
    state.url = url
    state.synced.append((key, number))
    if number is not None and (state.high_water is None or number >= state.high_water.get("number", number)):
        state.high_water = {"number": number, "prompt_id": prompt_id}
    if len(state.synced) > keep_ids:
        dropped, state.synced = state.synced[:-keep_ids], state.synced[-keep_ids:]
        numbers = [n for _, n in dropped if n is not None]
        if numbers:
            state.floor = max([*numbers, state.floor] if state.floor is not None else numbers)
