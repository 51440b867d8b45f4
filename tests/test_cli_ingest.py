"""casvault ingest: files and folders, signature sniffing, safe reruns, one-line errors."""

from __future__ import annotations

import json
import os

from casvault.config import Config
from casvault.store import Store
from cli import main
from tests.conftest import make_jpeg, make_png, make_webp, user

OWNER = user(5)


def test_ingest_a_folder_twice(config, runner, tmp_path, corpus):
    Store(config)  # the store exists before the CLI runs
    folder = tmp_path / "comfy-output"
    (folder / "sub").mkdir(parents=True)
    (folder / "ComfyUI_00042_.png").write_bytes((corpus / "lora_lora.png").read_bytes())
    (folder / "sub" / "b.jpeg").write_bytes(make_jpeg(seed=1))
    (folder / "sub" / "c.bin").write_bytes(make_webp(seed=2))  # named oddly, found by signature
    (folder / "readme.txt").write_text("hello")
    (folder / "broken.png").write_bytes(make_png(seed=3)[:60])
    os.utime(folder / "sub" / "b.jpeg", (1_750_000_000, 1_750_000_000))
    args = ["--root", str(config.root), "ingest", str(folder), "--owner", OWNER, "--json"]
    res = runner.invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 1  # broken.png failed, and says why
    body = json.loads(res.output)
    assert (body["ingested"], body["skipped"], body["failed"]) == (3, 1, 1)
    failed = next(i for i in body["items"] if i["status"] == "failed")
    assert failed["path"].endswith("broken.png") and "damaged" in failed["reason"]
    skipped = next(i for i in body["items"] if i["status"] == "skipped")
    assert skipped["path"].endswith("readme.txt")
    records = {r.original_filename: r for r in Store(config).index(OWNER).records.values()}
    assert set(records) == {"ComfyUI_00042_.png", "b.jpeg", "c.bin"}
    assert records["c.bin"].mime == "image/webp"
    assert records["b.jpeg"].created_at.startswith("2025-06-15T15:06:40")  # from the mtime
    assert records["ComfyUI_00042_.png"].prompt  # ComfyUI metadata filled in by the store
    res = runner.invoke(main, args, catch_exceptions=False)
    body = json.loads(res.output)
    assert body["ingested"] == 0 and body["skipped_duplicate"] == 3
    assert len(Store(config).index(OWNER).records) == 3
    copy = tmp_path / "renamed.jpeg"
    copy.write_bytes(make_jpeg(seed=1))
    res = runner.invoke(main, ["--root", str(config.root), "ingest", str(copy), "--owner", OWNER, "--now",
                               "--kind", "input"], catch_exceptions=False)
    assert res.exit_code == 0 and "1 ingested" in res.output  # same bytes, another name: a new record
    assert Store(config).index(OWNER).count("input") == 1


def test_ingest_errors_are_one_line(config, runner, tmp_path):
    Store(config)
    img = tmp_path / "a.png"
    img.write_bytes(make_png())
    res = runner.invoke(main, ["--root", str(config.root), "ingest", str(img), "--owner", "bob"],
                        catch_exceptions=False)
    assert res.exit_code == 2 and "--owner" in res.output
    res = runner.invoke(main, ["--root", str(tmp_path / "none"), "ingest", str(img), "--owner", OWNER],
                        catch_exceptions=False)
    assert res.exit_code == 1 and res.output.strip().startswith("Error: no casvault store at")
    assert not (tmp_path / "none").exists()  # nothing created
    res = runner.invoke(main, ["--root", str(config.root), "ingest", str(tmp_path / "missing.png"), "--owner", OWNER],
                        catch_exceptions=False)
    assert res.exit_code == 2


def test_quota_stops_ingest_with_a_reason(tmp_path, runner, monkeypatch):
    root = tmp_path / "root"
    Store(Config(root=root))
    monkeypatch.setenv("CASVAULT_QUOTA_MAX_COUNT", "1")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.png").write_bytes(make_png(seed=10 + i))
    res = runner.invoke(main, ["--root", str(root), "ingest", str(folder), "--owner", OWNER], catch_exceptions=False)
    assert res.exit_code == 1
    assert "failed:" in res.output and "count limit reached" in res.output and "1 ingested" in res.output


def test_big_and_endless_files_are_judged_by_size_and_first_bytes(config, runner, tmp_path, monkeypatch):
    """A folder holding videos and oversized images: skipped without being read whole."""
    import threading
    import time

    Store(config)
    monkeypatch.setenv("CASVAULT_MAX_UPLOAD_BYTES", str(1 << 20))
    folder = tmp_path / "comfy-output"
    folder.mkdir()
    (folder / "a.png").write_bytes(make_png(seed=60))
    with open(folder / "huge.png", "wb") as fh:  # a PNG signature, 2 MiB (sparse): over the limit
        fh.write(make_png(seed=61)[:16])
        fh.truncate(2 << 20)
    stream = folder / "render.mp4"  # never ends while its writer is alive, like a video still being written
    os.mkfifo(stream)
    stop = threading.Event()
    ready = threading.Event()

    def writer() -> None:
        fd = os.open(stream, os.O_RDWR)
        os.write(fd, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4)
        ready.set()
        stop.wait(10)
        os.close(fd)

    thread = threading.Thread(target=writer)
    thread.start()
    ready.wait(5)
    started = time.monotonic()
    try:
        res = runner.invoke(main, ["--root", str(config.root), "ingest", str(folder), "--owner", OWNER, "--json"],
                            catch_exceptions=False)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert res.exit_code == 0, res.output
    assert elapsed < 5  # the stream was never read to its end
    items = {os.path.basename(i["path"]): i for i in json.loads(res.output)["items"]}
    assert items["a.png"]["status"] == "ingested"
    assert items["huge.png"]["status"] == "skipped" and "upload limit" in items["huge.png"]["reason"]
    assert items["render.mp4"]["status"] == "skipped" and "a FIFO, not a regular file" in items["render.mp4"]["reason"]


def test_the_same_file_as_another_kind_is_not_a_duplicate(config, runner, tmp_path):
    Store(config)
    image = tmp_path / "pose.png"
    image.write_bytes(make_png(seed=11))

    def ingest(kind: str) -> dict:
        args = ["--root", str(config.root), "ingest", str(image), "--owner", OWNER, "--kind", kind, "--json"]
        res = runner.invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    generated = ingest("generated")["items"][0]["id"]
    control = ingest("control")
    assert control["ingested"] == 1 and control["items"][0]["id"] != generated
    again = ingest("control")
    assert again["skipped_duplicate"] == 1 and again["items"][0]["id"] == control["items"][0]["id"]
    idx = Store(config).index(OWNER)
    assert (idx.count("generated"), idx.count("control")) == (1, 1)
    help_text = runner.invoke(main, ["ingest", "--help"]).output
    assert "same --kind" in " ".join(help_text.split())
