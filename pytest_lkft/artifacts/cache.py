"""Artifact cache: download each URL once and share it across processes, as KissCache does.

Lifecycle: `ArtifactCache(root)` opens a directory; `fetch(url)` returns a local path and
downloads at most once across every process using the same root (a per-entry file lock, a
`.part` file and an atomic rename). An entry returned by `fetch` stays locked shared ("in
use") until `close()`, so eviction in any process leaves it alone.

Layout under root, one directory per URL (`entries/<sha256 of the URL>/`):
  data, meta.json       the artifact and its url, size, sha256, etag, last_modified, last_use
  data.part, part.json  a download in progress, its total size and validators
  lock                  held exclusively while downloading, updating or removing the entry
  use                   held shared by every process using the entry
  stats.json            (at the root) counters shared by all processes, under stats.lock
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lkft.artifacts.entry import (
    ChecksumError,
    Entry,
    Meta,
    Progress,
    ProgressCallback,
    StaleArtifactWarning,
    UrlPolicy,
    default_cache_dir,
    format_size,
    hash_file,
    local_path,
    lock_file,
    locked,
    parse_size,
    read_json,
    write_json,
)
from pytest_lkft.errors import DownloadError, UserError

if TYPE_CHECKING:
    from pytest_lkft.artifacts.transfer import Downloader

__all__ = [  # the cache's public names, some defined in `entry`
    "ArtifactCache",
    "ChecksumError",
    "Entry",
    "Meta",
    "Progress",
    "ProgressCallback",
    "StaleArtifactWarning",
    "default_cache_dir",
    "format_size",
    "hash_file",
    "local_path",
    "lock_file",
    "locked",
    "parse_size",
    "read_json",
    "write_json",
]

DEFAULT_MAX_AGE = 24 * 3600.0
PROGRESS_DELAY = 0.5  # seconds before a download is worth a progress line
PROGRESS_EVERY = 0.5
COUNTERS = ("upstream_bytes", "served_bytes", "hits", "misses")

log = logging.getLogger(__name__)


class ArtifactCache:
    """A persistent download cache shared by processes: create, `fetch` many times, `close`.

    `cache_url` is a KissCache prefix (`http://host:port/api/v1/fetch/?url=%s`), tried before
    the origin. `max_size` bytes bound the cache (least recently used entries not in use are
    evicted); entries older than `max_age` seconds are revalidated with ETag/Last-Modified.
    `progress` receives a `Progress` for downloads lasting longer than a moment.
    """

    def __init__(
        self,
        root: Path,
        *,
        cache_url: str | None = None,
        max_size: int | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        progress: ProgressCallback | None = None,
        retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        url_policy: UrlPolicy | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        try:
            (self.root / "entries").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"cannot use cache directory {self.root}: {error.strerror}; choose another one"
            ) from None
        if cache_url is not None and "%s" not in cache_url:
            raise UserError(
                f"cache URL {cache_url!r} has no %s; use http://host:port/api/v1/fetch/?url=%s"
            )
        self.cache_url, self.max_size, self.max_age = cache_url, max_size, max_age
        self.progress, self.url_policy = progress, url_policy
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._in_use: dict[Path, int] = {}
        self._verified: set[tuple[str, int, int]] = set()
        self._guard = threading.Lock()
        self._local = threading.local()
        self._transfer: Downloader | None = None
        self.baseline = self.stats()

    # -- public API -------------------------------------------------------------------------

    def fetch(self, source: str, sha256: str | None = None) -> Path:
        """Return a local path holding `source` (URL or path), downloading it at most once."""
        path = local_path(source)
        if path is not None:
            if not path.exists():
                raise UserError(f"no such file: {path}")
            return path
        entry, hit = self.ensure(source, sha256)
        self.count(served_bytes=entry.data.stat().st_size, hits=int(hit), misses=int(not hit))
        return entry.data

    def ensure(
        self, url: str, sha256: str | None = None, *, hold: bool = True
    ) -> tuple[Entry, bool]:
        """Make the entry of `url` complete and fresh; True when nothing was downloaded.

        With `hold`, the entry stays in use until `close()`; without it the caller holds it
        with `in_use()` for as long as it reads the file (the cache server does).
        """
        check_url(url)
        entry = Entry.for_url(self.root, url)
        if hold:
            self._hold(entry)
        meta = self._usable(entry, sha256)
        if meta is not None and self.fresh(meta):
            self._touch(entry)
            return entry, True
        with self._download_lock(entry):
            meta = self._usable(entry, sha256)
            if meta is not None and self.fresh(meta):
                self._touch(entry, locked_already=True)
                return entry, True
            hit = self._update(entry, meta, sha256)
        self.evict()
        return entry, hit

    @contextlib.contextmanager
    def in_use(self, url: str) -> Iterator[Entry]:
        """Keep the entry of `url` from eviction for the duration of the block."""
        entry = Entry.for_url(self.root, url)
        with locked(entry.use_path, fcntl.LOCK_SH):
            yield entry

    def stats(self) -> dict[str, int]:
        """Return the counters every process adds to: bytes upstream and served, hits, misses."""
        stats = read_json(self.root / "stats.json") or {}
        return {name: int(stats.get(name, 0)) for name in COUNTERS}

    def session_stats(self) -> dict[str, int]:
        """Return the counters' growth since this object was created (all processes)."""
        now = self.stats()
        return {name: now[name] - self.baseline[name] for name in COUNTERS}

    def count(self, **deltas: int) -> None:
        """Add to the shared counters (see COUNTERS)."""
        with locked(self.root / "stats.lock", fcntl.LOCK_EX):
            stats = self.stats()
            for name, delta in deltas.items():
                stats[name] += delta
            write_json(self.root / "stats.json", dict(stats))

    def entries(self) -> list[tuple[Entry, Meta]]:
        """List complete entries with their meta.json (a bare dict for orphaned data)."""
        found = []
        for directory in sorted((self.root / "entries").iterdir()):
            meta = read_json(directory / "meta.json") or {}
            if (directory / "data").exists() or (directory / "data.part").exists():
                url = str(meta.get("url") or directory)  # no meta: a crash left it
                found.append((Entry(url, directory), meta))
        return found

    def size(self) -> int:
        """Return the bytes held by entries, partial downloads included."""
        total = 0
        for entry, _ in self.entries():
            for path in (entry.data, entry.part):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    def evict(self, max_size: int | None = None) -> list[str]:
        """Remove least recently used entries not in use until under `max_size`; return URLs."""
        limit = self.max_size if max_size is None else max_size
        if limit is None:
            return []
        total, removed = self.size(), []
        for entry, _meta in sorted(self.entries(), key=lambda item: item[1].get("last_use", 0)):
            if total <= limit:
                break
            size = sum(path.stat().st_size for path in (entry.data, entry.part) if path.exists())
            if self._remove(entry):
                total -= size
                removed.append(entry.url)
        if total > limit:
            log.warning("cache %s holds %s, over its %s limit: the rest is in use",
                        self.root, format_size(total), format_size(limit))
        return removed

    def close(self) -> None:
        """Release every entry this object handed out, so that eviction may take them."""
        with self._guard:
            for fd in self._in_use.values():
                os.close(fd)
            self._in_use.clear()

    def __enter__(self) -> ArtifactCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- entry state ------------------------------------------------------------------------

    def _hold(self, entry: Entry) -> None:
        """Take the shared `use` lock of an entry until close()."""
        with self._guard:
            if entry.dir not in self._in_use:
                fd = lock_file(entry.use_path, fcntl.LOCK_SH)
                assert fd is not None
                self._in_use[entry.dir] = fd

    def _usable(self, entry: Entry, sha256: str | None) -> Meta | None:
        """Return the meta of a complete entry matching `sha256` (checked once per process)."""
        meta = entry.valid_meta()
        if meta is None or sha256 is None:
            return meta
        if meta.get("sha256") != sha256.lower():
            return None
        key = (str(entry.data), meta["size"], meta["mtime_ns"])
        if key not in self._verified:
            if hash_file(entry.data) != meta["sha256"]:
                log.warning("%s is corrupt in the cache; fetching it again", entry.url)
                return None
            self._verified.add(key)
        return meta

    def fresh(self, meta: Meta) -> bool:
        """Tell whether an entry was checked with the origin less than max_age ago."""
        return time.time() - float(meta.get("checked", 0)) < self.max_age

    def _touch(self, entry: Entry, *, locked_already: bool = False) -> None:
        """Record the last use in meta.json, unless a writer is busy with the entry."""
        with contextlib.ExitStack() as stack:
            if not locked_already and not stack.enter_context(
                locked(entry.lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ):
                return
            meta = read_json(entry.meta_path)
            if meta is not None:
                meta["last_use"] = time.time()
                write_json(entry.meta_path, meta)

    def _remove(self, entry: Entry) -> bool:
        """Remove an entry if nobody downloads or uses it; True when removed."""
        with locked(entry.lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB) as writer:
            if not writer:
                return False
            with locked(entry.use_path, fcntl.LOCK_EX | fcntl.LOCK_NB) as unused:
                if not unused:
                    return False
                entry.remove()
                return True

    @contextlib.contextmanager
    def _download_lock(self, entry: Entry) -> Iterator[None]:
        """Hold the entry's exclusive lock, reporting the other process's progress meanwhile."""
        fd = lock_file(entry.lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        while fd is None:
            time.sleep(0.05)
            self._report_wait(entry, started)
            fd = lock_file(entry.lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            os.close(fd)

    def _report_wait(self, entry: Entry, started: float) -> None:
        """Report a download another process runs, from its `.part` file."""
        with contextlib.suppress(OSError):
            total = (entry.part_info() or {}).get("total")
            self._report(entry.url, entry.part.stat().st_size, total, started)

    # -- downloading ------------------------------------------------------------------------

    def _update(self, entry: Entry, stale: Meta | None, sha256: str | None) -> bool:
        """Download or revalidate; a stale copy is used when the origin fails (True: no bytes)."""
        try:
            return self._download(entry, stale, sha256)
        except ChecksumError:
            raise
        except DownloadError as error:
            if stale is None:
                raise
            message = (f"cannot revalidate {entry.url}, using the copy checked "
                       f"{(time.time() - float(stale['checked'])) / 3600:.1f} h ago: {error}")
            log.warning(message)
            warnings.warn(message, StaleArtifactWarning, stacklevel=5)
            self._touch(entry, locked_already=True)
            return True

    def _download(self, entry: Entry, stale: Meta | None, sha256: str | None) -> bool:
        """Download through the lab cache when one is set, falling back to the origin."""
        downloader = self._downloader()
        if self.cache_url is None:
            return downloader.download(entry, entry.url, stale, sha256, patient=True)
        proxied = self.cache_url % urllib.parse.quote(entry.url, safe="")
        try:
            return downloader.download(entry, proxied, stale, sha256, patient=False)
        except ChecksumError:
            raise
        except DownloadError as error:
            log.warning("lab cache failed (%s); fetching %s from the origin", error, entry.url)
            return downloader.download(entry, entry.url, stale, sha256, patient=True)

    def _downloader(self) -> Downloader:
        """The HTTP side, made on the first download (it imports requests)."""
        with self._guard:
            if self._transfer is None:
                from pytest_lkft.artifacts.transfer import Downloader

                self._transfer = Downloader(self.retries, self.backoff, self.timeout,
                                            self.url_policy, self.count, self._report)
            return self._transfer

    def _report(self, url: str, done: int, total: int | None, started: float,
                finished: bool = False) -> None:
        """Call the progress callback after the first moment, then every PROGRESS_EVERY s."""
        elapsed = time.monotonic() - started
        if self.progress is None or elapsed < PROGRESS_DELAY:
            return
        last = getattr(self._local, "last_report", 0.0)
        if not finished and time.monotonic() - last < PROGRESS_EVERY:
            return
        self._local.last_report = time.monotonic()
        self.progress(Progress(url, done, total, elapsed, finished))


def check_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"cannot fetch {url!r}: not an http(s) URL, a file:// URL or a local path")
