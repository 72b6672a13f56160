"""The case lists of parsed suites, kept between runs under `<cache>/caselists/`.

pytest wants its items before the run, so each parsed suite remembers the cases its last
run saw, keyed by what was booted; the next collection makes an item of each.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pytest_lkft.files import write_atomically
from pytest_lkft.run.suite import SuiteRun


def list_key(*paths: Path | None) -> str:
    """A key for what was booted: the files' names, sizes and times (cheap, stable)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is not None and path.exists():
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def known_cases(cache_root: Path, suite: str, key: str) -> list[str]:
    """The case names the last run of `suite` on the same artifacts reported, sorted.

    `suite` may be a glob (`kselftest-*`): the union of the matching suites' lists.
    """
    names: set[str] = set()
    for path in (cache_root / "caselists").glob(f"{suite}-{key}.json"):
        try:
            names.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a list we cannot read is a list we do not know
    return sorted(names)


def remember_cases(cache_root: Path, suite: str, key: str, run: SuiteRun) -> None:
    """Keep the case names of this run for the next collection (atomic write)."""
    if not run.cases:
        return
    path = cache_root / "caselists" / f"{suite}-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(sorted(run.cases)))
