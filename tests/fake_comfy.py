"""A small stand-in for a running ComfyUI: ``GET /history`` and ``GET /view`` as its server.py answers them.

The history is kept like ComfyUI's ``PromptQueue.history`` (insertion
ordered, ``max_items`` taking the newest); ``/view`` serves files from an
output folder with ComfyUI's checks (400 for a missing or ``..`` file name,
403 for a subfolder outside the folder, 404 for a missing file).
"""

from __future__ import annotations

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

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
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
                    self._send(200, json.dumps(fake._get_history(max_items)).encode())
                elif parts.path == "/view":
                    self._view(query)
                else:
                    self._send(404, b"404: Not Found", "text/plain")

            def _view(self, query: dict[str, str]) -> None:
                filename = query.get("filename", "")
                if not filename or filename[0] == "/" or ".." in filename:
                    return self._send(400, b"", "text/plain")
                if query.get("type", "output") != "output":
                    return self._send(404, b"", "text/plain")
                base = os.path.abspath(fake.output_dir)
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
