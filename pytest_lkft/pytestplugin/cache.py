"""The pytest side of the artifact cache: options, the `lkft_artifact` fixture, a summary line.

plugin.py wires these: `add_options(group)` in pytest_addoption, `cache_from_config(config)`
in pytest_configure (the session's counters start there, so the controller's summary covers
every xdist worker), `lkft_artifact` as a fixture, `summary_line(cache)` in
pytest_terminal_summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_lkft.artifacts.cache import (
    ArtifactCache,
    Progress,
    ProgressCallback,
    default_cache_dir,
    format_size,
    parse_size,
)
from pytest_lkft.errors import UserError
from pytest_lkft.pytestplugin.options import add_to_group, resolver
from pytest_lkft.pytestplugin.terminal import terminal
from pytest_lkft.settings.device import is_url
from pytest_lkft.settings.options import OPTIONS

CACHE_KEY = pytest.StashKey[ArtifactCache]()
Fetch = Callable[..., Path]


def add_options(group: pytest.OptionGroup) -> None:
    """Add the cache's options alone (the cache used without the rest of the plugin)."""
    add_to_group(group, [option for option in OPTIONS if option.dest.startswith("lkft_cache")])


def cache_from_config(config: pytest.Config) -> ArtifactCache:
    """Return the session's ArtifactCache, made once from the options and LKFT_* variables."""
    if CACHE_KEY in config.stash:
        return config.stash[CACHE_KEY]
    options = resolver(config)
    root = options.value("lkft_cache_dir").value
    url, size = options.value("lkft_cache_url"), options.value("lkft_cache_max_size")
    try:
        max_size = parse_size(size.value) if size else None
    except UserError:
        raise pytest.UsageError(
            f"invalid cache size {size.value!r} from {size.origin}; use bytes or K, M, G, T as "
            "in 20G") from None
    try:
        cache = ArtifactCache(Path(root) if root else default_cache_dir(), cache_url=url.value,
                              max_size=max_size, progress=terminal_progress(config))
    except UserError as error:
        raise pytest.UsageError(f"{error} (from {url.origin})") from None
    config.stash[CACHE_KEY] = cache
    config.add_cleanup(cache.close)
    return cache


def terminal_progress(config: pytest.Config) -> ProgressCallback | None:
    """Show download progress on the terminal (controller only; any thread, see `terminal`):
    a line rewritten in place on a tty, gone when the download ends; a line a report
    elsewhere, the last one saying `fetched`."""
    if hasattr(config, "workerinput"):
        return None

    def show(progress: Progress) -> None:
        if config.pluginmanager.get_plugin("terminalreporter") is None:  # -p no:terminal
            return
        screen = terminal(config)
        if not progress.finished:
            screen.rewrite(progress.format())
        elif screen.tty:  # a progress line goes away (issue 17); the summary says the bytes
            screen.end_progress()
        else:
            screen.line(progress.format())

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


def local_file(config: pytest.Config, value: str) -> Path:
    """An option's file: fetched through the session's cache when it is a URL."""
    if is_url(value):
        return config.stash[CACHE_KEY].fetch(value)
    return Path(value)
