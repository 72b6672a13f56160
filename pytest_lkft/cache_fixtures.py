"""The pytest side of the artifact cache: options, the `lkft_artifact` fixture, a summary line.

plugin.py wires these: `add_options(group)` in pytest_addoption, `cache_from_config(config)`
in pytest_configure (the session's counters start there, so the controller's summary covers
every xdist worker), `lkft_artifact` as a fixture, `summary_line(cache)` in
pytest_terminal_summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_lkft.artifacts import (
    ArtifactCache,
    Progress,
    ProgressCallback,
    default_cache_dir,
    format_size,
    parse_size,
)
from pytest_lkft.errors import UserError
from pytest_lkft.terminal import terminal

CACHE_KEY = pytest.StashKey[ArtifactCache]()
CACHE_DIR_HELP = "Artifact cache directory (default $LKFT_CACHE_DIR, else ~/.cache/lkft)"
CACHE_URL_HELP = "KissCache URL prefix, e.g. http://host:8001/api/v1/fetch/?url=%%s"
CACHE_MAX_SIZE_HELP = "Evict least recently used artifacts beyond this size, e.g. 20G"

Fetch = Callable[..., Path]


def add_options(group: pytest.OptionGroup) -> None:
    """Add --lkft-cache-dir, --lkft-cache-url and --lkft-cache-max-size to the lkft group."""
    group.addoption("--lkft-cache-dir", dest="lkft_cache_dir", metavar="DIR", default=None,
                    help=CACHE_DIR_HELP)
    group.addoption("--lkft-cache-url", dest="lkft_cache_url", metavar="PREFIX", default=None,
                    help=CACHE_URL_HELP)
    group.addoption("--lkft-cache-max-size", dest="lkft_cache_max_size", metavar="SIZE",
                    default=None, help=CACHE_MAX_SIZE_HELP)


def resolve(config: pytest.Config, dest: str, env: str) -> tuple[str | None, str]:
    """Return an option's value, CLI before the LKFT_* environment, and where it came from."""
    value = config.getoption(dest, default=None)
    if value is not None:
        return str(value), f"--{dest.replace('_', '-')}"
    return os.environ.get(env) or None, f"{env} environment variable"


def cache_from_config(config: pytest.Config) -> ArtifactCache:
    """Return the session's ArtifactCache, made once from the options and LKFT_* variables."""
    if CACHE_KEY in config.stash:
        return config.stash[CACHE_KEY]
    root, _ = resolve(config, "lkft_cache_dir", "LKFT_CACHE_DIR")
    url, url_source = resolve(config, "lkft_cache_url", "LKFT_CACHE_URL")
    size, size_source = resolve(config, "lkft_cache_max_size", "LKFT_CACHE_MAX_SIZE")
    try:
        max_size = parse_size(size) if size is not None else None
    except UserError:
        raise pytest.UsageError(
            f"invalid cache size {size!r} from {size_source}; use bytes or K, M, G, T as in 20G"
        ) from None
    try:
        cache = ArtifactCache(Path(root) if root else default_cache_dir(), cache_url=url,
                              max_size=max_size, progress=terminal_progress(config))
    except UserError as error:
        raise pytest.UsageError(f"{error} (from {url_source})") from None
    config.stash[CACHE_KEY] = cache
    config.add_cleanup(cache.close)
    return cache


def terminal_progress(config: pytest.Config) -> ProgressCallback | None:
    """Show download progress on the terminal (controller only; any thread, see `terminal`)."""
    if hasattr(config, "workerinput"):
        return None

    def show(progress: Progress) -> None:
        if config.pluginmanager.get_plugin("terminalreporter") is None:  # -p no:terminal
            return
        if progress.finished:
            terminal(config).line(progress.format())
        else:
            terminal(config).rewrite(progress.format())

    return show


@pytest.fixture(scope="session")
def lkft_artifact(pytestconfig: pytest.Config) -> Iterator[Fetch]:
    """Return `fetch(url, sha256=None) -> Path`: every artifact goes through the cache."""
    cache = cache_from_config(pytestconfig)
    yield cache.fetch


def summary_line(cache: ArtifactCache) -> str:
    """Say what this session fetched against what it served, e.g. for the terminal summary."""
    stats = cache.session_stats()
    return (f"lkft cache: {format_size(stats['upstream_bytes'])} fetched upstream, "
            f"{format_size(stats['served_bytes'])} served")
