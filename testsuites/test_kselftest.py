"""kselftest-<collection>: `run_kselftest.sh -c <collection>` on the device, one test per case.

The kselftests come from a prebuilt install tarball (`--lkft-kselftest kselftest.tar.xz`,
one suite per collection of its kselftest-list.txt) or from the kernel build
(`--lkft-build-targets=...,kselftest` with `--lkft-make-var TARGETS="size breakpoints"`),
laid over the rootfs at /opt/kselftest with the cross C library. Names follow Linaro
test-definitions, as LKFT's SQUAD shows them: `kselftest-<collection>/<test>`.
"""

from __future__ import annotations

import pytest

from pytest_lkft.suites import kselftest_collections, kselftest_install
from pytest_lkft.suites.kselftest import Unusable

NO_KSELFTEST = ("no kselftests: pass --lkft-kselftest kselftest.tar.xz, or build them with "
                "--lkft-tree, --lkft-build-targets including kselftest and --lkft-make-var "
                "TARGETS=\"<collections>\"")
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


@pytest.fixture(scope="module")
def collection(request: pytest.FixtureRequest) -> str:
    """The collection of this suite run; fails, before anything boots, with why there is none
    when --lkft-kselftest cannot be used."""
    if not request.param:
        pytest.fail(str(kselftest_install(request.config)), pytrace=False)
    return str(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names, install = kselftest_collections(metafunc.config), kselftest_install(metafunc.config)
    if names:
        metafunc.parametrize("collection", names, scope="module", indirect=True)
        return
    crash_check = metafunc.definition.get_closest_marker("lkft_crash_check") is not None
    if isinstance(install, Unusable) and not crash_check:  # one error, from <suite>/run
        placeholder = pytest.param("", id="none")
    else:
        reason = NO_KSELFTEST
        if isinstance(install, Unusable):
            reason = f"kselftest did not run: {install}"
        placeholder = pytest.param("", id="none", marks=pytest.mark.skip(reason=reason))
    metafunc.parametrize("collection", [placeholder], scope="module", indirect=True)


from pytest_lkft.suites import lkft_case, test_case, test_crash, test_run  # noqa: E402, F401
