"""comfy-sync against a fake ComfyUI that answers /history and /view like the real one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from casvault import comfy
from casvault.comfy_sync import ComfyClient, load_state, state_path, sync
from casvault.errors import UpstreamError
from casvault.index import Query
from casvault.layout import normalize_time
from casvault.store import Store
from cli import main
from tests.conftest import ROOT, user
from tests.fake_comfy import FakeComfy, comfy_output_folder, expected_by_name

ALICE, BOB, CAROL = user(1), user(2), user(3)


@pytest.fixture
def comfy_server(tmp_path: Path, corpus: Path):
    """A fake ComfyUI whose output folder holds the corpus under ComfyUI names."""
    fake = FakeComfy(comfy_output_folder(corpus, tmp_path / "ComfyUI" / "output")).start()
    yield fake
    fake.stop()


def graph_of(fake: FakeComfy, subfolder: str, name: str) -> dict:
    """The API-format graph ComfyUI ran, as the PNG's prompt chunk recorded it."""
    text = comfy.read_png_text((fake.output_dir / subfolder / name).read_bytes()).get("prompt")
    return json.loads(text) if text else {}


def add(fake: FakeComfy, extra: dict, *images: tuple[str, ...], status: str = "success") -> str:
    graph = graph_of(fake, images[0][1], images[0][0]) if images else {}
    return fake.add_job(graph, extra, list(images), status=status)


def records(store: Store, owner: str) -> dict[str, object]:
    """{original_filename: record} of an owner's generated images."""
    page = store.list(owner, Query(kind="generated", include="all", size=200))
    return {r.original_filename: r for r in page.items}


def finished_at(fake: FakeComfy, prompt_id: str) -> str:
    stamp = next(m[1]["timestamp"] for m in fake.history[prompt_id]["status"]["messages"] if m[0] == "execution_success")
    return normalize_time(datetime.fromtimestamp(stamp / 1000, tz=timezone.utc))


def run_cli(runner, store: Store, *args: str):
    return runner.invoke(main, ["--root", str(store.config.root), "comfy-sync", *args], catch_exceptions=False)


