"""One download into a cache entry over HTTP, as KissCache does it: resume, retries, redirects.

`ArtifactCache` imports this module only when it has something to download, so a run on
cached or local artifacts never pays for importing requests (issue 2's boot overhead).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
import urllib3

from pytest_lkft.artifacts.entry import (
    CHUNK,
    ChecksumError,
    Entry,
    Meta,
    UrlPolicy,
    format_size,
    read_json,
    write_json,
)
from pytest_lkft.errors import DownloadError

# KissCache retries on these (#5).
RETRY_STATUSES = frozenset({408, 413, 420, 425, 429, 430, 500, 502, 503, 504, 507, 509, 529, 598})
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
)
MAX_RETRY_AFTER = 300.0
MAX_REDIRECTS = 10

log = logging.getLogger("pytest_lkft.artifacts.cache")
Report = Callable[[str, int, "int | None", float, bool], None]


class _Retry(Exception):
    """A response worth retrying after `delay` seconds (None: use the back-off)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


def parse_retry_after(value: str | None) -> float | None:
    """Read Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value).timestamp()
        return max(0.0, min(when - time.time(), MAX_RETRY_AFTER))
    return None


def parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """Read `bytes START-END/TOTAL` into (start, total); None when malformed."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start = span.partition("-")[0]
    if not start.isdigit():
        return None
    return int(start), int(total) if total.isdigit() else None


