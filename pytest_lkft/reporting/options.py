"""Reporting options (`--lkft-store`, `--lkft-squad-*`, `--lkft-known-issues`), resolved once.

Each value comes from the command line, else its `LKFT_*` environment variable, else a
default. The SQUAD token is only ever read from `LKFT_SQUAD_TOKEN`, never an option, so it
cannot leak into `ps`, logs, metadata or JUnit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lkft.artifacts import default_cache_dir
from pytest_lkft.errors import UserError
from pytest_lkft.reporting import knownissues
from pytest_lkft.reporting.knownissues import KnownIssue

if TYPE_CHECKING:
    import pytest

STORE_FILE = "store.sqlite3"
DEFAULT_GROUP = "lkft"
DEFAULT_PROJECT_NAME = "local"
TOKEN_ENV = "LKFT_SQUAD_TOKEN"
REPORTER_NAME = "lkft-reporter"
SQUAD_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

# (option, dest, environment variable, help)
OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--lkft-store", "lkft_store", "LKFT_STORE", "Embedded results store (SQLite file)"),
    ("--lkft-squad-url", "lkft_squad_url", "LKFT_SQUAD_URL",
     f"SQUAD server to submit results to; token from ${TOKEN_ENV}"),
    ("--lkft-squad-group", "lkft_squad_group", "LKFT_SQUAD_GROUP",
     f"SQUAD group (default {DEFAULT_GROUP})"),
    ("--lkft-squad-project", "lkft_squad_project", "LKFT_SQUAD_PROJECT",
     f"SQUAD project (default {DEFAULT_PROJECT_NAME})"),
    ("--lkft-squad-build", "lkft_squad_build", "LKFT_SQUAD_BUILD",
     "SQUAD build (default the kernel version, else `git describe`)"),
    ("--lkft-squad-environment", "lkft_squad_environment", "LKFT_SQUAD_ENVIRONMENT",
     "SQUAD environment (default the device name)"),
    ("--lkft-known-issues", "lkft_known_issues", "LKFT_KNOWN_ISSUES",
     "YAML file of known issues: matching failures become xfail"),
)


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


def add_options(group: pytest.OptionGroup) -> None:
    """Add the reporting options to the plugin's `lkft` option group."""
    for option, dest, env, help_text in OPTIONS:
        group.addoption(option, dest=dest, default=None, metavar=dest.split("_")[-1].upper(),
                        help=f"{help_text} [env {env}]")


def resolve(config: pytest.Config, dest: str, env: str) -> tuple[str, str]:
    """Return (value, where it came from) for one option: CLI, then environment."""
    value = config.getoption(dest, default=None)
    if value:
        return str(value), "--" + dest.replace("_", "-")
    if os.environ.get(env):
        return os.environ[env], f"{env} environment variable"
    return "", ""


def check_name(value: str, where: str) -> str:
    """Refuse a SQUAD group/project name SQUAD would silently truncate."""
    if value and not SQUAD_NAME.match(value):
        raise UserError(
            f"invalid SQUAD name {value!r} from {where}; use letters, digits, '_', '.', '-'"
        )
    return value


def settings_from(config: pytest.Config) -> Settings:
    """Resolve every reporting option once; raise UserError naming a bad value's source."""
    got = {dest: resolve(config, dest, env) for _, dest, env, _ in OPTIONS}
    url, url_from = got["lkft_squad_url"]
    if url and not url.startswith(("http://", "https://")):
        raise UserError(f"invalid SQUAD URL {url!r} from {url_from}; expected http(s)://HOST/")
    issues_path, _ = got["lkft_known_issues"]
    return Settings(
        store=Path(got["lkft_store"][0]) if got["lkft_store"][0] else default_store_path(),
        squad_url=url.rstrip("/"),
        group=check_name(got["lkft_squad_group"][0], got["lkft_squad_group"][1]) or DEFAULT_GROUP,
        project=check_name(*got["lkft_squad_project"]) or DEFAULT_PROJECT_NAME,
        build=got["lkft_squad_build"][0],
        environment=got["lkft_squad_environment"][0],
        known_issues=knownissues.load(issues_path) if issues_path else [],
        job_url=os.environ.get("CI_JOB_URL") or os.environ.get("BUILD_URL") or "",
    )


def configure(config: pytest.Config) -> None:
    """Resolve the settings and register the reporter, on the xdist controller only."""
    import pytest

    from pytest_lkft.reporting.reporter import LkftReporter

    if hasattr(config, "workerinput") or config.pluginmanager.has_plugin(REPORTER_NAME):
        return
    try:
        settings = settings_from(config)
    except UserError as error:
        raise pytest.UsageError(str(error)) from error
    config.pluginmanager.register(LkftReporter(config, settings), REPORTER_NAME)
