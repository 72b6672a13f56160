"""One cached URL's files, and what the cache and its downloader share about them.

See `pytest_lkft.artifacts.cache` for the layout of an entry's directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_lkft.errors import DownloadError, UserError
from pytest_lkft.files import write_atomically

CHUNK = 256 * 1024
Meta = dict[str, Any]


class StaleArtifactWarning(UserWarning):
    """The origin could not be reached, so a cached copy past its max age was used."""


class ChecksumError(DownloadError):
    """The downloaded content does not match the sha256 asked for; nothing was cached."""


@dataclass(frozen=True)
class Progress:
    """One progress report of a download: bytes so far, the total when known, seconds spent."""

    url: str
    done: int
    total: int | None
    elapsed: float
    finished: bool = False

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def format(self) -> str:
        """Say it in one line: `fetching URL: 12.3 MB of 200.0 MB at 45.6 MB/s`."""
        total = f" of {format_size(self.total)}" if self.total else ""
        verb = "fetched" if self.finished else "fetching"
        return f"{verb} {self.url}: {format_size(self.done)}{total} at {format_size(self.rate)}/s"


ProgressCallback = Callable[[Progress], None]
UrlPolicy = Callable[[str], None]


def format_size(size: float | None) -> str:
    """Format a byte count in MB, as the terminal summary shows it."""
    return f"{(size or 0) / 1e6:.1f} MB"


SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str) -> int:
    """Read a size such as `500M`, `10G`, `1.5GB` or `123` (bytes); UserError when malformed."""
    number = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = number[-1:] if number[-1:] in SIZE_UNITS else ""
    try:
        return int(float(number.removesuffix(unit)) * SIZE_UNITS[unit])
    except ValueError:
        raise UserError(f"invalid size {text!r}; use bytes or K, M, G, T as in 10G") from None


def default_cache_dir() -> Path:
    """Return $LKFT_CACHE_DIR, else $XDG_CACHE_HOME/lkft, else ~/.cache/lkft."""
    if os.environ.get("LKFT_CACHE_DIR"):
        return Path(os.environ["LKFT_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lkft"
    return Path.home() / ".cache" / "lkft"


def local_path(source: str) -> Path | None:
    """Return the path a local path or file:// URL names, None for other URLs."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if "://" not in source:
        return Path(source).expanduser()
    return None


def lock_file(path: Path, operation: int) -> int | None:
    """Open `path` and flock it; None when LOCK_NB was asked and someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def locked(path: Path, operation: int) -> Iterator[bool]:
    """Hold a flock on `path` for the block; yield False if LOCK_NB found it busy."""
    fd = lock_file(path, operation)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def read_json(path: Path) -> Meta | None:
    """Read a JSON object, None when missing or unreadable (a crash mid-write)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Meta) -> None:
    """Write JSON atomically (see `pytest_lkft.files.write_atomically`)."""
    write_atomically(path, json.dumps(data, indent=1, sort_keys=True))


def hash_file(path: Path) -> str:
    """Return the sha256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


class Entry:
    """The files of one cached URL; see the module docstring for the layout."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url, self.dir = url, directory
        self.data, self.part = directory / "data", directory / "data.part"
        self.meta_path, self.part_meta_path = directory / "meta.json", directory / "part.json"
        self.lock_path, self.use_path = directory / "lock", directory / "use"

    @classmethod
    def for_url(cls, root: Path, url: str) -> Entry:
        """Return the entry of `url` under `root`, creating its directory."""
        entry = cls(url, root / "entries" / hashlib.sha256(url.encode()).hexdigest())
        entry.dir.mkdir(parents=True, exist_ok=True)
        return entry

    def valid_meta(self) -> Meta | None:
        """Return meta.json if the data file is complete and untouched since it was written."""
        meta = read_json(self.meta_path)
        try:
            stat = self.data.stat()
        except OSError:
            return None
        if meta is None or meta.get("url") != self.url:
            return None
        if (stat.st_size, stat.st_mtime_ns) != (meta.get("size"), meta.get("mtime_ns")):
            return None  # truncated or modified after download: fetch it again
        return meta

    def part_info(self) -> Meta | None:
        """Return what the running download knows (total, validators), None before headers."""
        info = read_json(self.part_meta_path)
        return info if info is not None and info.get("url") == self.url else None

    def remove(self) -> None:
        """Delete the artifact, keeping the lock files so that no lock ever changes inode."""
        for path in (self.data, self.meta_path, self.part, self.part_meta_path):
            path.unlink(missing_ok=True)
