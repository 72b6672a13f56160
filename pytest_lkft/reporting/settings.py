"""Reporting settings (`--lkft-store`, `--lkft-squad-*`, `--lkft-known-issues`), resolved once.

Each value comes from the command line, else its `LKFT_*` environment variable, else a
default (`pytest_lkft.settings.options`). The SQUAD token is only ever read from
`LKFT_SQUAD_TOKEN`, never an option, so it cannot leak into `ps`, logs, metadata or JUnit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lkft.artifacts.entry import default_cache_dir
from pytest_lkft.errors import UserError
from pytest_lkft.reporting import knownissues
from pytest_lkft.reporting.knownissues import KnownIssue
from pytest_lkft.settings.options import Resolver

STORE_FILE = "store.sqlite3"
DEFAULT_GROUP = "lkft"
DEFAULT_PROJECT_NAME = "local"
SQUAD_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

def default_store_path() -> Path:
    """Where the embedded store lives unless --lkft-store says otherwise."""
    if os.environ.get("LKFT_STORE"):
        return Path(os.environ["LKFT_STORE"])
    return default_cache_dir() / STORE_FILE


def default_project() -> str:
    """The `group/project` used when none is given."""
    return f"{DEFAULT_GROUP}/{DEFAULT_PROJECT_NAME}"


def spool_dir() -> Path:
    """Where submissions that could not reach SQUAD wait for `lkft push`."""
    return default_cache_dir() / "squad-spool"


@dataclass(frozen=True)
class Settings:
    """Reporting settings, resolved once in pytest_configure."""

    store: Path
    squad_url: str = ""
    group: str = DEFAULT_GROUP
    project: str = DEFAULT_PROJECT_NAME
    build: str = ""
    environment: str = ""
    known_issues: list[KnownIssue] = field(default_factory=list)
    job_url: str = ""


def check_name(value: str, where: str) -> str:
    """Refuse a SQUAD group/project name SQUAD would silently truncate."""
    if value and not SQUAD_NAME.match(value):
        raise UserError(
            f"invalid SQUAD name {value!r} from {where}; use letters, digits, '_', '.', '-'"
        )
    return value


def resolve(options: Resolver) -> Settings:
    """Resolve every reporting option once; raise UserError naming a bad value's source."""
    url = options.value("lkft_squad_url")
    if url and not str(url.value).startswith(("http://", "https://")):
        raise UserError(f"invalid SQUAD URL {url.value!r} from {url.origin}; expected "
                        "http(s)://HOST/")
    group, project = options.value("lkft_squad_group"), options.value("lkft_squad_project")
    store, issues = options.value("lkft_store").value, options.value("lkft_known_issues").value
    return Settings(
        store=Path(store) if store else default_store_path(),
        squad_url=(url.value or "").rstrip("/"),
        group=check_name(group.value or "", group.origin) or DEFAULT_GROUP,
        project=check_name(project.value or "", project.origin) or DEFAULT_PROJECT_NAME,
        build=options.value("lkft_squad_build").value or "",
        environment=options.value("lkft_squad_environment").value or "",
        known_issues=knownissues.load(issues) if issues else [],
        job_url=os.environ.get("CI_JOB_URL") or os.environ.get("BUILD_URL") or "",
    )
