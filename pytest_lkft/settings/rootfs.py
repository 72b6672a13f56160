"""The Debian rootfs recipe (`debian-rootfs.yaml`) and what suites need (`suite-needs.yaml`).

Data, not code: a suite's Debian packages, the commands it runs, the kernel options and
modules it needs. `--lkft-rootfs=debian` builds a rootfs with the packages of the suites
a run selects; a suite whose needs the device lacks is skipped, naming what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

from pytest_lkft.errors import UserError
from pytest_lkft.settings.tables import (
    data_path,
    depends_on_lab_dir,
    expect,
    make_entry,
    read_table,
)

RECIPE_FILE = "debian-rootfs.yaml"
NEEDS_FILE = "suite-needs.yaml"
KEYWORD = "debian"  # --lkft-rootfs=debian, or debian:ext4 / debian:cpio
FORMATS = ("ext4", "cpio")


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of names")
    return tuple(value)


CONVERT = {key: _names for key in ("packages", "commands", "kconfig", "modules", "exclude")}


@dataclass(frozen=True)
class SuiteNeeds:
    """What one suite needs from the device."""

    name: str
    packages: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    kconfig: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    fragment: str | None = None  # the packaged kconfig fragment that adds `kconfig`


@dataclass(frozen=True)
class DebianRecipe:
    """The release, base packages and excluded paths of every Debian rootfs."""

    release: str
    packages: tuple[str, ...]
    exclude: tuple[str, ...] = ()


@depends_on_lab_dir
@cache
def load_recipe(path: Path | None = None) -> DebianRecipe:
    """The packaged (or --lkft-lab-dir) `debian-rootfs.yaml`."""
    path = path or data_path(RECIPE_FILE)
    return make_entry(DebianRecipe, path, "recipe",
                      expect(path, read_table(path), dict, "the file"), CONVERT)


@depends_on_lab_dir
@cache
def load_needs(path: Path | None = None) -> dict[str, SuiteNeeds]:
    """The packaged (or --lkft-lab-dir) `suite-needs.yaml`, by suite."""
    path = path or data_path(NEEDS_FILE)
    data = expect(path, read_table(path), dict, "the file")
    return {name: make_entry(SuiteNeeds, path, name, entry or {}, CONVERT)
            for name, entry in data.items()}


def selected_needs(patterns: Iterable[str]) -> list[SuiteNeeds]:
    """The needs of the suites `patterns` select (--lkft-tests globs; none: every suite)."""
    wanted = tuple(suite_part(pattern) for pattern in patterns)
    return [needs for name, needs in sorted(load_needs().items())
            if not wanted or any(fnmatchcase(name, pattern) for pattern in wanted)]


def suite_part(pattern: str) -> str:
    """The suite of an --lkft-tests value: `kunit/list-*` names `kunit`."""
    return pattern.partition("/")[0]


def suite_fragments(patterns: Iterable[str]) -> tuple[str, ...]:
    """The kconfig fragments of the suites `patterns` name (--lkft-tests globs), in the
    patterns' order, each once: what a kernel the plugin builds gets for them. None when no
    pattern is given: every suite runs then, and none was asked for."""
    found: list[str] = []
    for pattern in map(suite_part, patterns):
        for name, needs in sorted(load_needs().items()):
            if needs.fragment and fnmatchcase(name, pattern) and needs.fragment not in found:
                found.append(needs.fragment)
    return tuple(found)


def suite_needs(suite: str) -> SuiteNeeds:
    """What `suite` needs; nothing for a suite the table does not name."""
    return load_needs().get(suite, SuiteNeeds(suite))


def debian_format(rootfs: str | None) -> str | None:
    """`ext4` or `cpio` when `rootfs` asks for the Debian rootfs (`debian[:FORMAT]`), else
    None; UserError for an unknown format."""
    if rootfs is None:
        return None
    name, _, kind = rootfs.partition(":")
    if name != KEYWORD:
        return None
    if kind and kind not in FORMATS:
        raise UserError(f"--lkft-rootfs {rootfs}: unknown format {kind!r}; use "
                        f"{KEYWORD}, {KEYWORD}:ext4 or {KEYWORD}:cpio")
    return kind or "ext4"
