"""kunit: the KTAP that built-in KUnit tests print on the console while the kernel boots.

Needs a kernel built with KUnit (Debian's kernels have none): `--lkft-kernel`, or a build
with `--lkft-tree`. Each KUnit case is its own test, named `kunit/<suite.case.param>`.
"""

from __future__ import annotations

import pytest

NO_KUNIT = "the kernel runs no built-in KUnit tests (CONFIG_KUNIT and test suites =y)"
pytestmark = [pytest.mark.lkft_suite("kunit"),
              pytest.mark.lkft_parsed(format="ktap", silent_reason=NO_KUNIT)]

from pytest_lkft.suites import lkft_case, test_case, test_crash, test_run  # noqa: E402, F401
