"""Boards through labgrid, for real: coordinator, exporter, ser2net and QEMU stand-in boards.

The lab (`tests/labgrid_lab.py`) runs labgrid-coordinator and labgrid-exporter on
127.0.0.1 with two stand-in boards. Their power switch (`tests/power_switch.py`) is a
stand-in for a physical network power switch and the only mock-like part: it powers a
small QEMU arm64 board whose serial line labgrid-exporter serves through ser2net.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from labgrid_lab import (
    STANDIN_LAB,
    UBOOT_BIOS,
    UBOOT_TAGS,
    StandinLab,
    listening_addresses,
    standin_lab,
    wait_for,
)

from conftest import REPO, TESTSUITES, need_qemu
from pytest_lkft.artifacts.cache import ArtifactCache
from pytest_lkft.devices.labgrid import LabgridDevice, PlaceLease, labgrid_tool, load_lab
from pytest_lkft.errors import DeviceBroken, InfraError, UserError
from pytest_lkft.provision.defaults import default_artifacts
from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.pytestplugin.labgrid import COORDINATOR_DOWN, check_coordinator
from pytest_lkft.settings.device import Timeouts
from pytest_lkft.settings.devices import load_devices

pytestmark = pytest.mark.qemu

BOARDS = ["board-a", "board-b"]
UBOOT_BOARD = "uboot-a"
SMOKE_CASES = 13
TIMEOUTS = Timeouts(boot=120, test=60)
def need_lab_tools() -> None:
    """Skip (fail under CI) without labgrid, ser2net, U-Boot or QEMU for arm64."""
    need_qemu("qemu-system-aarch64")
    for tool, how in ((labgrid_tool("labgrid-coordinator"), "pip install labgrid"),
                      ("ser2net", "apt-get install ser2net"),
                      (UBOOT_BIOS, "apt-get install u-boot-qemu")):
        found = shutil.which(tool) or Path(tool).is_absolute() and Path(tool).exists()
        if not found and not Path("/usr/sbin", tool).exists():
            message = f"{tool} is not installed: {how}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinLab]:
    """Two stand-in boards behind a real coordinator and exporter on 127.0.0.1."""
    need_lab_tools()
    with standin_lab(tmp_path_factory.mktemp("lab"), BOARDS, [UBOOT_BOARD]) as running:
        yield running


@pytest.fixture(scope="module")
def artifacts(artifact_cache: Path) -> DeviceArtifacts:
    """The default qemu-arm64 kernel and busybox initramfs."""
    cache = ArtifactCache(artifact_cache)
    found = default_artifacts(load_devices().get("qemu-arm64"), cache.root, cache.fetch)
    return DeviceArtifacts(kernel=found.kernel, rootfs=found.rootfs)


@pytest.fixture
def lease(lab: StandinLab) -> Iterator[PlaceLease]:
    """A place of the lab, released afterwards; the lab is left with nothing held."""
    held = PlaceLease(lab.coordinator, ["board=qemu-standin"])
    held.acquire(timeout=30)
    yield held
    held.release()
    assert lab.acquired() == [] and lab.reservations() == ""


def outlet_state(lab: StandinLab, place: str) -> str:
    """What the power switch says about the board of `place` ("1" on, "0" off)."""
    port = (lab.root / "exporter.yaml").read_text().split("127.0.0.1:")[1].split("/")[0]
    return requests.get(f"http://127.0.0.1:{port}/outlet/{BOARDS.index(place) + 1}",
                        timeout=10).text


def test_lab_files_load() -> None:
    standin = load_lab(STANDIN_LAB)
    assert sorted(standin) == ["standin-1", "standin-2", "standin-uboot"]
    assert standin["standin-1"].tags == {"board": "qemu-standin"}
    assert standin["standin-1"].boot.method == "firmware"
    rpi4 = load_lab(REPO / "lab" / "rpi4.yaml")["rpi4"]
    assert rpi4.boot.method == "uboot" and rpi4.boot.commands[-1].startswith("booti ")
    assert "TFTPProviderDriver" in rpi4.drivers


@pytest.mark.parametrize(("text", "message"), [
    ("devices: {b: {tags: {board: x}, boot: {method: pxe}}}",
     "{path}: b: unknown boot method 'pxe'; use one of firmware, uboot"),
    ("devices: {b: {arch: arm64}}",
     "{path}: b has no tags; give the tags of its places, e.g. tags: {{board: rpi4}}"),
    ("boards: []", "{path} has no `devices:` mapping; see lab/labgrid-standin.yaml"),
])
def test_bad_lab_file_says_what_to_do(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        load_lab(path)
    assert str(error.value) == message.format(path=path)


def test_board_powers_on_boots_and_runs_commands(lab: StandinLab, lease: PlaceLease,
                                                 artifacts: DeviceArtifacts,
                                                 tmp_path: Path) -> None:
    spec = load_lab(STANDIN_LAB)["standin-1"]
    board = LabgridDevice(spec, lease, artifacts, tmp_path, TIMEOUTS)
    board.boot()
    try:
        assert board.boot_error is None and board.boot_time is not None
        assert outlet_state(lab, lease.place) == "1"
        assert board.metadata["kernel_version"].endswith("-cloud-arm64")
        assert "Debian 6.1." in board.metadata["kernel_banner"]
        result = board.run("uname -m; exit_with() { return $1; }; exit_with 3")
        assert (result.output, result.exit_status) == ("aarch64\n", 3)
        assert board.run("cat /proc/cmdline").output == "console=ttyAMA0 panic=-1\n"
        assert board.crashes() == []
    finally:
        board.close()
    assert outlet_state(lab, lease.place) == "0"
    assert "Linux version" in (tmp_path / "console.log").read_text()
    assert "power on" in (tmp_path / "reproducer.sh").read_text()


def test_uboot_board_loads_the_kernel_over_tftp(lab: StandinLab, artifacts: DeviceArtifacts,
                                                tmp_path: Path) -> None:
    lease = PlaceLease(lab.coordinator, [f"{k}={v}" for k, v in UBOOT_TAGS.items()])
    assert lease.acquire(timeout=30) == UBOOT_BOARD
    boot_args = "lkft.x=1;echo INJECTED-$((6*7))"  # one word for U-Boot's shell (issue 17)
    board = LabgridDevice(load_lab(STANDIN_LAB)["standin-uboot"], lease,
                          dataclasses.replace(artifacts, boot_args=boot_args), tmp_path, TIMEOUTS)
    try:
        board.boot()
        assert board.boot_error is None
        assert board.run("cat /proc/cmdline").output == f"console=ttyAMA0 panic=-1 {boot_args}\n"
    finally:
        board.close()
        lease.release()
    console = (tmp_path / "console.log").read_text()
    assert f"tftp ${{kernel_addr_r}} {UBOOT_BOARD}/Image" in console
    assert console.index("U-Boot") < console.index("Linux version")
    assert lab.acquired() == [] and lab.reservations() == ""


def test_each_lease_gets_its_own_place(lab: StandinLab) -> None:
    first, second = (PlaceLease(lab.coordinator, ["board=qemu-standin"]) for _ in range(2))
    try:
        assert {first.acquire(30), second.acquire(30)} == set(BOARDS)
        assert sorted(lab.acquired()) == BOARDS
    finally:
        first.release()
        second.release()
    assert lab.acquired() == [] and lab.reservations() == ""


def test_no_free_place_waits_then_says_so(lab: StandinLab) -> None:
    holders = [PlaceLease(lab.coordinator, ["board=qemu-standin"]) for _ in BOARDS]
    waiting = PlaceLease(lab.coordinator, ["board=qemu-standin"])
    try:
        for holder in holders:
            holder.acquire(30)
        start = time.monotonic()
        with pytest.raises(InfraError) as error:
            waiting.acquire(timeout=3)
        assert time.monotonic() - start >= 3
    finally:
        for holder in holders:
            holder.release()
    assert str(error.value) == (
        "no place tagged board=qemu-standin became free within 3 s; free one "
        f"(labgrid-client -x {lab.coordinator} who) or raise --lkft-place-timeout")
    assert lab.acquired() == [] and lab.reservations() == ""


def test_tags_no_place_has_say_so(lab: StandinLab) -> None:
    with pytest.raises(InfraError) as error:
        PlaceLease(lab.coordinator, ["board=vax"]).acquire(timeout=30)
    assert str(error.value).startswith(
        f"no place of the lab at {lab.coordinator} has the tags board=vax; ")
    assert lab.reservations() == ""


def test_lost_serial_breaks_the_board(lab: StandinLab, lease: PlaceLease,
                                      artifacts: DeviceArtifacts, tmp_path: Path) -> None:
    board = LabgridDevice(load_lab(STANDIN_LAB)["standin-1"], lease, artifacts, tmp_path,
                          TIMEOUTS)
    board.boot()
    try:
        assert board.run("true").exit_status == 0
        serving = [a for pid in lab.ser2net_pids() for a in listening_addresses(pid)]
        assert serving and all(a.startswith("127.0.0.1:") for a in serving), serving
        for pid in lab.ser2net_pids():  # the exporter's ser2net: the serial line goes away
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(DeviceBroken) as error:
            board.run("uname -a")
        assert board.broken is not None
        assert str(error.value).splitlines()[0] == \
            "the serial console was lost while running 'uname -a'"
    finally:
        board.close()  # the lease fixture then checks the place is released


def test_coordinator_down_is_one_line() -> None:
    with pytest.raises(InfraError) as error:
        PlaceLease("127.0.0.1:1", ["board=qemu-standin"]).acquire(timeout=5)
    assert str(error.value) == ("cannot reach the labgrid coordinator at 127.0.0.1:1; start "
                                "labgrid-coordinator there or pass --lkft-coordinator ADDRESS")
    with pytest.raises(UserError) as down:
        check_coordinator("127.0.0.1:1")
    assert str(down.value) == COORDINATOR_DOWN.format(address="127.0.0.1:1",
                                                      reason="Connection refused")


def copy_suites(pytester: pytest.Pytester) -> Path:
    """The boot and smoke suites in the pytester directory (no repository ini applies)."""
    suites = pytester.mkdir("testsuites")
    for name in ("test_boot.py", "test_smoke.py", "smoke.yaml"):
        shutil.copy(TESTSUITES / name, suites / name)
    return suites


def run_lab_suites(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    """Boot and smoke suites on lab devices, as a user runs them."""
    suites = copy_suites(pytester)
    return pytester.runpytest_subprocess(
        str(suites / "test_boot.py"), str(suites / "test_smoke.py"), f"--lkft-cache-dir={cache}",
        f"--lkft-lab={STANDIN_LAB}", "-p", "no:cacheprovider",
        "--lkft-timeouts=boot=120,test=60", *args)


def junit_properties(junit: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """Each JUnit testcase's properties, by (device, suite, test) as the plugin records them."""
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        cases[props["lkft.device"], props["lkft.suite"], props["lkft.test"]] = props
    return cases


