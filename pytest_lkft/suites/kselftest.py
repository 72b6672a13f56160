"""The kselftest suites' staging: the --lkft-kselftest install, or the build's collections.

A tarball that cannot be used is not an error of the run: it is `Unusable`, with the one
line that the kselftest suite reports, and the other suites still run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_lkft.errors import LkftError
from pytest_lkft.provision.kselftest import KselftestInstall, read_install
from pytest_lkft.pytestplugin.build import BUILD_SETTINGS_KEY
from pytest_lkft.pytestplugin.cache import local_file
from pytest_lkft.pytestplugin.options import SETTINGS_KEY


@dataclass(frozen=True)
class Unusable:
    """Why the --lkft-kselftest tarball cannot be used, in one line."""

    reason: str

    def __str__(self) -> str:
        return self.reason


KSELFTEST_KEY = pytest.StashKey["KselftestInstall | Unusable"]()


def install(config: pytest.Config) -> KselftestInstall | Unusable | None:
    """The --lkft-kselftest install (fetched now if it is a URL), or one line saying why it
    cannot be used; None without the option. Read once per process."""
    source = config.stash[SETTINGS_KEY].kselftest
    if not source:
        return None
    if KSELFTEST_KEY not in config.stash:
        config.stash[KSELFTEST_KEY] = _read_kselftest(config, source)
    return config.stash[KSELFTEST_KEY]


def _read_kselftest(config: pytest.Config, source: str) -> KselftestInstall | Unusable:
    shown = f"{config.stash[SETTINGS_KEY].source('lkft_kselftest')} {source}"
    try:
        path = local_file(config, source)
        if not path.is_file():
            return Unusable(f"{shown}: no such file; check the path or give a URL")
        return read_install(path, shown)
    except LkftError as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return Unusable(text if text.startswith(shown) else f"{shown}: {text}")


def collections(config: pytest.Config) -> list[str]:
    """The kselftest collections to run: those the --lkft-kselftest tarball lists, else
    those the kernel build makes (its TARGETS make variable)."""
    found = install(config)
    if found is not None:
        return list(found.collections) if isinstance(found, KselftestInstall) else []
    build = config.stash.get(BUILD_SETTINGS_KEY, None)
    if build is None or "kselftest" not in build.targets:
        return []
    return sorted(dict(build.make_vars).get("TARGETS", "").split())
