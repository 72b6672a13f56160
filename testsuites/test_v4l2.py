"""v4l2: test-definitions' v4l2-compliance test: load the vivid test driver, then
`v4l2-compliance -v -d /dev/video0`, one case per compliance test (`VIDIOC_QUERYCAP`).

Needs v4l2-compliance on the rootfs (`--lkft-rootfs=debian`: Debian's v4l-utils) and
CONFIG_VIDEO_VIVID (Debian's full kernel flavour, which `--lkft-rootfs=debian` picks).
`--lkft-parameter VIDEO_DRIVER=...` / `VIDEO_DEVICE=...` test another driver or device.
"""

from __future__ import annotations

from pytest_lkft.suites import scripted_suite

TIMEOUT = 25 * 60  # tuxrun's v4l2 timeout
pytestmark = scripted_suite("v4l2", "v4l2", TIMEOUT)

from pytest_lkft.suites import (  # noqa: E402, F401
    lkft_case,
    lkft_needs,
    test_case,
    test_crash,
    test_run,
)
