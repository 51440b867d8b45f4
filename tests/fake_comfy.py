"""A small stand-in for a running ComfyUI: ``GET /history`` and ``GET /view`` as its server.py answers them.

The history is kept like ComfyUI's ``PromptQueue.history`` (insertion
ordered, ``max_items`` taking the newest); ``/view`` serves files from an
output folder with ComfyUI's checks (400 for a missing or ``..`` file name,
403 for a subfolder outside the folder, 404 for a missing file).

:class:`RecordedComfy` serves a real ComfyUI 0.8.0 server's own answers,
recorded in ``tests/data/comfyui-real`` (see its README): ``/history``,
``/history/<id>`` and ``/queue`` byte for byte, every ``/view`` with its
recorded headers and edge cases, and ``/upload/image`` with ComfyUI's naming.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeComfy:
    """A ComfyUI look-alike on 127.0.0.1 and a free port, serving ``output_dir``."""

    def __init__(self, output_dir: Path, input_dir: Path | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.input_dir = Path(input_dir) if input_dir is not None else self.output_dir.parent / "input"
        self.history: dict[str, dict[str, Any]] = {}
        self.number = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeComfy":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_job(
        self,
        graph: dict[str, Any],
        extra_data: dict[str, Any],
        images: list[tuple[str, str]] | list[tuple[str, str, str]],
        *,
        status: str = "success",
        prompt_id: str | None = None,
    ) -> str:
        """Record a finished job the way ``PromptQueue.task_done`` does; returns its prompt id.

        ``images`` are (filename, subfolder) or (filename, subfolder, type)
        pairs, all reported by one SaveImage node "9".
        """
        prompt_id = prompt_id or str(uuid.uuid4())
        with self._lock:
            number = self.number
            self.number += 1
            now = int(time.time() * 1000)
            messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id, "timestamp": now - 1500}]]
            if status == "success":
                messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": now}])
            else:
                messages.append(["execution_error", {"prompt_id": prompt_id, "timestamp": now, "node_id": "3"}])
            entries = [
                {"filename": i[0], "subfolder": i[1], "type": i[2] if len(i) > 2 else "output"} for i in images
            ]
            self.history[prompt_id] = {
                "prompt": [number, prompt_id, graph, extra_data, ["9"]],
                "outputs": {"9": {"images": entries}} if entries else {},
                "status": {"status_str": status, "completed": status == "success", "messages": messages},
                "meta": {"9": {"node_id": "9", "display_node": "9", "parent_node": None, "real_node_id": "9"}},
            }
        return prompt_id

    def restart(self) -> None:
        """What a ComfyUI restart does to the history: empty, queue numbers from 0 again."""
        with self._lock:
            self.history.clear()
            self.number = 0

    def _get_history(self, max_items: int | None) -> dict[str, Any]:
        with self._lock:
            keys = list(self.history)
            if max_items is not None:
                keys = keys[max(0, len(keys) - max_items):]
            return {k: self.history[k] for k in keys}

    # What the recorded server overrides: the synthetic one builds its answers.
    queue_body = b'{"queue_running": [], "queue_pending": []}'

    def _history_body(self, max_items: int | None) -> bytes:
        return json.dumps(self._get_history(max_items)).encode()

    def _history_entry_body(self, prompt_id: str) -> bytes:
        with self._lock:
            entry = self.history.get(prompt_id)
        # ComfyUI answers {} for an id it does not know.
        return json.dumps({prompt_id: entry} if entry is not None else {}).encode()

    def recorded_view(self, raw_query: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes] | None:
        """A recorded ``/view`` answer for this query, or None to serve from ``output_dir``."""
        return None

    def upload_image(self, content_type: str, body: bytes) -> tuple[int, bytes]:
        """``POST /upload/image`` as ComfyUI's ``image_upload`` answers it (into ``input_dir``)."""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if name:
                fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "image" not in fields or not fields["image"][0]:
            return 400, b""
        filename, data = fields["image"]
        subfolder = fields.get("subfolder", (None, b""))[1].decode()
        overwrite = fields.get("overwrite", (None, b""))[1].decode().lower() in ("true", "1")
        folder = os.path.abspath(os.path.join(self.input_dir, subfolder))
        if os.path.commonpath((folder, os.path.abspath(self.input_dir))) != os.path.abspath(self.input_dir):
            return 400, b""
        os.makedirs(folder, exist_ok=True)
        name = os.path.basename(str(filename))
        # NOTE: ComfyUI's naming: without overwrite, an existing name keeps its
        # name when the bytes are identical, else " (1)", " (2)"... is added.
        stem, ext = os.path.splitext(name)
        i = 1
        while not overwrite and os.path.exists(os.path.join(folder, name)):
            with open(os.path.join(folder, name), "rb") as fh:
                if hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest():
                    break
            name = f"{stem} ({i}){ext}"
            i += 1
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
        return 200, json.dumps({"name": name, "subfolder": subfolder, "type": "input"}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes = b"", ctype: str = "application/json", extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                fake.requests.append(self.path)
                if parts.path == "/history":
                    max_items = int(query["max_items"]) if "max_items" in query else None
                    self._send(200, fake._history_body(max_items), "application/json; charset=utf-8")
                elif parts.path.startswith("/history/"):
                    prompt_id = parts.path[len("/history/"):]
                    self._send(200, fake._history_entry_body(prompt_id), "application/json; charset=utf-8")
                elif parts.path == "/queue":
                    self._send(200, fake.queue_body, "application/json; charset=utf-8")
                elif parts.path == "/view":
                    answer = fake.recorded_view(parts.query, query)
                    if answer is not None:
                        status, headers, body = answer
                        self.send_response(status)
                        for key, value in headers.items():
                            self.send_header(key, value)
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    self._view(query)
                else:
                    self._send(404, b"404: Not Found", "text/plain")

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                fake.requests.append("POST " + self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if parts.path != "/upload/image":
                    return self._send(404, b"404: Not Found", "text/plain")
                status, answer = fake.upload_image(self.headers.get("Content-Type", ""), body)
                ctype = "application/json; charset=utf-8" if status == 200 else "text/plain; charset=utf-8"
                self._send(status, answer, ctype)

            def _view(self, query: dict[str, str]) -> None:
                filename = query.get("filename", "")
                if not filename:
                    return self._send(404, b"", "text/plain")
                if filename[0] == "/" or ".." in filename:
                    return self._send(400, b"", "text/plain")
                folders = {"output": fake.output_dir, "input": fake.input_dir, "temp": fake.output_dir.parent / "temp"}
                if query.get("type", "output") not in folders:
                    return self._send(400, b"", "text/plain")
                base = os.path.abspath(folders[query.get("type", "output")])
                folder = os.path.abspath(os.path.join(base, query.get("subfolder", "")))
                if os.path.commonpath((folder, base)) != base:
                    return self._send(403, b"", "text/plain")
                path = os.path.join(folder, os.path.basename(filename))
                if not os.path.isfile(path):
                    return self._send(404, b"", "text/plain")
                with open(path, "rb") as fh:
                    data = fh.read()
                self._send(200, data, "image/png", {"Content-Disposition": f'filename="{os.path.basename(filename)}"'})

        return Handler


RECORDING = Path(__file__).parent / "data" / "comfyui-real"
# The headers of a recorded /view answer that are sent again (Date and Server
# are http.server's own).
_VIEW_HEADERS = ("Content-Type", "Content-Disposition", "Etag", "Last-Modified", "Content-Length", "Accept-Ranges")


def _view_key(query: dict[str, str]) -> tuple[str, str, str]:
    return query.get("filename", ""), query.get("subfolder", ""), query.get("type", "output")


class RecordedComfy(FakeComfy):
    """A ComfyUI that answers with a real server's recorded answers (``tests/data/comfyui-real``).

    ``/history`` is the recorded body byte for byte until a test changes the
    history (:meth:`use_history`, :meth:`add_job`, :meth:`restart`); ``/view``
    answers every recorded file and edge case with its recorded status and
    headers, and anything else from ``work/output`` with ComfyUI's rules.
    """

    def __init__(self, work: Path, recording: Path = RECORDING) -> None:
        super().__init__(work / "output", work / "input")
        self.recording = recording
        self.queue_body = (recording / "queue.json").read_bytes()
        self.jobs = {int(j["job"]): j["prompt_id"] for j in json.loads((recording / "jobs.json").read_text())}
        self.views: dict[tuple[str, str, str], tuple[Path, dict[str, str]]] = {}
        for saved, answer in json.loads((recording / "view_headers.json").read_text()).items():
            key = _view_key({k: v[0] for k, v in parse_qs(urlsplit(answer["url"]).query, keep_blank_values=True).items()})
            headers = {k: answer["headers"][k] for k in _VIEW_HEADERS if k in answer["headers"]}
            self.views[key] = (recording / saved, headers)
        self.cases = {urlsplit(c["url"]).query: c for c in json.loads((recording / "view_cases.json").read_text())}
        self._raw: bytes | None = None
        self.use_history("history.json")

    def use_history(self, name: str) -> None:
        """Answer ``/history`` with the recorded file ``name`` (e.g. job 8's first run)."""
        raw = (self.recording / name).read_bytes()
        with self._lock:
            self.history = json.loads(raw)
            self._raw = raw
            numbers = [e["prompt"][0] for e in self.history.values()]
            self.number = max(numbers, default=-1) + 1

    def add_job(self, *args: Any, **kwargs: Any) -> str:
        """As :meth:`FakeComfy.add_job`; ``/history`` is built from then on."""
        self._raw = None
        return super().add_job(*args, **kwargs)

    def restart(self) -> None:
        """As :meth:`FakeComfy.restart`."""
        self._raw = None
        super().restart()

    def view_bytes(self, filename: str, subfolder: str = "", type_: str = "output") -> bytes:
        """The recorded bytes of one output."""
        return self.views[(filename, subfolder, type_)][0].read_bytes()

    def _history_body(self, max_items: int | None) -> bytes:
        if self._raw is not None and max_items is None:
            return self._raw
        return super()._history_body(max_items)

    def _history_entry_body(self, prompt_id: str) -> bytes:
        recorded = self.recording / "history" / f"{prompt_id}.json"
        if self._raw is not None and recorded.name in {p.name for p in recorded.parent.iterdir()}:
            return recorded.read_bytes()
        return super()._history_entry_body(prompt_id)

    def recorded_view(self, raw_query: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes] | None:
        """The recorded answer for this query: an edge case as sent, or a recorded file with its headers."""
        case = self.cases.get(raw_query)
        if case is not None and not isinstance(case["body"], dict):
            headers = {k: v for k, v in case["headers"].items() if k not in ("Date", "Server")}
            return case["status"], headers, case["body"].encode()
        found = self.views.get(_view_key(query))
        if found is None:
            return None
        path, headers = found
        # NOTE: header values were recorded as Latin-1 text (the HTTP rule);
        # http.server encodes them back to Latin-1, so the bytes on the wire
        # are the recorded ones (UTF-8 in the unicode file's disposition).
        return 200, dict(headers), path.read_bytes()


# --- the corpus as a ComfyUI output folder --------------------------------------------

# The corpus file, the name ComfyUI's SaveImage would have given it (with a
# subfolder for a filename_prefix like "sdxl/ComfyUI"), and what its prompt
# chunk says (read by hand, as in tests/test_comfy.py).
CORPUS_OUTPUTS = [
    ("lora_lora.png", "", "ComfyUI_00001_.png", 851616030078638, "masterpiece best quality girl", "bad hands"),
    ("flux_flux_dev_example.png", "", "ComfyUI_00002_.png", 219670278747233,
     "cute anime girl with massive fluffy fennec ears", None),
    ("sdxl_sdxl_refiner_prompt_example.png", "sdxl", "ComfyUI_00003_.png", 6767725640732,
     "daytime sky nature dark blue galaxy bottle", "text, watermark"),
    ("img2img_img2img_workflow.png", "sdxl", "ComfyUI_00004_.png", 280823642470253,
     "photograph of victorian woman with wings, sky clouds, meadow grass", "watermark, text"),
    # Saved by a ComfyUI started with --disable-metadata: no text chunks.
    ("controlnet_input_scribble_example.png", "", "ComfyUI_00005_.png", None, None, None),
]


def comfy_output_folder(corpus: Path, dest: Path) -> Path:
    """Copy the corpus into ``dest`` under ComfyUI output names; returns ``dest``."""
    import shutil

    for source, subfolder, name, *_ in CORPUS_OUTPUTS:
        target = dest / subfolder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / source, target)
    return dest


def expected_by_name() -> dict[str, tuple[int | None, str | None, str | None]]:
    """{ComfyUI file name: (seed, prompt start, negative prompt)}."""
    return {name: (seed, prompt, negative) for _, _, name, seed, prompt, negative in CORPUS_OUTPUTS}
