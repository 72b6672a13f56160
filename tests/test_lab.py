"""The lab's device table: every tuxrun QEMU device, data not code; options resolved once."""

from __future__ import annotations

import pytest

from pytest_lkft.errors import UserError
from pytest_lkft.settings.device import Timeouts
from pytest_lkft.settings.devices import load_devices

TUXRUN_QEMU_DEVICES = [
    "qemu-arm64", "qemu-arm64be", "qemu-armv5", "qemu-armv7", "qemu-armv7be", "qemu-i386",
    "qemu-m68k", "qemu-mips32", "qemu-mips32el", "qemu-mips64", "qemu-mips64el", "qemu-ppc32",
    "qemu-ppc64", "qemu-ppc64le", "qemu-riscv32", "qemu-riscv64", "qemu-s390", "qemu-sh4",
    "qemu-sparc64", "qemu-x86_64",
]
DEFAULT_BOOTABLE = ["qemu-arm64", "qemu-armv7", "qemu-x86_64", "qemu-i386", "qemu-ppc64le",
                    "qemu-s390", "qemu-mips64el"]


def test_every_tuxrun_device_is_in_the_table() -> None:
    table = load_devices()
    assert sorted(table.devices) == TUXRUN_QEMU_DEVICES
    for spec in table.devices.values():
        assert spec.qemu.startswith("qemu-system-") and spec.apt.startswith("qemu-system-")
        assert spec.console and spec.kernel_image and "{rootfs}" in spec.drive


def test_default_artifacts_exist_for_the_required_devices() -> None:
    table = load_devices()
    assert [n for n in TUXRUN_QEMU_DEVICES if table.devices[n].debian] == sorted(DEFAULT_BOOTABLE)


def test_arm64_uses_a_cpu_that_is_fast_under_tcg() -> None:
    assert load_devices().get("qemu-arm64").cpu == "cortex-a57"


def test_unknown_device_lists_the_valid_ones() -> None:
    with pytest.raises(UserError) as error:
        load_devices().get("qemu-vax")
    message = str(error.value)
    assert message.startswith("unknown device 'qemu-vax'; valid devices: qemu-arm64, ")
    assert "\n" not in message


def test_timeouts_parse_any_subset() -> None:
    assert Timeouts.parse("boot=60") == Timeouts(boot=60, test=600)
    assert Timeouts.parse("test=5,boot=7.5") == Timeouts(boot=7.5, test=5)
    assert Timeouts.parse("silence=30") == Timeouts(silence=30)
    assert Timeouts().silence == 120  # a kernel printing nothing is stopped before boot=300


@pytest.mark.parametrize(("text", "message"), [
    ("login=3", "invalid phase 'login' in --lkft-timeouts 'login=3'; "
                "use boot=SECONDS,test=SECONDS,silence=SECONDS"),
    ("boot=x", "invalid timeout 'x' for boot in --lkft-timeouts 'boot=x'; give seconds, "
               "e.g. boot=300"),
    ("test=0", "invalid timeout '0' for test in --lkft-timeouts 'test=0'; give seconds, "
               "e.g. test=300"),
])
def test_bad_timeouts_say_what_to_do(text: str, message: str) -> None:
    with pytest.raises(UserError) as error:
        Timeouts.parse(text)
    assert str(error.value) == message


@pytest.mark.parametrize(("nodeid", "expected"), [
    ("testsuites/test_smoke.py::test_smoke[qemu-arm64-uname]", "qemu-arm64"),
    ("testsuites/test_smoke.py::test_smoke[qemu-arm64be-uname]", "qemu-arm64be"),
    ("testsuites/test_boot.py::test_boot[qemu-x86_64]", "qemu-x86_64"),
    ("tests/test_other.py::test_plain", None),
    ("tests/test_other.py::test_param[x-qemu-arm64]", None),
])
def test_scheduler_groups_by_the_device_in_the_parameter_id(nodeid: str,
                                                            expected: str | None) -> None:
    from pytest_lkft.pytestplugin.scheduling import device_of

    assert device_of(nodeid, ["qemu-arm64", "qemu-arm64be", "qemu-x86_64"]) == expected


def test_a_bad_value_from_the_environment_names_the_variable(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    monkeypatch.setenv("LKFT_TIMEOUTS", "boot=soon")
    result = pytester.runpytest("-p", "no:labgrid")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: invalid timeout 'soon' for boot in LKFT_TIMEOUTS "
                                 "'boot=soon'; give seconds, e.g. boot=300"])
    monkeypatch.setenv("LKFT_TIMEOUTS", "boot=60")
    monkeypatch.setenv("LKFT_ROOTFS", "/nowhere/rootfs.cpio")
    result = pytester.runpytest("-p", "no:labgrid")
    result.stderr.fnmatch_lines(["ERROR: LKFT_ROOTFS /nowhere/rootfs.cpio: no such file; "
                                 "check the path or give a URL"])


def test_the_users_test_timeout_beats_a_suites_own() -> None:
    assert Timeouts().for_suite(1200) == 1200  # a slow suite may ask for more
    assert Timeouts.parse("test=30").for_suite(1200) == 30  # --lkft-timeouts test= wins
    assert Timeouts.parse("boot=30").for_suite(None) == 600