# What requests/urllib3 error texts mean, in the words users see.
NETWORK_REASONS = (
    ("Connection refused", "connection refused"),
    ("Failed to resolve", "cannot resolve the host name"),
    ("Name or service not known", "cannot resolve the host name"),
    ("timed out", "timed out"),
    ("Connection reset", "connection reset"),
    ("IncompleteRead", "connection closed mid-body"),
    ("Connection broken", "connection closed mid-body"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
)


def describe(error: BaseException) -> str:
    """Say in a few words why a request failed."""
    text = str(error) or type(error).__name__
    for pattern, reason in NETWORK_REASONS:
        if pattern in text:
            return reason
    return text.splitlines()[0][:200]


class PartFile:
    """The `.part` file of one download: it resumes, restarts cleanly and hashes as it grows."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.info: Meta = {"url": entry.url}
        previous = entry.part_info()
        resumable = previous is not None and (previous.get("etag") or previous.get("last_modified"))
        if resumable and previous is not None and entry.part.exists():
            self.info = previous
            self.file = entry.part.open("ab", buffering=0)
            with entry.part.open("rb") as stream:
                self.hasher = hashlib.file_digest(stream, "sha256")
        else:
            self.file = entry.part.open("wb", buffering=0)
            self.hasher = hashlib.sha256()
        self._offset = self.file.tell()
        self.received = 0  # bytes downloaded by this object, restarts included

    @property
    def offset(self) -> int:
        """Bytes in the part file (kept by hand: it stays readable after close)."""
        return self._offset

    @property
    def total(self) -> int | None:
        total = self.info.get("total")
        return total if isinstance(total, int) else None

    def headers(self, stale: Meta | None) -> dict[str, str]:
        """Headers for the next request: Range to resume, or validators to revalidate."""
        headers = {"Accept-Encoding": "identity"}
        validator = self.info.get("etag") or self.info.get("last_modified")
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            if validator:
                headers["If-Range"] = validator
        elif stale is not None:
            if stale.get("etag"):
                headers["If-None-Match"] = stale["etag"]
            if stale.get("last_modified"):
                headers["If-Modified-Since"] = stale["last_modified"]
        return headers

    def accept(self, response: requests.Response) -> None:
        """Check a 200/206 against what we have; a 200 to a Range request restarts cleanly."""
        total: int | None = None
        if response.status_code == 206:
            content_range = parse_content_range(response.headers.get("Content-Range"))
            if content_range is None or content_range[0] != self.offset:
                self.restart()
                raise _Retry(f"bad Content-Range {response.headers.get('Content-Range')}", 0)
            total = content_range[1]
        else:
            if self.offset:
                log.info("%s ignored the Range request; restarting the download", self.entry.url)
                self.restart()
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        self.info.update(total=total, etag=etag, last_modified=modified)
        write_json(self.entry.part_meta_path, self.info)

    def restart(self) -> None:
        """Start again in a new file (a new inode tells streaming readers to reopen)."""
        self.file.close()
        self.entry.part.unlink(missing_ok=True)
        self.file = self.entry.part.open("wb", buffering=0)
        self.hasher = hashlib.sha256()
        self._offset = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.hasher.update(chunk)
        self._offset += len(chunk)
        self.received += len(chunk)

    def discard(self) -> None:
        """Drop the partial download unless a validator allows resuming it later."""
        self.file.close()
        if not self.offset or not (self.info.get("etag") or self.info.get("last_modified")):
            self.entry.part.unlink(missing_ok=True)
            self.entry.part_meta_path.unlink(missing_ok=True)

    def finish(self, sha256: str | None) -> Meta:
        """Verify, rename into place and return the new meta.json; ChecksumError drops it."""
        self.file.close()
        digest = self.hasher.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            self.entry.part.unlink(missing_ok=True)
            self.entry.part_meta_path.unlink(missing_ok=True)
            raise ChecksumError(
                f"cannot fetch {self.entry.url}: its sha256 is {digest}, not {sha256}; "
                "check the checksum or the upstream file"
            )
        os.replace(self.entry.part, self.entry.data)
        self.entry.part_meta_path.unlink(missing_ok=True)
        stat, now = self.entry.data.stat(), time.time()
        meta: Meta = {
            "url": self.entry.url,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": digest,
            "etag": self.info.get("etag"),
            "last_modified": self.info.get("last_modified"),
            "fetched": now,
            "checked": now,
            "last_use": now,
        }
        write_json(self.entry.meta_path, meta)
        return meta



@dataclass
class Downloader:
    """Downloads into cache entries with one requests session per thread.

    `count(upstream_bytes=n)` adds to the cache's shared counters; `report(url, done, total,
    started, finished)` passes progress on.
    """

    retries: int
    backoff: float
    timeout: float
    url_policy: UrlPolicy | None
    count: Callable[..., None]
    report: Report
    _local: threading.local = field(default_factory=threading.local)

    def download(
        self, entry: Entry, url: str, stale: Meta | None, sha256: str | None, *, patient: bool
    ) -> bool:
        """Download `url` into the entry with retries and resumes; True when not modified."""
        part, failures, started = PartFile(entry), 0, time.monotonic()
        try:
            while True:
                before = part.received
                try:
                    if self._transfer(url, part, stale, started):
                        part.discard()
                        mark_checked(entry)
                        return True
                    if part.total is None or part.offset >= part.total:
                        break
                    raise _Retry(f"body cut at {part.offset} of {part.total} bytes", 0)
                except (_Retry, *NETWORK_ERRORS) as error:
                    failures = 0 if part.received > before else failures + 1
                    self._pause(url, error, failures, patient)
            meta = part.finish(sha256)
        except BaseException as error:
            part.discard()
            explained = explain(error, url, entry)
            if explained is error:
                raise
            raise explained from error
        finally:
            self.count(upstream_bytes=part.received)
        self.report(entry.url, part.offset, part.total, started, True)
        log.info("fetched %s (%s)", entry.url, format_size(meta["size"]))
        return False

    def _pause(self, url: str, error: BaseException, failures: int, patient: bool) -> None:
        """Sleep before the next attempt, or raise DownloadError when out of attempts."""
        delay = error.delay if isinstance(error, _Retry) else None
        network = not isinstance(error, _Retry)
        if failures > self.retries or (network and not patient and failures > 0):
            raise DownloadError(
                f"cannot fetch {url}: {describe(error)}; check the URL or pass a local file"
            ) from error
        if delay is None:
            delay = 0.0  # resume at once after progress, back off after failures
            if failures:
                delay = min(self.backoff * 2 ** (failures - 1), 60.0)
        log.info("retrying %s in %.1f s: %s", url, delay, error)
        time.sleep(delay)

    def _transfer(self, url: str, part: PartFile, stale: Meta | None, started: float) -> bool:
        """Run one request into the part file; True when the server says not modified."""
        with self._open(url, part.headers(stale)) as response:
            status = response.status_code
            if status == 304 and stale is not None and not part.offset:
                return True
            if status in RETRY_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise _Retry(f"HTTP {status} {response.reason}", retry_after)
            if status == 416 and part.offset:
                part.restart()
                raise _Retry("HTTP 416 to a Range request", 0)
            if status not in (200, 206):
                raise DownloadError(
                    f"cannot fetch {url}: HTTP {status} {response.reason}; check the URL"
                )
            part.accept(response)
            for chunk in response.raw.stream(CHUNK, decode_content=False):
                part.write(chunk)
                self.report(part.entry.url, part.offset, part.total, started, False)
        return False

    def _open(self, url: str, headers: dict[str, str]) -> requests.Response:
        """GET `url` streaming, following redirects by hand so every hop meets the URL policy."""
        session = self._session()
        for _ in range(MAX_REDIRECTS):
            if self.url_policy is not None:
                self.url_policy(url)
            response = session.get(url, headers=headers, stream=True, allow_redirects=False,
                                   timeout=(min(self.timeout, 10.0), self.timeout))
            if not response.is_redirect:
                return response
            response.close()
            url = urllib.parse.urljoin(url, response.headers["Location"])
        raise DownloadError(
            f"cannot fetch {url}: more than {MAX_REDIRECTS} redirects; check the URL"
        )

    def _session(self) -> requests.Session:
        """One requests session per thread (sessions are not thread-safe)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def mark_checked(entry: Entry) -> None:
    """Record a successful revalidation (HTTP 304) in meta.json."""
    meta = read_json(entry.meta_path)
    if meta is not None:
        meta["checked"] = meta["last_use"] = time.time()
        write_json(entry.meta_path, meta)


def explain(error: BaseException, url: str, entry: Entry) -> BaseException:
    """Turn a stray requests or disk error into a one-line DownloadError; others unchanged."""
    if isinstance(error, requests.RequestException):
        return DownloadError(f"cannot fetch {url}: {describe(error)}; check the URL")
    if isinstance(error, OSError):
        return DownloadError(
            f"cannot fetch {url}: cannot write {entry.dir}: {error.strerror or error}; "
            "free some space or use another cache directory"
        )
    return error
