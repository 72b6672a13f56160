"""Option values are not test paths: pytest's rootdir and configuration stay the project's.

pytest finds its rootdir and configuration file before it loads plugins, so before it
knows their options: the value of `--lkft-results LOG` or `--lkft-ltp PATH`, written
with a space, counts as a test path, and the rootdir and configuration file are looked
for from that file's directory (pytest#1435, #8846). The project's configuration is
dropped, `.pytest_cache` goes beside the file, node ids and the store's build name
(`git describe` in the rootdir) come from there.

Once the plugins are loaded (`pytest_load_initial_conftests`, before conftests and
before pytest decides what to collect), the command line parses whole. When its real
test paths give another rootdir or configuration file, the set-up is redone with them:
rootdir, configuration file, its values and addopts. pytest has no public way to do this,
so it touches `Config` internals (pytest 8 and 9 keep them so); where they are not as
expected, the run stops with one line saying how to write the option instead.
"""

from __future__ import annotations

import copy
import os
import shlex
from pathlib import Path

import pytest

WRITE_WITH_EQUALS = ("an option's value was taken for a test path, which moved pytest's "
                     "rootdir to {wrong}; write such options as --option=VALUE or give the "
                     "test paths (e.g. `.`) too")


def given_args(config: pytest.Config) -> list[str]:
    """The arguments as given: PYTEST_ADDOPTS, then the command line."""
    return [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *config.invocation_params.args]


def given_test_paths(config: pytest.Config) -> list[str]:
    """The given test paths, now that every option is known."""
    namespace = config._parser.parse_known_args(given_args(config),
                                                namespace=copy.copy(config.option))
    return list(namespace.file_or_dir)


def keep_project_setup(config: pytest.Config, args: list[str]) -> None:
    """Redo pytest's rootdir and configuration set-up from the real test paths."""
    try:
        from _pytest.config.findpaths import determine_setup  # the one place: no public API

        known = config.known_args_namespace
        rootpath, inipath, inicfg, ignored = determine_setup(
            inifile=known.inifilename, override_ini=known.override_ini,
            args=given_test_paths(config), rootdir_cmd_arg=known.rootdir or None,
            invocation_dir=config.invocation_params.dir)
    except (ImportError, AttributeError, TypeError):  # another pytest: its set-up stands
        return
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    wrong = config.rootpath
    try:
        _set_up(config, args, rootpath, inipath, inicfg, ignored)
    except (AttributeError, TypeError) as error:  # other internals than pytest 8 and 9's
        raise pytest.UsageError(WRITE_WITH_EQUALS.format(wrong=wrong)) from error


def _set_up(config: pytest.Config, args: list[str], rootpath: Path, inipath: Path | None,
            inicfg: object, ignored: object) -> None:
    """What `Config.parse` does with a rootdir and configuration file, done again."""
    config._rootpath, config._inipath = rootpath, inipath
    config._inicfg, config._ignored_config_files = inicfg, ignored  # type: ignore[assignment]
    config._inicache.clear()
    config._parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    addopts = list(config.getini("addopts"))
    args[:] = [*addopts, *given_args(config)]  # the other file's addopts out, this one's in
    config.pluginmanager.consider_preparse(addopts, exclude_only=False)
    config.known_args_namespace = known = config._parser.parse_known_args(
        args, namespace=copy.copy(config.option))
    if known.confcutdir is None:  # as pytest sets it: the configuration file's directory
        known.confcutdir = str(inipath.parent if inipath else rootpath)
