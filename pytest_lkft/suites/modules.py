"""The modules suite's staging: the module names of the --lkft-modules tarball."""

from __future__ import annotations

import pytest

from pytest_lkft.errors import LkftError
from pytest_lkft.provision.rootfs import module_names
from pytest_lkft.pytestplugin.cache import local_file
from pytest_lkft.pytestplugin.options import SETTINGS_KEY


def modules_under_test(config: pytest.Config) -> list[str]:
    """Module names of the --lkft-modules tarball (fetched now if it is a URL), sorted."""
    source = config.stash[SETTINGS_KEY].modules
    if not source:
        return []
    try:
        path = local_file(config, source)
        return module_names(path)
    except LkftError as error:  # one line, not a collection traceback
        pytest.fail(f"--lkft-modules {source}: {error}", pytrace=False)