def test_two_workers_get_two_boards(pytester: pytest.Pytester, lab: StandinLab,
                                   artifact_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LKFT_LAB", str(STANDIN_LAB))
    junit = pytester.path / "junit.xml"
    result = run_lab_suites(pytester, artifact_cache, f"--lkft-coordinator={lab.coordinator}",
                            "--lkft-device=standin-1", "--lkft-device=standin-2", "-n", "2",
                            f"--junitxml={junit}", "-v")
    result.assert_outcomes(passed=2 * (1 + 1 + SMOKE_CASES + 1))
    cases = junit_properties(junit)
    assert len(cases) == 2 * (1 + 1 + SMOKE_CASES + 1)
    places = {cases[d, "boot", "boot"]["lkft.meta.place"] for d in ("standin-1", "standin-2")}
    assert places == set(BOARDS)
    assert cases["standin-2", "smoke", "uname"]["lkft.meta.place"] in BOARDS
    assert lab.acquired() == [] and lab.reservations() == ""


def test_boards_and_qemu_mixed(pytester: pytest.Pytester, lab: StandinLab,
                               artifact_cache: Path) -> None:
    junit = pytester.path / "junit.xml"
    result = run_lab_suites(pytester, artifact_cache, f"--lkft-coordinator={lab.coordinator}",
                            "--lkft-device=standin-1", "--lkft-device=qemu-arm64", "-n", "2",
                            f"--junitxml={junit}")
    result.assert_outcomes(passed=2 * (1 + 1 + SMOKE_CASES + 1))
    cases = junit_properties(junit)
    assert cases["standin-1", "boot", "boot"]["lkft.meta.place"] in BOARDS
    assert "lkft.meta.place" not in cases["qemu-arm64", "boot", "boot"]
    assert cases["qemu-arm64", "boot", "boot"]["lkft.meta.qemu_version"]
    assert lab.acquired() == [] and lab.reservations() == ""


SLOW_SUITE = """
from pathlib import Path

import pytest

pytestmark = pytest.mark.lkft_suite("slow")


def test_first(device):
    assert device.run("true").exit_status == 0


def test_wait(device):
    if device.name == "standin-1":  # tell the test which board to cut the serial line of
        Path("sleeping-on").write_text(device.metadata["place"])
    assert device.run("sleep 10").exit_status == 0


def test_after(device):
    assert device.run("true").exit_status == 0
"""


def test_lost_serial_fails_that_suite_and_the_other_worker_carries_on(
        pytester: pytest.Pytester, lab: StandinLab, artifact_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LKFT_LAB", str(STANDIN_LAB))
    suites = copy_suites(pytester)
    (suites / "test_slow.py").write_text(SLOW_SUITE)
    command = [sys.executable, "-m", "pytest", str(suites / "test_slow.py"), "-n", "2", "-v",
               f"--lkft-cache-dir={artifact_cache}", f"--lkft-lab={STANDIN_LAB}",
               f"--lkft-coordinator={lab.coordinator}", "--lkft-device=standin-1",
               "--lkft-device=standin-2", "-p", "no:cacheprovider"]
    sleeping = pytester.path / "sleeping-on"
    with subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, text=True) as run:
        wait_for("standin-1 running sleep", sleeping.exists, timeout=120)
        time.sleep(1)
        for pid in lab.ser2net_pids(sleeping.read_text()):
            os.kill(pid, signal.SIGKILL)
        out, _ = run.communicate(timeout=120)
    assert "FAILED testsuites/test_slow.py::test_wait[standin-1]" in out
    assert "ERROR testsuites/test_slow.py::test_after[standin-1]" in out
    assert "not run: the device is broken (the serial console was lost while running " \
           "'sleep 10')" in out
    for case in ("first", "wait", "after"):
        assert f"PASSED testsuites/test_slow.py::test_{case}[standin-2]" in out
    assert lab.acquired() == [] and lab.reservations() == ""


KILLED_SUITE = """
import os
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.lkft_suite("killed")


def test_first(device):
    assert device.run("true").exit_status == 0


def test_kill(device):
    if device.name == "standin-1" and not Path("killed").exists():  # once, not its replacement
        Path("killed").write_text(device.metadata["place"])
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no signal handler runs
    assert device.run("true").exit_status == 0


def test_after(device):
    assert device.run("true").exit_status == 0
"""


def junit_outcomes(junit: Path) -> dict[str, str]:
    """Each JUnit testcase's outcome (passed, failure, error, skipped), by test name."""
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        found = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name", "")] = found[0] if found else "passed"
    return outcomes


def test_killed_worker_releases_its_place_and_the_run_carries_on(
        pytester: pytest.Pytester, lab: StandinLab, artifact_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LKFT_LAB", str(STANDIN_LAB))
    suites = copy_suites(pytester)
    (suites / "test_killed.py").write_text(KILLED_SUITE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        str(suites / "test_killed.py"), "-n", "2", f"--junitxml={junit}",
        f"--lkft-cache-dir={artifact_cache}", f"--lkft-coordinator={lab.coordinator}",
        "--lkft-device=standin-1", "--lkft-device=standin-2", "--lkft-place-timeout=60",
        "-p", "no:cacheprovider")
    assert lab.acquired() == [] and lab.reservations() == ""
    killed = (pytester.path / "killed").read_text()
    result.stdout.fnmatch_lines([f"lkft: released place {killed} held by crashed worker gw*"])
    # xdist reports the crash as an error of the test that ran, then reruns what the worker
    # had left (that test too) on the worker that replaces it: on the released place.
    assert junit_outcomes(junit) == {
        "test_kill[standin-1]": "error",
        **{f"{case} [{device}]": "passed" for case in ("first", "kill", "after")
           for device in ("standin-1", "standin-2")}}


def test_next_run_releases_what_a_killed_run_held(pytester: pytest.Pytester, lab: StandinLab,
                                                  artifact_cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LKFT_LAB", str(STANDIN_LAB))
    suites = copy_suites(pytester)
    (suites / "test_killed.py").write_text(KILLED_SUITE)
    args = [str(suites / "test_killed.py"), f"--lkft-cache-dir={artifact_cache}",
            f"--lkft-coordinator={lab.coordinator}", "--lkft-device=standin-1",
            "-p", "no:cacheprovider"]
    assert pytester.runpytest_subprocess(*args).ret == -signal.SIGKILL
    killed = (pytester.path / "killed").read_text()
    assert lab.acquired() == [killed]  # nothing of the killed run could release it
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [f"lkft: released place {killed} held by a process of an earlier run (pid *"])
    assert lab.acquired() == [] and lab.reservations() == ""


def test_coordinator_down_stops_the_run_with_one_line(pytester: pytest.Pytester,
                                                      artifact_cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    need_lab_tools()
    monkeypatch.setenv("LKFT_LAB", str(STANDIN_LAB))
    result = run_lab_suites(pytester, artifact_cache, "--lkft-coordinator=127.0.0.1:1",
                            "--lkft-device=standin-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = COORDINATOR_DOWN.format(address="127.0.0.1:1", reason="Connection refused")
    result.stderr.fnmatch_lines([f"ERROR: {line}"])


@pytest.mark.parametrize(("args", "line"), [
    (["--lkft-lab=nope.yaml"], "ERROR: --lkft-lab *nope.yaml: No such file or directory; "
                               "check the path"),
    ([f"--lkft-lab={STANDIN_LAB}", "--lkft-place-timeout=soon"],
     "ERROR: invalid place timeout 'soon' from --lkft-place-timeout; give seconds, e.g. 600"),
])
def test_bad_lab_options_stop_the_run_with_one_line(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    args: list[str], line: str) -> None:
    monkeypatch.setenv("LKFT_LAB", args[0].partition("=")[2])
    suites = copy_suites(pytester)
    result = pytester.runpytest_subprocess(str(suites / "test_boot.py"), *args,
                                           "--lkft-device=standin-1", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])


HOLD_SUITE = """
from pathlib import Path

import pytest

pytestmark = pytest.mark.lkft_suite("hold")


def test_hold(device):
    Path("holding.tmp").write_text(device.metadata["place"])
    Path("holding.tmp").rename("holding")  # the place is held and this test runs
    device.run("sleep 600")
"""


@pytest.mark.parametrize(("signum", "status"), [
    (signal.SIGTERM, -signal.SIGTERM),                    # killed: our handler releases
    (signal.SIGINT, pytest.ExitCode.INTERRUPTED.value),   # Ctrl-C: pytest's session ends
], ids=["SIGTERM", "SIGINT"])
def test_interrupted_run_releases_its_place(pytester: pytest.Pytester, lab: StandinLab,
                                            artifact_cache: Path, signum: int,
                                            status: int) -> None:
    """The signal comes while a test runs on the board (it waits on the device), never as
    the run ends: the run is in that known state before the signal is sent."""
    suites = copy_suites(pytester)
    (suites / "test_hold.py").write_text(HOLD_SUITE)
    env = {**os.environ, "LKFT_LAB": str(STANDIN_LAB)}
    command = [sys.executable, "-m", "pytest", str(suites / "test_hold.py"),
               f"--lkft-cache-dir={artifact_cache}", f"--lkft-coordinator={lab.coordinator}",
               "--lkft-device=standin-1", "-p", "no:cacheprovider"]
    holding = pytester.path / "holding"
    with subprocess.Popen(command, cwd=pytester.path, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as run:
        wait_for("the run's test on its board", holding.exists, timeout=120)
        assert lab.acquired() == [holding.read_text()]
        run.send_signal(signum)
        assert run.wait(60) == status
    assert lab.acquired() == [] and lab.reservations() == ""
