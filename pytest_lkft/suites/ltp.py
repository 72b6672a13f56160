"""The ltp-* suites' staging: the tags each runtest file is to report, and the rootfs's runner."""

from __future__ import annotations

import pytest

from pytest_lkft.errors import LkftError
from pytest_lkft.provision import ltp
from pytest_lkft.pytestplugin.cache import local_file
from pytest_lkft.pytestplugin.options import SETTINGS_KEY

LTP_KEY = pytest.StashKey[dict[str, list[str]]]()


def cases(config: pytest.Config) -> dict[str, list[str]]:
    """`ltp-<runtest>` -> the tags its run is to report (the shard's), from --lkft-ltp.

    Read once per process (the tarball is fetched now if it is a URL); a runtest file
    asked for but missing is one line naming it and the files the tarball has. Without
    --lkft-ltp, each --lkft-ltp-runtest name is a suite of the rootfs's own LTP whose
    tags are learned from its first run (none promised).
    """
    if LTP_KEY not in config.stash:
        config.stash[LTP_KEY] = _plans(config)
    return config.stash[LTP_KEY]


def _plans(config: pytest.Config) -> dict[str, list[str]]:

    settings = config.stash[SETTINGS_KEY]
    if not settings.ltp:
        return {f"ltp-{name}": [] for name in settings.ltp_runtest}
    try:
        texts = ltp.runtest_files(local_file(config, settings.ltp))
        names = ltp.choose_runtests(list(texts), settings.ltp_runtest, settings.ltp)
    except LkftError as error:  # one line, not a collection traceback
        pytest.fail(str(error), pytrace=False)
    return {f"ltp-{name}": [tag for tag, _ in ltp.plan(texts[name], settings.ltp_shard)]
            for name in names}


def setup(config: pytest.Config) -> str | None:
    """The command that readies a device for the rootfs's LTP (runner, shard, skipfile
    tags; see `pytest_lkft.provision.ltp.rootfs_setup`); None with --lkft-ltp (the overlay
    has it)."""

    settings = config.stash[SETTINGS_KEY]
    if settings.ltp or not settings.ltp_runtest:
        return None
    skipfile = settings.ltp_skipfile
    try:
        skips = ltp.read_skipfile(local_file(config, skipfile)) if skipfile else []
    except LkftError as error:  # one line, not a fixture traceback
        pytest.fail(str(error).splitlines()[0], pytrace=False)
    return ltp.rootfs_setup(settings.ltp_shard, skips, ltp.skipfile_label(skipfile or ""))
