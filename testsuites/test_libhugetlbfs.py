"""libhugetlbfs: test-definitions' libhugetlbfs test: 200 huge pages reserved, hugetlbfs
mounted, then the suite's `run_tests.py -b 64`, one case per test and page size
(`zero_filesize_segment-2M-64`).

Debian packages no libhugetlbfs tests: `--lkft-libhugetlbfs libhugetlbfs-2.24.tar.xz`
builds them from their source for the device, laid at /opt/libhugetlbfs. Needs python3
and bash on the rootfs (`--lkft-rootfs=debian`), CONFIG_HUGETLBFS and CONFIG_HUGETLB_PAGE.
`--lkft-parameter LIBHUGETLBFS_TESTS=func` runs one test set (default func and stress),
`WORD_SIZE=32` the 32-bit tests, `HUGEPAGES=N` reserves N pages.
"""

from __future__ import annotations

import pytest

from pytest_lkft.suites import SETTINGS_KEY, scripted_suite

TIMEOUT = 45 * 60  # tuxrun's libhugetlbfs timeout
NO_TESTS = ("libhugetlbfs's tests are not packaged in Debian: pass --lkft-libhugetlbfs "
            "SOURCE (the libhugetlbfs release tarball) to build them for the device")
pytestmark = scripted_suite("libhugetlbfs", "hugetlbfs", TIMEOUT, "tests_given")


@pytest.fixture(scope="module")
def tests_given(request: pytest.FixtureRequest) -> None:
    """Skip, before anything boots, without the tests' source."""
    if not request.config.stash[SETTINGS_KEY].libhugetlbfs:
        pytest.skip(NO_TESTS)


from pytest_lkft.suites import (  # noqa: E402, F401
    lkft_case,
    lkft_needs,
    test_case,
    test_crash,
    test_run,
)
