"""ltp-<runtest>: an LTP runtest file run on the device, one test per tag.

LTP comes from `--lkft-ltp PATH|URL`, an install tarball (the /opt/ltp tree) laid over
the rootfs at /opt/ltp, or is the rootfs's own /opt/ltp (as LKFT's rootfs carries it):
`--lkft-ltp-runtest NAME[,NAME]` without `--lkft-ltp`. `--lkft-ltp-runtest` chooses the
runtest files (with a tarball, default: LKFT's set, those it has), `--lkft-ltp-skipfile`
and `--lkft-ltp-shard INDEX/TOTAL` work as tuxrun's skipfile and shard parameters (a skipfile
tag is a skip the host reports: the device never runs it). kirk
runs the tests when the rootfs can run it, else runltp, else our own runner
(`pytest_lkft/data/ltp-runner.sh`). Names are LKFT's, `ltp-<runtest file>/<tag>`, the
tag never rewritten. With a tarball every tag of the plan is an item, and one the run
never reported is an error ("missing"); with the rootfs's LTP the tags are learned from
the first run (reported then, items from the next run on), as kselftest's are.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.suites import device_for, ltp_cases, ltp_setup, ltp_skipped

NO_LTP = ("no LTP: pass --lkft-ltp PATH|URL, an LTP install tarball (the /opt/ltp tree), or "
          "--lkft-ltp-runtest NAME[,NAME] to run the runtest files of the rootfs's /opt/ltp")
COMMAND = "sh /lkft/ltp-runner.sh {runtest}"  # {runtest}: a checked name ([A-Za-z0-9_.+-])
TIMEOUT = 3 * 3600  # ltp-syscalls takes about an hour on QEMU; --lkft-timeouts test= wins
pytestmark = [
    pytest.mark.lkft_suite("ltp-{runtest}"),
    pytest.mark.lkft_parsed(format="ltp", command=COMMAND, timeout=TIMEOUT, cases=ltp_cases,
                            setup=ltp_setup, resume=COMMAND, skips=ltp_skipped),
    pytest.mark.usefixtures("runtest"),
]


@pytest.fixture(scope="module")
def device(request: pytest.FixtureRequest, lkft_device_name: str,
           runtest: str) -> Iterator[Device]:
    """A device of its own for each runtest file: one that a runtest file broke never
    takes the next file's tests with it."""
    yield from device_for(request, lkft_device_name, f"ltp-{runtest}" if runtest else "ltp")


@pytest.fixture
def runtest() -> str:
    """Replaced by the parametrization over the runtest files to run."""
    pytest.skip(NO_LTP)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = [suite.removeprefix("ltp-") for suite in ltp_cases(metafunc.config)]
    skipped = pytest.param("", id="none", marks=pytest.mark.skip(reason=NO_LTP))  # suite `ltp`
    metafunc.parametrize("runtest", names or [skipped], scope="module")


from pytest_lkft.suites import lkft_case, test_case, test_crash, test_run  # noqa: E402, F401
