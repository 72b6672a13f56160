"""What suites lay over the rootfs before a device boots: the staging extension point.

A `Stage` looks at the run's settings and gives cpio overlays (gzip'd `newc` archives the
kernel unpacks after the rootfs, see `pytest_lkft.provision.rootfs`) and the metadata that
says what it laid in. The built-in stages are the modules tarball, the kselftest install
and LTP; a suite that needs files on the device adds one stage (a plugin returns it from
the `pytest_lkft_stages` hook). Recipe: docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_lkft.provision.disk import Tree
from pytest_lkft.settings.device import Settings
from pytest_lkft.settings.devices import QemuSpec

Getter = Callable[["str | None"], "Path | None"]


@dataclass(frozen=True)
class StageContext:
    """What a stage may use: the settings, the device, a getter and the cache.

    `get(value)` turns an option's value into a local path (a URL is fetched through the
    artifact cache; None stays None). Overlays are written under `cache_root`, keyed by
    their content, so they are made once.
    """

    settings: Settings
    spec: QemuSpec
    get: Getter
    cache_root: Path


@dataclass
class Staged:
    """A stage's output: overlays in order, and metadata (`lkft.meta.*` of every case).

    `trees` are whole directories laid into the rootfs (an LTP install): the rootfs then
    goes onto a disk (`pytest_lkft.provision.disk`), as RAM cannot hold every test set.
    """

    overlays: list[Path]
    metadata: dict[str, str]
    trees: list[Tree] = field(default_factory=list)


class Stage(Protocol):
    """Something laid over the rootfs; `stage` returns None when it has nothing to add."""

    name: str

    def stage(self, context: StageContext) -> Staged | None: ...
