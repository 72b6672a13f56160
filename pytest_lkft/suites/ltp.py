"""The ltp-* suites' staging: the tags each runtest file is to report, those the host reports
as skips (the skipfile's), and the rootfs's runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lkft.build.ltp import LtpSource, choose_runtests, missing_defaults
from pytest_lkft.errors import LkftError
from pytest_lkft.provision import ltp
from pytest_lkft.pytestplugin.cache import local_file
from pytest_lkft.pytestplugin.options import LTP_MISSING_KEY, SETTINGS_KEY

LTP_KEY = pytest.StashKey[dict[str, list[str]]]()
TEXTS_KEY = pytest.StashKey[dict[str, str]]()  # `ltp-<runtest>` -> the runtest file
SKIPPED_KEY = pytest.StashKey[dict[str, dict[str, str]]]()


def cases(config: pytest.Config) -> dict[str, list[str]]:
    """`ltp-<runtest>` -> the tags its run is to report (the shard's), from --lkft-ltp or
    the runtest files of --lkft-ltp-src (read in place, before anything is built).

    Read once per process (the tarball is fetched now if it is a URL); a runtest file
    asked for but missing is one line naming it and the files the tarball has. Without
    either, each --lkft-ltp-runtest name is a suite of the rootfs's own LTP whose
    tags are learned from its first run (none promised).
    """
    if LTP_KEY not in config.stash:
        config.stash[LTP_KEY] = _plans(config)
    return config.stash[LTP_KEY]


def _plans(config: pytest.Config) -> dict[str, list[str]]:
    """The plans of the runtest files to run (see `cases`)."""
    settings = config.stash[SETTINGS_KEY]
    given = settings.ltp or settings.ltp_src
    if not given:
        return {f"ltp-{name}": [] for name in settings.ltp_runtest}
    try:
        texts = runtest_texts(local_file(config, given), given, bool(settings.ltp))
        names = choose_runtests(list(texts), settings.ltp_runtest, given)
    except LkftError as error:  # one line, not a collection traceback
        pytest.fail(str(error), pytrace=False)
    if not settings.ltp_runtest:
        config.stash[LTP_MISSING_KEY] = missing_defaults(list(texts))
    config.stash[TEXTS_KEY] = {f"ltp-{name}": texts[name] for name in names}
    return {f"ltp-{name}": [tag for tag, _ in ltp.plan(texts[name], settings.ltp_shard)]
            for name in names}


def skipped(config: pytest.Config) -> dict[str, dict[str, str]]:
    """`ltp-<runtest>` -> {tag: reason} for the shard's tags in --lkft-ltp-skipfile: the
    host reports them as skips, the device never runs them (see `provision.ltp`). Empty
    with the rootfs's own LTP, whose runner reports them (its runtest files are on the
    device)."""
    if SKIPPED_KEY not in config.stash:
        config.stash[SKIPPED_KEY] = _skipped(config)
    return config.stash[SKIPPED_KEY]


def _skipped(config: pytest.Config) -> dict[str, dict[str, str]]:
    """See `skipped`."""
    settings = config.stash[SETTINGS_KEY]
    cases(config)  # reads the runtest files
    texts = config.stash.get(TEXTS_KEY, {})
    if not texts or not settings.ltp_skipfile:
        return {}
    try:
        skips = ltp.read_skipfile(local_file(config, settings.ltp_skipfile))
    except LkftError as error:  # one line, not a fixture traceback
        pytest.fail(str(error).splitlines()[0], pytrace=False)
    label = ltp.skipfile_label(settings.ltp_skipfile)
    return {suite: {tag: ltp.skip_reason(tag, label)
                    for tag in ltp.skipped(text, settings.ltp_shard, skips)}
            for suite, text in texts.items()}


def runtest_texts(path: Path, shown: str, installed: bool) -> dict[str, str]:
    """The runtest files of an install tarball (`installed`) or of an LTP source."""
    if installed:
        return ltp.runtest_files(path)
    source = LtpSource(path.resolve(), shown)
    source.check()
    return source.runtest_texts()


def setup(config: pytest.Config) -> str | None:
    """The command that readies a device for the rootfs's LTP (runner, shard, skipfile
    tags; see `pytest_lkft.provision.ltp.rootfs_setup`); None with --lkft-ltp (the overlay
    has it)."""
    settings = config.stash[SETTINGS_KEY]
    if settings.ltp or settings.ltp_src or not settings.ltp_runtest:
        return None
    skipfile = settings.ltp_skipfile
    try:
        skips = ltp.read_skipfile(local_file(config, skipfile)) if skipfile else []
    except LkftError as error:  # one line, not a fixture traceback
        pytest.fail(str(error).splitlines()[0], pytrace=False)
    return ltp.rootfs_setup(settings, skips)
