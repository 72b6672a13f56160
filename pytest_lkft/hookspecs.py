"""Hooks through which other plugins (or a conftest.py) extend pytest-lkft.

Added in `pytest_addhooks`, as xdist adds its own (`newhooks.py`). Each returns a list;
pytest-lkft concatenates the lists of every implementation, a conftest's first, then its
own built-in ones (implemented `trylast`), so a plugin's entry wins over a built-in one.
See docs/architecture.md for a recipe per extension point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_lkft.parsers.formats import Format
    from pytest_lkft.provision.stages import Stage
    from pytest_lkft.pytestplugin.devicekinds import DeviceKind
    from pytest_lkft.reporting.settings import Settings as ReportingSettings
    from pytest_lkft.reporting.sinks import ResultSink


@pytest.hookspec
def pytest_lkft_device_kinds(config: pytest.Config) -> list[DeviceKind]:
    """Kinds of device the `device` fixture can make (QEMU, labgrid boards, LAVA...).

    The first kind that claims a `--lkft-device` name makes its devices.
    """
    raise NotImplementedError


@pytest.hookspec
def pytest_lkft_formats(config: pytest.Config) -> list[Format]:
    """Results formats to add to the parsers' registry (`pytest_lkft.parsers.formats`)."""
    raise NotImplementedError


@pytest.hookspec
def pytest_lkft_result_sinks(config: pytest.Config,
                             settings: ReportingSettings) -> list[ResultSink]:
    """Where a run's results go at the session's end (the store, SQUAD, ...)."""
    raise NotImplementedError


@pytest.hookspec
def pytest_lkft_stages(config: pytest.Config) -> list[Stage]:
    """What a suite lays over the rootfs before the boot (`pytest_lkft.provision.stages`)."""
    raise NotImplementedError
