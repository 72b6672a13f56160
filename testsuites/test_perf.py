"""perf: test-definitions' perf test: `perf record`, `report` and `stat` checks, then
`perf test -v`, one case per test (`Detect_openat_syscall_event`, skips as skips).

Needs perf on the rootfs (`--lkft-rootfs=debian` has Debian's linux-perf, 6.1 as the
kernel; a kernel built with the `perf` target lays its own perf in its place) and
CONFIG_PERF_EVENTS (the `perf` fragment, added to a build when --lkft-tests names perf).
`--lkft-parameter PERF_TEST_ARGS='-s 81,82'` passes arguments to `perf test` (there: skip
tests 81 and 82).
"""

from __future__ import annotations

from pytest_lkft.suites import scripted_suite

TIMEOUT = 30 * 60  # tuxrun's perf timeout; --lkft-timeouts test= wins
pytestmark = scripted_suite("perf", "perf", TIMEOUT)

from pytest_lkft.suites import (  # noqa: E402, F401
    lkft_case,
    lkft_needs,
    test_case,
    test_crash,
    test_run,
)
