"""A test origin server on 127.0.0.1 that misbehaves on request; run it as a subprocess.

    python tests/origin_server.py DIR    # prints the port on the first line, serves DIR

Paths are `/<modes>/<file>`; modes is `plain` or a comma list of:
  503x<N>   answer the first N requests with 503 and `Retry-After: 1`
  cut<N>    cut the connection after N body bytes, first request only
  norange   ignore Range: answer 200 with the whole body
  wrong     serve other bytes than the file holds (same length)
  flip      serve other bytes from the second request on (the file changed upstream)
  slow<N>   send N KiB every 10 ms, so that concurrent clients overlap
`GET /_stats` answers JSON: requests, body bytes and statuses per path, and total_bytes.
"""

from __future__ import annotations

import email.utils
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(".")
STATE: dict[str, Any] = {"requests": {}, "bytes": {}, "statuses": {}, "total_bytes": 0}
LOCK = threading.Lock()


def parse_modes(text: str) -> dict[str, int]:
    """Read `503x2,cut1000,norange` into {"503": 2, "cut": 1000, "norange": 1}."""
    modes: dict[str, int] = {}
    for mode in text.split(","):
        if mode.startswith("503x"):
            modes["503"] = int(mode[4:])
        elif mode.startswith("cut"):
            modes["cut"] = int(mode[3:])
        elif mode.startswith("slow"):
            modes["slow"] = int(mode[4:])
        elif mode:
            modes[mode] = 1
    return modes


class OriginHandler(BaseHTTPRequestHandler):
    """Serve files from ROOT, misbehaving as the path's modes say, counting what it sends."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read stdout for the port only."""

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        if self.path == "/_stats":
            with LOCK:
                data = json.dumps(STATE).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.answer(body=True)

    def record(self, status: int, sent: int = 0) -> int:
        """Count one request (or body bytes when status is 0); return its number (1-based)."""
        path = self.path.split("?")[0]
        with LOCK:
            if status:
                STATE["requests"][path] = STATE["requests"].get(path, 0) + 1
                STATE["statuses"].setdefault(path, []).append(status)
            STATE["bytes"][path] = STATE["bytes"].get(path, 0) + sent
            STATE["total_bytes"] += sent
            return int(STATE["requests"].get(path, 0))

    def answer(self, body: bool) -> None:
        """Answer one GET or HEAD."""
        _, modes_text, name = (self.path.split("?")[0].split("/", 2) + ["", ""])[:3]
        modes, path = parse_modes(modes_text), ROOT / name
        if not name or not path.is_file():
            self.record(404)
            self.send_error(404)
            return
        data = path.read_bytes()
        stat = path.stat()
        etag = f'"{stat.st_size}-{stat.st_mtime_ns}"'
        ranged = self.headers.get("Range", "").startswith("bytes=") and "norange" not in modes
        start = int(self.headers["Range"][6:].split("-")[0]) if ranged else 0
        status = 206 if ranged else 200
        number = self.record(0)
        if number < modes.get("503", 0):
            status = 503
        elif self.headers.get("If-None-Match") == etag and not ranged:
            status = 304
        number = self.record(status)
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        if status == 304:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if body:
            if "wrong" in modes or ("flip" in modes and number > 1):
                data = bytes(b ^ 0xFF for b in data)
            cut = modes.get("cut") if number == 1 else None
            self.send_body(data[start:], cut, modes.get("slow"))

    def send_body(self, data: bytes, cut: int | None, slow: int | None) -> None:
        """Write the body, slowly or cut short as asked."""
        step = slow * 1024 if slow else 1 << 20
        limit = len(data) if cut is None else min(cut, len(data))
        sent = 0
        try:
            while sent < limit:
                chunk = data[sent : min(sent + step, limit)]
                self.wfile.write(chunk)
                sent += len(chunk)
                self.record(0, len(chunk))
                if slow:
                    time.sleep(0.01)
        except OSError:
            return
        if cut is not None and limit < len(data):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


class Origin:
    """The origin server as a subprocess, for tests: start, `url(name, modes)`, `stats()`, stop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(root)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.base = f"http://127.0.0.1:{self.process.stdout.readline().strip()}"

    def url(self, name: str, modes: str = "plain") -> str:
        """Return the URL of a file under root, served with the given modes."""
        return f"{self.base}/{modes}/{name}"

    def add(self, name: str, data: bytes) -> bytes:
        """Write a file for the server to serve; return its content."""
        (self.root / name).write_bytes(data)
        return data

    def stats(self) -> dict[str, Any]:
        """Return the server's counters (see the module docstring)."""
        with urllib.request.urlopen(f"{self.base}/_stats") as response:
            return dict(json.load(response))

    def stop(self) -> None:
        """Stop the server process by its PID."""
        self.process.terminate()
        self.process.wait(timeout=10)


def main() -> None:
    """Serve the directory named on the command line; print the port first."""
    global ROOT
    ROOT = Path(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), OriginHandler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
