"""kselftest-<collection>: `run_kselftest.sh -c <collection>` on the device, one test per case.

The kselftests come from the kernel build (`--lkft-build-targets=...,kselftest` with
`--lkft-make-var TARGETS="size breakpoints"`), laid over the rootfs at /opt/kselftest
with the cross C library. Names follow Linaro test-definitions, as LKFT's SQUAD shows
them: `kselftest-<collection>/<test>`.
"""

from __future__ import annotations

import pytest

from pytest_lkft.suites import kselftest_collections

NO_KSELFTEST = ("no kselftests: build them with --lkft-tree, --lkft-build-targets including "
                "kselftest and --lkft-make-var TARGETS=\"<collections>\"")
# runner.sh wraps each test in `timeout --foreground` when /usr/bin/timeout exists; busybox's
# timeout has no --foreground and fails every test, so it goes (the suite's timeout, enforced
# from the host, still holds).
COMMAND = ("[ -L /usr/bin/timeout ] && rm -f /usr/bin/timeout; "
           "cd /opt/kselftest && ./run_kselftest.sh -c {collection}")
pytestmark = [
    pytest.mark.lkft_suite("kselftest-{collection}"),
    pytest.mark.lkft_parsed(format="kselftest", command=COMMAND),
    pytest.mark.usefixtures("collection"),
]


@pytest.fixture
def collection() -> str:
    """Replaced by the parametrization over the built collections."""
    pytest.skip(NO_KSELFTEST)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = kselftest_collections(metafunc.config)
    skipped = pytest.param("none", marks=pytest.mark.skip(reason=NO_KSELFTEST))
    metafunc.parametrize("collection", names or [skipped], scope="module")


from pytest_lkft.suites import lkft_case, test_case, test_crash, test_run  # noqa: E402, F401
