"""rcutorture: test-definitions' rcutorture test: load the module, let it torture RCU,
unload it and read its verdict (`modprobe-rcutorture`, `rcutorture-start`,
`rmmod-rcutorture`, `rcutorture-end`, with the statistics as metrics).

Needs CONFIG_RCU_TORTURE_TEST=m (no Debian kernel has it: build one with
`--lkft-tree SRC --lkft-kconfig-add=rcutorture`). `--lkft-parameter TORTURE_TIME=30`
sets the seconds each type runs (default 60), `TORTURE_TYPES='rcu srcu tasks'` the
types (default rcu; another type's cases end in `-<type>`).
"""

from __future__ import annotations

from pytest_lkft.suites import scripted_suite

TIMEOUT = 15 * 60  # tuxrun's rcutorture timeout
pytestmark = scripted_suite("rcutorture", "rcutorture", TIMEOUT)

from pytest_lkft.suites import (  # noqa: E402, F401
    lkft_case,
    lkft_needs,
    test_case,
    test_crash,
    test_run,
)