def test_sync_twice_ingests_each_image_once_with_seed_prompt_and_owner(store: Store, comfy_server: FakeComfy, runner) -> None:
    fake = comfy_server
    p1 = add(fake, {"owner_id": ALICE, "client_id": "c1"}, ("ComfyUI_00001_.png", ""))
    p2 = add(fake, {"owner_id": BOB}, ("ComfyUI_00002_.png", ""), ("ComfyUI_temp_abcde_00001_.png", "", "temp"))
    add(fake, {"owner_id": ALICE}, ("ComfyUI_00003_.png", "sdxl"), ("ComfyUI_00004_.png", "sdxl"))
    no_owner = add(fake, {"client_id": "c9"}, ("ComfyUI_00005_.png", ""))
    bad_owner = add(fake, {"owner_id": "../../etc"}, ("ComfyUI_00005_.png", ""))
    failed = add(fake, {"owner_id": ALICE}, ("ComfyUI_00005_.png", ""), status="error")

    result = run_cli(runner, store, "--url", fake.url, "--once", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # The job with no owner waits for one; the failed job gives what it saved.
    assert (report["prompts_seen"], report["prompts_synced"], report["images_ingested"]) == (6, 5, 5)
    assert {s["prompt_id"] for s in report["skipped"]} == {no_owner, bad_owner}
    assert report["errors"] == []
    assert [i["outcome"] for i in report["ingested"] if i["prompt_id"] == failed] == ["failed"]

    expected = expected_by_name()
    alice, bob = records(store, ALICE), records(store, BOB)
    assert sorted(alice) == ["ComfyUI_00001_.png", "ComfyUI_00005_.png", "sdxl/ComfyUI_00003_.png",
                             "sdxl/ComfyUI_00004_.png"]
    assert alice["ComfyUI_00005_.png"].tags == ["comfyui:failed"] and alice["ComfyUI_00001_.png"].tags == []
    assert sorted(bob) == ["ComfyUI_00002_.png"]  # the temp preview was not fetched
    for name, record in {**alice, **bob}.items():
        seed, prompt, negative = expected[name.rsplit("/", 1)[-1]]
        if seed is None:
            continue
        assert record.seed == seed, name
        assert record.prompt is not None and record.prompt.startswith(prompt), name
        assert record.negative_prompt == negative, name
        assert record.kind == "generated" and record.status == "active"
    assert alice["ComfyUI_00001_.png"].created_at == finished_at(fake, p1)
    assert bob["ComfyUI_00002_.png"].created_at == finished_at(fake, p2)
    # The bytes stored are ComfyUI's file, unchanged.
    stored = store.read_original(alice["sdxl/ComfyUI_00003_.png"])
    assert stored == (fake.output_dir / "sdxl" / "ComfyUI_00003_.png").read_bytes()
    assert not any("temp" in r for r in fake.requests if r.startswith("/view"))

    views = [r for r in fake.requests if r.startswith("/view")]
    result = run_cli(runner, store, "--url", fake.url, "--once", "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    assert (again["prompts_seen"], again["prompts_synced"], again["images_ingested"], again["skipped"]) == (6, 0, 0, [])
    assert [r for r in fake.requests if r.startswith("/view")] == views  # nothing fetched twice
    assert len(records(store, ALICE)) == 4 and len(records(store, BOB)) == 1

    # A new job is picked up alone; the text report says what happened.
    add(fake, {"owner_id": CAROL}, ("ComfyUI_00005_.png", ""))
    result = run_cli(runner, store, "--url", fake.url, "--once")
    assert result.exit_code == 0, result.output
    assert "7 job(s) in history, 1 new: 1 image(s) ingested" in result.output
    carol = records(store, CAROL)["ComfyUI_00005_.png"]
    assert (carol.seed, carol.prompt, carol.source) == (None, None, None)  # saved with --disable-metadata

    state = json.loads(state_path(store).read_text())
    assert [key.split("@")[0] for key, _ in state["synced"]][:2] == [p1, p2]
    assert state["high_water"]["number"] == 6 and state["url"] == fake.url


def test_lost_state_file_rescans_without_duplicates(store: Store, comfy_server: FakeComfy) -> None:
    fake = comfy_server
    add(fake, {"owner_id": ALICE}, ("ComfyUI_00001_.png", ""), ("ComfyUI_00002_.png", ""))
    client = ComfyClient(fake.url, timeout=5)
    assert sync(store, client).images_ingested == 2
    state_path(store).unlink()
    report = sync(store, client)
    assert (report.prompts_synced, report.images_ingested, report.images_present) == (1, 0, 2)
    assert len(records(store, ALICE)) == 2


def test_floor_skips_old_jobs_and_a_comfy_restart_is_noticed(store: Store, comfy_server: FakeComfy) -> None:
    fake = comfy_server
    for name in ("ComfyUI_00001_.png", "ComfyUI_00002_.png", "ComfyUI_00005_.png"):
        add(fake, {"owner_id": ALICE}, (name, ""))
    client = ComfyClient(fake.url, timeout=5)
    assert sync(store, client, keep_ids=2).images_ingested == 3
    state = load_state(store)
    assert len(state.synced) == 2 and state.floor == 0 and state.high_water["number"] == 2

    views = len([r for r in fake.requests if r.startswith("/view")])
    report = sync(store, client, keep_ids=2)
    assert (report.prompts_synced, report.images_ingested) == (0, 0)
    assert len([r for r in fake.requests if r.startswith("/view")]) == views  # job 0 is below the floor

    # ComfyUI restarts: history empty, numbers from 0 again. Job number 0 is new.
    fake.restart()
    add(fake, {"owner_id": ALICE}, ("ComfyUI_00003_.png", "sdxl"))
    report = sync(store, client, keep_ids=2)
    assert (report.prompts_synced, report.images_ingested) == (1, 1)
    assert records(store, ALICE)["sdxl/ComfyUI_00003_.png"].seed == 6767725640732


def test_default_owner_and_owner_path(store: Store, comfy_server: FakeComfy, runner) -> None:
    fake = comfy_server
    add(fake, {"client_id": "x"}, ("ComfyUI_00001_.png", ""))
    add(fake, {"job": {"user": BOB}}, ("ComfyUI_00002_.png", ""))
    result = run_cli(runner, store, "--url", fake.url, "--owner-from", "extra_data.job.user", "--default-owner", CAROL,
                     "--once", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["images_ingested"] == 2
    assert list(records(store, CAROL)) == ["ComfyUI_00001_.png"]
    assert list(records(store, BOB)) == ["ComfyUI_00002_.png"]

    result = runner.invoke(main, ["--root", str(store.config.root), "comfy-sync", "--url", fake.url,
                                  "--owner-from", "prompt.3.inputs.seed", "--once"])
    assert result.exit_code == 1 and "extra_data" in result.output
    result = runner.invoke(main, ["--root", str(store.config.root), "comfy-sync", "--url", fake.url,
                                  "--default-owner", "root", "--once"])
    assert result.exit_code == 1 and "not a user id" in result.output


def test_image_gone_from_comfy_is_reported_and_the_rest_ingested(store: Store, comfy_server: FakeComfy) -> None:
    fake = comfy_server
    pid = add(fake, {"owner_id": ALICE}, ("ComfyUI_00001_.png", ""), ("ComfyUI_00099_.png", ""), ("../x.png", ""))
    report = sync(store, ComfyClient(fake.url, timeout=5))
    assert report.images_ingested == 1 and report.prompts_synced == 1
    assert sorted(e["file"] for e in report.errors) == ["../x.png", "ComfyUI_00099_.png"]
    assert all(e["prompt_id"] == pid for e in report.errors)
    assert any("404" in e["error"] for e in report.errors) and any("400" in e["error"] for e in report.errors)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_comfy_is_a_one_line_error(store: Store, runner) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = runner.invoke(main, ["--root", str(store.config.root), "comfy-sync", "--url", url, "--once"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach ComfyUI at " + url)
    assert len(result.output.strip().splitlines()) == 1
    assert not state_path(store).exists()
    with pytest.raises(UpstreamError):
        ComfyClient(url, timeout=2).history()
    result = runner.invoke(main, ["--root", str(store.config.root), "comfy-sync", "--url", "ftp://x", "--once"])
    assert result.exit_code == 1 and "http" in result.output


def test_lock_busy_and_a_url_that_is_not_comfy(store: Store, comfy_server: FakeComfy, runner) -> None:
    with store.locks.job("comfy-sync"):
        result = run_cli(runner, store, "--url", comfy_server.url, "--once")
    assert result.exit_code == 75 and "locked" in result.output

    # A URL with a path ComfyUI does not serve: /history answers 404.
    result = run_cli(runner, store, "--url", comfy_server.url + "/nothing-here", "--once")
    assert result.exit_code == 1 and "404" in result.output


def test_polling_mode_picks_up_new_jobs_and_survives_an_outage(store: Store, comfy_server: FakeComfy, tmp_path: Path) -> None:
    fake = comfy_server
    add(fake, {"owner_id": ALICE}, ("ComfyUI_00001_.png", ""))
    env = {**os.environ, "CASVAULT_ROOT": str(store.config.root), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from cli import main; main()", "comfy-sync", "--interval", "0.2", "--json"]
    proc = subprocess.Popen(
        [*command, "--url", fake.url], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        def wait_for(names: set[str]) -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if set(records(Store(store.config), ALICE)) >= names:
                    return
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
            raise AssertionError(f"comfy-sync did not ingest {names}")

        wait_for({"ComfyUI_00001_.png"})
        add(fake, {"owner_id": ALICE}, ("ComfyUI_00002_.png", ""))
        wait_for({"ComfyUI_00001_.png", "ComfyUI_00002_.png"})
    finally:
        proc.send_signal(signal.SIGTERM)  # systemd's stop: ends cleanly after the pass
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    passes = [json.loads(line) for line in out.splitlines()]
    assert sum(r["images_ingested"] for r in passes) == 2
    assert len(records(Store(store.config), ALICE)) == 2

    # ComfyUI down: each pass reports it on stderr and the poller keeps going.
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = subprocess.Popen([*command, "--url", url], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    for line in (first, second):
        assert line.startswith(f"comfy-sync: cannot reach ComfyUI at {url}") and "retrying in 0.2s" in line


def test_a_damaged_state_file_stops_the_sync_with_a_clear_message(store: Store, comfy_server: FakeComfy, runner) -> None:
    add(comfy_server, {"owner_id": ALICE}, ("ComfyUI_00001_.png", ""))
    state_path(store).write_text('{"synced": "oops"')
    result = run_cli(runner, store, "--url", comfy_server.url, "--once")
    assert result.exit_code == 1 and "comfy-sync.json is damaged" in result.output
    assert records(store, ALICE) == {}
