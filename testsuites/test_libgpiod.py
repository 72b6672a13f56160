"""libgpiod: the gpiod tools' tests (libgpiod 1.6's gpio-tools-test, names as
test-definitions makes them: `gpioget_read_all_lines`) against simulated chips.

Needs the gpiod tools on the rootfs (`--lkft-rootfs=debian`: Debian's gpiod) and
CONFIG_GPIO_CDEV; the tests that need chips need CONFIG_GPIO_SIM or CONFIG_GPIO_MOCKUP
(no Debian kernel has either: `--lkft-kconfig-add=gpio-sim` builds them in), and skip,
naming them, without.
"""

from __future__ import annotations

from pytest_lkft.suites import scripted_suite

TIMEOUT = 25 * 60  # tuxrun's libgpiod timeout
pytestmark = scripted_suite("libgpiod", "ktap", TIMEOUT)

from pytest_lkft.suites import (  # noqa: E402, F401
    lkft_case,
    lkft_needs,
    test_case,
    test_crash,
    test_run,
)
