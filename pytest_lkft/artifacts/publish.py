"""Local files published under the artifact cache, for a remote lab to fetch by URL.

A local file (the Debian kernel, the busybox initramfs, a build's Image) is published
under the cache, content-addressed:

    <cache>/published/<sha256>/<file name>

and the lab fetches it as `<base>/<sha256>/<file name>`, where `<base>` is the cache
server's route (`lkft cache serve`, or a server the plugin starts for a run:
`http://HOST:PORT/lkft/artifacts`), or a base URL the user serves that directory at. An
artifact given as a URL goes to the lab as it is, through the KissCache prefix when one
is set (`lab_url`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.parse
from pathlib import Path

from pytest_lkft.artifacts.entry import hash_file
from pytest_lkft.files import partial_path, write_atomically

PUBLISHED = "published"
ROUTE = "/lkft/artifacts/"  # the cache server's path for published files


def lab_url(url: str, kisscache: str | None) -> str:
    """A remote artifact's URL as the lab should fetch it (through KissCache if given).

    LAVA names a download after the last part of its URL's path and refuses one that
    ends in `/`, as `.../api/v1/fetch/?url=%s` does: the file's own name goes there
    (`.../api/v1/fetch/Image?url=...`, which the cache server, like KissCache, serves).
    """
    if not kisscache:
        return url
    base, question, query = kisscache.partition("?")
    name = urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2]
    if base.endswith("/") and question and name:
        kisscache = f"{base}{urllib.parse.quote(name).replace('%', '%%')}?{query}"
    return kisscache % urllib.parse.quote(url, safe="")


class Publisher:
    """Publishes local files under `<cache>/published/` for the lab to fetch from `base`."""

    def __init__(self, cache_root: Path, base: str) -> None:
        self.root = cache_root / PUBLISHED
        self.base = base.rstrip("/")
        self._known: dict[tuple[str, int, int], str] = {}

    def publish(self, path: Path) -> str:
        """The URL the lab fetches `path` from (published once per content)."""
        digest = self._digest(path)
        target = self.root / digest / path.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = partial_path(target)
            try:
                os.link(path, partial)
            except OSError:  # another filesystem, or links refused
                shutil.copyfile(path, partial)
            os.replace(partial, target)
        return f"{self.base}/{digest}/{urllib.parse.quote(path.name)}"

    def _digest(self, path: Path) -> str:
        """sha256 of the file, remembered by path, size and time (here and on disk)."""
        stat = path.resolve().stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._known:
            index = self.root / "index" / hashlib.sha256(repr(key).encode()).hexdigest()
            try:
                self._known[key] = index.read_text().strip()
            except OSError:
                self._known[key] = hash_file(path)
                index.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(index, self._known[key])
        return self._known[key]


def published_file(cache_root: Path, request_path: str) -> Path | None:
    """The published file a server path `/lkft/artifacts/<sha256>/<name>` names, or None."""
    rest = urllib.parse.unquote(request_path.removeprefix(ROUTE))
    digest, _, name = rest.partition("/")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    if not name or "/" in name or name in (".", ".."):
        return None
    path = cache_root / PUBLISHED / digest / name
    return path if path.is_file() else None
