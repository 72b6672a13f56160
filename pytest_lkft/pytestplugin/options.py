"""The `--lkft-*` options on pytest's parser, and their resolution from a pytest config.

The table is `pytest_lkft.settings.options.OPTIONS`; this module only adds it to pytest
(one `lkft` group, ini keys) and builds the `Resolver` the stages read their values from.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_lkft.settings import tables
from pytest_lkft.settings.device import Settings
from pytest_lkft.settings.options import OPTIONS, Option, Resolver

SETTINGS_KEY = pytest.StashKey[Settings]()
LTP_MISSING_KEY = pytest.StashKey[list[str]]()  # LKFT's runtest files the given LTP lacks
GROUP = ("lkft", "Linux kernel functional testing")


def add_options(parser: pytest.Parser) -> None:
    """Add every `--lkft-*` option and its ini key."""
    add_to_group(parser.getgroup(*GROUP), OPTIONS)
    for option in OPTIONS:
        if option.ini:
            parser.addini(option.ini, option.help, type="linelist", default=[])


def add_to_group(group: pytest.OptionGroup, options: Iterable[Option]) -> None:
    """Add `options` to pytest's `lkft` option group."""
    for option in options:
        if option.kind == "flag":
            group.addoption(option.flag, dest=option.dest, action="store_true", default=False,
                            help=option.help_text())
        elif option.kind == "list":
            group.addoption(option.flag, dest=option.dest, action="append", default=[],
                            metavar=option.metavar, help=option.help_text())
        elif option.kind == "args":
            group.addoption(option.flag, dest=option.dest, nargs="+", metavar=option.metavar,
                            help=option.help_text())
        else:
            group.addoption(option.flag, dest=option.dest, default=None,
                            metavar=option.metavar, help=option.help_text())


def resolver(config: pytest.Config) -> Resolver:
    """Options as this run gives them: command line, environment, ini."""
    return Resolver(lambda dest: config.getoption(dest, default=None),
                    getini=config.getini, inipath=config.inipath)


def resolve_settings(config: pytest.Config) -> Settings:
    """The device settings, resolved once and stashed; the lab directory set first."""
    if SETTINGS_KEY not in config.stash:
        options = resolver(config)
        lab_dir = options.value("lkft_lab_dir")
        if lab_dir:
            tables.set_lab_dir(Path(config.invocation_params.dir, lab_dir.value),
                               lab_dir.source)
        console = config.getoption("capture") == "no"
        config.stash[SETTINGS_KEY] = Settings.resolve(options, config.invocation_params.dir,
                                                      console)
    return config.stash[SETTINGS_KEY]
