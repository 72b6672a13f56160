"""The scripts of the suites that run a Debian tool (perf, v4l2, libgpiod, libhugetlbfs,
rcutorture): `data/<suite>.sh`, after the helpers of `data/suite-lib.sh`.

A script is written to the device by its suite run's setup command (a quoted
here-document, so it works on any rootfs), then run. It starts with the run's
parameters (`--lkft-parameter NAME=VALUE`, as shell variables) and the checks of what
the suite needs (`suite-needs.yaml`): a missing command or kernel option stops it with
one `LKFT-SKIP:` line that names it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pytest_lkft.provision.ltp import heredoc
from pytest_lkft.settings.rootfs import SuiteNeeds
from pytest_lkft.settings.tables import data_path

SCRIPT_DIR = "/tmp/lkft"
LIBRARY = "suite-lib.sh"


def script_path(suite: str) -> str:
    """Where the suite's script lives on the device."""
    return f"{SCRIPT_DIR}/{suite}.sh"


def suite_script(needs: SuiteNeeds, parameters: Sequence[tuple[str, str]] = ()) -> str:
    """The whole script of `needs.name`'s suite: parameters, helpers, checks, the suite."""
    lines = ["#!/bin/sh", f"# pytest-lkft: the {needs.name} suite"]
    lines += [f"{name}={shlex.quote(value)}" for name, value in parameters]
    lines += [f"export {name}" for name, _ in parameters]
    lines.append(data_path(LIBRARY).read_text())
    if needs.commands:
        lines.append(shlex.join(["lkft_need_commands", *needs.commands]))
    if needs.kconfig:
        lines.append(shlex.join(["lkft_need_config", *needs.kconfig]))
    lines.append(data_path(f"{needs.name}.sh").read_text())
    return "\n".join(lines)


def setup_command(needs: SuiteNeeds, parameters: Sequence[tuple[str, str]] = ()) -> str:
    """The command that writes the suite's script to the device."""
    script = suite_script(needs, parameters)
    return f"mkdir -p {SCRIPT_DIR} && {heredoc(script_path(needs.name), script)}"
