"""`lkft cache serve`: a KissCache-compatible HTTP server on top of `ArtifactCache`.

Lifecycle: `CacheServer(cache, address, policy)` binds, `serve_forever()` answers each request
in a thread. A request for a URL not yet cached starts one download in a background thread
(the cache's file lock makes it one across processes too) and streams the `.part` file to
every client as it grows. Endpoints, GET and HEAD:

  /api/v1/fetch/?url=URL, /api/v1/fetch/<name>?url=URL   the artifact (Range on cached files)
  /api/v1/status/                                        counters and size, as JSON
  /api/v1/health/                                        200 "ok"
  /lkft/artifacts/<sha256>/<name>                        a file published for a LAVA lab
                                                         (pytest_lkft/devices/lava/publish.py)

It is not an open proxy: `HostPolicy` only lets through hosts on the allow list, and never
loopback or link-local addresses unless they are listed by name.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pytest_lkft.artifacts.cache import ArtifactCache
from pytest_lkft.artifacts.entry import CHUNK, Entry, Meta
from pytest_lkft.artifacts.publish import ROUTE, published_file
from pytest_lkft.errors import DownloadError, UserError

FETCH = "/api/v1/fetch/"
POLL = 0.01  # seconds between looks at a growing .part file
HEADERS_TIMEOUT = 600.0  # seconds to wait for the origin's headers

log = logging.getLogger(__name__)


class HostPolicy:
    """Decide which upstream URLs may be fetched; raise UserError for the others.

    `allow` holds host names or fnmatch patterns (`*.example.org`); `*` allows any host that
    does not resolve to a loopback, link-local or unspecified address.
    """

    def __init__(self, allow: Sequence[str]) -> None:
        self.allow = [host.lower() for host in allow]

    def __call__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        host = (parsed.hostname or "").lower()
        if parsed.scheme not in ("http", "https") or not host:
            raise UserError(f"refused {url}: only http(s) URLs are fetched")
        if any(pattern != "*" and fnmatch.fnmatchcase(host, pattern) for pattern in self.allow):
            return
        if "*" not in self.allow:
            raise UserError(
                f"refused {url}: {host} is not allowed; start the server with --allow {host}"
            )
        if any(is_internal(address) for address in resolve(host)):
            raise UserError(
                f"refused {url}: {host} is a loopback or link-local address; "
                f"start the server with --allow {host} to permit it"
            )


def resolve(host: str) -> list[str]:
    """Return the addresses `host` resolves to (none when it does not resolve)."""
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except OSError:
        return []


def is_internal(address: str) -> bool:
    """Tell loopback, link-local and unspecified addresses (IPv4-mapped ones too)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Read one `bytes=A-B`, `A-` or `-N` range into (start, end inclusive); None: whole file.

    Raises ValueError when the range cannot be satisfied.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    if not first and last.isdigit():
        start, end = max(0, size - int(last)), size - 1
    elif first.isdigit() and (last.isdigit() or not last):
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:
        return None
    if start > end or start >= size:
        raise ValueError(header)
    return start, end


class CacheServer(ThreadingHTTPServer):
    """The server: an ArtifactCache, a URL policy and the downloads running in this process."""

    daemon_threads = True
    request_queue_size = 128  # a lab's workers all ask at once

    def __init__(self, cache: ArtifactCache, address: tuple[str, int], policy: HostPolicy) -> None:
        super().__init__(address, CacheHandler)
        self.cache, self.policy = cache, policy
        self.downloads: dict[str, Future[tuple[Entry, bool]]] = {}
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lkft-download")
        self.lock = threading.RLock()

    def download(self, url: str) -> Future[tuple[Entry, bool]]:
        """Start (or join) the one download of `url` run by this process."""
        with self.lock:
            future = self.downloads.get(url)
            if future is None:
                future = self.executor.submit(self.cache.ensure, url, None, hold=False)
                self.downloads[url] = future
                future.add_done_callback(lambda done: self.forget(url, done))
            return future

    def forget(self, url: str, future: Future[tuple[Entry, bool]]) -> None:
        """Drop a finished download so that the next request looks at the cache again."""
        with self.lock:
            if self.downloads.get(url) is future:
                del self.downloads[url]

    def status(self) -> dict[str, Any]:
        """Return what /api/v1/status/ shows."""
        with self.lock:
            running = sorted(self.downloads)
        return {
            "root": str(self.cache.root),
            "entries": len(self.cache.entries()),
            "size": self.cache.size(),
            "downloads": running,
            **self.cache.stats(),
        }


class CacheHandler(BaseHTTPRequestHandler):
    """One request: route it, then serve a cached file or follow a running download."""

    protocol_version = "HTTP/1.1"
    server: CacheServer

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests with a timestamp on stderr, as KissCache's access log does."""
        message = f"{time.strftime('%H:%M:%S')} {self.address_string()} {format % args}"
        print(message, file=sys.stderr, flush=True)

    def do_GET(self) -> None:
        self.route(body=True)

    def do_HEAD(self) -> None:
        self.route(body=False)

    def route(self, body: bool) -> None:
        """Dispatch on the path; a client going away mid-answer is not an error."""
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") + "/"  # LAVA's docs write /api/v1/fetch?url=%s
        try:
            if path == "/api/v1/health/":
                self.reply(200, b"ok\n", body, "text/plain")
            elif path == "/api/v1/status/":
                status = json.dumps(self.server.status()).encode()
                self.reply(200, status, body, "application/json")
            elif path.startswith(FETCH):
                url = urllib.parse.parse_qs(parsed.query).get("url", [""])[0]
                self.fetch(url, body)
            elif path.startswith(ROUTE):
                self.published(parsed.path, body)
            else:
                message = f"no such endpoint {parsed.path}; use {FETCH}?url=URL\n"
                self.reply(404, message.encode(), body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def reply(self, status: int, data: bytes, body: bool, kind: str = "text/plain") -> None:
        """Send a small complete answer."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def published(self, path: str, body: bool) -> None:
        """Serve a file the plugin published under the cache for a LAVA lab, or 404."""
        found = published_file(self.server.cache.root, path)
        if found is None:
            self.reply(404, f"no published file {path}\n".encode(), body)
            return
        size = found.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if body and size:
            with found.open("rb") as stream:
                self.connection.sendfile(stream, 0, size)

    def fetch(self, url: str, body: bool) -> None:
        """Serve `url` from the cache, downloading it once if needed."""
        if not url:
            self.reply(400, f"missing url; ask {FETCH}?url=URL\n".encode(), body)
            return
        try:
            self.server.policy(url)
        except UserError as error:
            self.reply(403, f"{error}\n".encode(), body)
            return
        cache = self.server.cache
        with cache.in_use(url) as entry:
            meta = entry.valid_meta()
            hit = meta is not None and cache.fresh(meta)
            if meta is not None and hit:
                sent = self.send_file(entry, meta, body)
            else:
                future = self.server.download(url)
                if self.headers.get("Range") or not self.wait_for_headers(entry, future):
                    sent = self.send_finished(entry, future, body)
                else:
                    sent = self.send_growing(entry, future, body)
            if body:
                cache.count(served_bytes=sent, hits=int(hit), misses=int(not hit))

    def wait_for_headers(self, entry: Entry, future: Future[tuple[Entry, bool]]) -> bool:
        """Wait until the download has its headers (True) or has finished (False)."""
        deadline = time.monotonic() + HEADERS_TIMEOUT
        while not future.done() and time.monotonic() < deadline:
            if entry.part_info() is not None and entry.part.exists():
                return True
            time.sleep(POLL)
        return False

    def send_finished(self, entry: Entry, future: Future[tuple[Entry, bool]], body: bool) -> int:
        """Wait for the download, then send the file or the error; return body bytes sent."""
        try:
            future.result()
        except UserError as error:
            self.reply(403, f"{error}\n".encode(), body)
            return 0
        except DownloadError as error:
            self.reply(502, f"{error}\n".encode(), body)
            return 0
        except Exception as error:  # a bug or the disk: say so, keep serving others
            log.exception("fetching %s failed", entry.url)
            message = f"cannot fetch {entry.url}: {type(error).__name__}: {error}; see the log\n"
            self.reply(500, message.encode(), body)
            return 0
        meta = entry.valid_meta()
        if meta is None:  # replaced or evicted between the download and now
            self.reply(503, b"entry changed while serving; try again\n", body)
            return 0
        return self.send_file(entry, meta, body)

    def send_file(self, entry: Entry, meta: Meta, body: bool) -> int:
        """Send a complete entry, honouring Range, If-Range and If-None-Match."""
        size, etag = int(meta["size"]), meta.get("etag") or f'"{meta["sha256"]}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_headers(304, meta, etag, None)
            return 0
        wanted = self.headers.get("Range")
        if self.headers.get("If-Range") not in (None, etag, meta.get("last_modified")):
            wanted = None
        try:
            span = parse_range(wanted, size)
        except ValueError:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 0
        start, end = span or (0, size - 1)
        content_range = f"bytes {start}-{end}/{size}" if span else None
        self.send_headers(206 if span else 200, meta, etag, end - start + 1, content_range)
        if not body or size == 0:
            return 0
        with entry.data.open("rb") as stream:
            return int(self.connection.sendfile(stream, start, end - start + 1))

    def send_headers(
        self, status: int, meta: Meta, etag: str, length: int | None, span: str | None = None
    ) -> None:
        """Send the status line and the headers of an artifact."""
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if meta.get("last_modified"):
            self.send_header("Last-Modified", meta["last_modified"])
        if span is not None:
            self.send_header("Content-Range", span)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def send_growing(self, entry: Entry, future: Future[tuple[Entry, bool]], body: bool) -> int:
        """Stream a download in progress from its `.part` file; return body bytes sent."""
        info = entry.part_info() or {}
        total = info.get("total")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if info.get("etag"):
            self.send_header("ETag", info["etag"])
        if isinstance(total, int):
            self.send_header("Content-Length", str(total))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        return self.follow(entry, future) if body else 0

    def follow(self, entry: Entry, future: Future[tuple[Entry, bool]]) -> int:
        """Copy the `.part` file as it grows, then the rest of the finished file.

        A restarted download (a new inode) is followed only if it starts with the bytes
        already sent; otherwise, or if the download fails, the body is cut short.
        """
        sent, fd = 0, open_if_new(entry.part, None)
        try:
            while not future.done():
                chunk = os.pread(fd, CHUNK, sent) if fd is not None else b""
                if chunk:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    continue
                time.sleep(POLL)
                new = open_if_new(entry.part, fd)
                if new is not None:
                    fd = self.switch(fd, new, sent, future)
            if future.exception() is None:
                final = os.open(entry.data, os.O_RDONLY)
                fd = self.switch(fd, final, sent, future) if fd is not None else final
                rest = os.fstat(fd).st_size - sent
                with os.fdopen(os.dup(fd), "rb") as stream:
                    return sent + (int(self.connection.sendfile(stream, sent, rest)) if rest else 0)
        except ConnectionAbortedError:
            pass
        finally:
            if fd is not None:
                os.close(fd)
        self.close_connection = True  # the client sees a short body and may retry
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        return sent

    @staticmethod
    def switch(old: int | None, new: int, sent: int, future: Future[tuple[Entry, bool]]) -> int:
        """Move from `old` to `new` if they hold the same first `sent` bytes, else abort.

        On success `old` is closed; on failure only `new` is (the caller closes `old`).
        """
        if old is not None and os.fstat(old).st_ino != os.fstat(new).st_ino:
            while os.fstat(new).st_size < sent and not future.done():
                time.sleep(POLL)
            if os.fstat(new).st_size < sent or not same_prefix(old, new, sent):
                os.close(new)
                raise ConnectionAbortedError("the restarted download differs from what was sent")
        if old is not None:
            os.close(old)
        return new


def same_prefix(first: int, second: int, size: int) -> bool:
    """Tell whether two open files hold the same first `size` bytes."""
    for offset in range(0, size, CHUNK):
        count = min(CHUNK, size - offset)
        if os.pread(first, count, offset) != os.pread(second, count, offset):
            return False
    return True


def open_if_new(path: Path, fd: int | None) -> int | None:
    """Open `path` if it is another inode than `fd` (a restarted download), else None."""
    try:
        new = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # renamed into place: the old descriptor reads the finished file
    if fd is not None and os.fstat(new).st_ino == os.fstat(fd).st_ino:
        os.close(new)
        return None
    return new


def parse_bind(bind: str) -> tuple[str, int]:
    """Read `HOST:PORT` (or `PORT`) into an address; UserError when malformed."""
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        raise UserError(f"invalid --bind {bind!r}; use HOST:PORT such as 127.0.0.1:8001")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(cache: ArtifactCache, bind: str, allow: Sequence[str]) -> None:
    """Serve `cache` on `bind` until interrupted; print the URL prefix to give LAVA first."""
    server = CacheServer(cache, parse_bind(bind), HostPolicy(allow))
    host, port = server.server_address[:2]
    if not allow:
        print("lkft cache: warning: no --allow given; every fetch will be refused", flush=True)
    print(f"lkft cache: serving {cache.root} on http://{host!s}:{port}{FETCH}?url=%s", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.executor.shutdown(wait=False, cancel_futures=True)
