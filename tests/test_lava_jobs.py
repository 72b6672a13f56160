"""LAVA's library parts without a lab: job templates, artifacts as URLs, the job log.

The job logs and test cases under tests/data/lava/ are real: a smoke suite run and a
boot that panicked, on LAVA 2023.01 (tests/lava_lab.py) with Debian's arm64 kernel and
the busybox initramfs. The jobs made here are checked against LAVA's own schema in
tests/test_lava.py, where LAVA is installed.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pytest_lkft.devices.crash import CrashDetector, load_crash_patterns
from pytest_lkft.devices.lava.client import LabUnreachable, LavaClient
from pytest_lkft.devices.lava.device import case_statuses
from pytest_lkft.devices.lava.job import LavaJob
from pytest_lkft.devices.lava.joblog import JobLog
from pytest_lkft.devices.lava.jobs import (
    DROP,
    JobInputs,
    Step,
    command_line,
    fill,
    qemu_context,
    render_job,
)
from pytest_lkft.devices.lava.publish import (
    Publisher,
    initramfs,
    lab_url,
    merge_cpio,
    published_file,
)
from pytest_lkft.devices.lava.session import LabUrls, job_inputs
from pytest_lkft.devices.lava.specs import lava_spec
from pytest_lkft.errors import UserError
from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.provision.rootfs import Entry, write_cpio
from pytest_lkft.settings import tables
from pytest_lkft.settings.device import Timeouts, banner_hidden
from pytest_lkft.settings.devices import load_devices

DATA = Path(__file__).parent / "data" / "lava"
SMOKE = ["uname", "pwd", "cpuinfo", "meminfo", "cmdline", "mounts", "interrupts", "processes",
         "network-interfaces", "block-devices", "kernel-log", "sysfs-cpus", "tmp-write"]


def test_placeholders_fill_values_and_drop_nulls() -> None:
    template = {"a": "${n}", "b": "x-${s}-y", "gone": "${none}",
                "list": ["${s}", "${none}", 3], "image": {"arg": "-kernel {kernel}",
                                                         "url": "${none}"},
                "kept": {"url": "${s}", "arg": "{dtb}"}}
    filled = fill(template, {"n": [1, 2], "s": "text", "none": None})
    assert filled == {"a": [1, 2], "b": "x-text-y", "list": ["text", 3],
                      "kept": {"url": "text", "arg": "{dtb}"}}
    assert fill("${none}", {"none": None}) is DROP
    with pytest.raises(UserError, match=r"placeholder \$\{what\} has no value"):
        fill("${what}", {"n": 1})


def test_values_never_change_the_structure() -> None:
    hostile = "x\nactions: []\n- boot: {}"  # YAML in a value stays a string
    job = yaml.safe_load(render_job("qemu", JobInputs("qemu", hostile, "http://k", "http://r",
                                                      steps=[Step("s", "c", hostile, 5)])))
    assert job["job_name"] == hostile
    assert [list(action) for action in job["actions"]] == [["deploy"], ["boot"], ["test"]]


def test_qemu_job_from_the_device_table() -> None:
    steps = [Step("smoke", "uname", "uname -a", 600),
             Step("smoke", "here doc", "cat <<'EOF'\nhello\nEOF", 600),
             Step("ltp-math", "run", "sh /lkft/ltp-runner.sh math", 10800)]
    inputs = JobInputs("qemu", "lkft smoke", "http://h/Image", "http://h/initrd.cpio.gz",
                       command_line=command_line("ttyAMA0", "quiet"), boot_timeout=120,
                       queue_timeout=30, context=qemu_context(load_devices().get("qemu-arm64")),
                       steps=steps)
    job = yaml.safe_load(render_job("qemu", inputs))
    assert job["context"] == {"arch": "aarch64", "memory": 1024, "no_kvm": "true",
                              "machine": "virt,gic-version=3", "cpu": "cortex-a57",
                              "extra_options": ["-smp 2 -no-reboot"]}
    assert job["timeouts"]["queue"] == {"seconds": 30}
    deploy, boot, test = (action for entry in job["actions"] for action in entry.values())
    assert deploy["images"]["kernel"] == {
        "image_arg": '-kernel {kernel} -append "console=ttyAMA0 panic=-1 quiet"',
        "url": "http://h/Image"}
    assert "dtb" not in deploy["images"]  # no URL: the image is left out
    assert deploy["images"]["ramdisk"]["overlays"] == {"lava": True}
    assert boot["timeout"] == {"seconds": 120}
    assert [d["name"] for d in test["definitions"]] == ["smoke", "ltp-math"]
    smoke_steps = test["definitions"][0]["repository"]["run"]["steps"]
    assert smoke_steps[0] == "set +e +x; cd /"
    assert smoke_steps[2].startswith("echo \"LKFT\"\"-START\"; cat <<'EOF'\nhello\nEOF\n")
    assert smoke_steps[2].endswith("lava-test-case here_doc --result $lkft_r "
                                   "--measurement $lkft_rc --units rc")
    assert test["timeout"] == {"seconds": 600 + 600 + 10800 + 60}


def test_a_boot_only_job_has_no_test_action_and_no_overlay() -> None:
    job = yaml.safe_load(render_job("qemu", JobInputs("qemu", "boot", "http://k", "http://r",
                                                      dtb_url="http://d")))
    assert [list(entry) for entry in job["actions"]] == [["deploy"], ["boot"]]
    images = job["actions"][0]["deploy"]["images"]
    assert "overlays" not in images["ramdisk"]
    assert images["dtb"] == {"image_arg": "-dtb {dtb}", "url": "http://d"}


def test_x86_machine_and_cpu_go_to_the_extra_options() -> None:
    context = qemu_context(load_devices().get("qemu-x86_64"))
    assert context["arch"] == "x86_64" and "machine" not in context
    assert context["extra_options"] == ["-machine q35 -cpu Nehalem -smp 2 -no-reboot"]


def test_device_names() -> None:
    qemu = lava_spec("lava:qemu")
    assert (qemu.device_type, qemu.template, qemu.provision_as, qemu.arch, qemu.console) == \
        ("qemu", "qemu", "qemu-arm64", "arm64", "ttyAMA0")
    assert lava_spec("lava:qemu-x86_64").console == "ttyS0"
    with pytest.raises(UserError, match=r"unknown LAVA device 'lava:rpi9'; known: "
                       r"lava:am57xx-beagle-x15, lava:bcm2711-rpi-4-b, lava:qemu, "):
        lava_spec("lava:rpi9")


def test_a_double_quote_cannot_reach_the_command_line() -> None:
    with pytest.raises(UserError, match="has a double quote"):
        command_line("ttyAMA0", 'init="/bin/sh"')


def archive(path: Path, entries: list[Entry]) -> Path:
    path.write_bytes(gzip.compress(write_cpio(entries)))
    return path


def extract(archives: list[Path], into: Path) -> dict[str, bytes | str]:
    """Unpack archives in turn with GNU cpio, as the kernel unpacks concatenated ones."""
    into.mkdir()
    for path in archives:
        subprocess.run(["cpio", "-idum", "--quiet", "--no-absolute-filenames"], cwd=into,
                       input=gzip.decompress(path.read_bytes()), check=True)
    tree: dict[str, bytes | str] = {}
    for item in sorted(into.rglob("*")):
        name = str(item.relative_to(into))
        tree[name] = str(item.readlink()) if item.is_symlink() else \
            item.read_bytes() if item.is_file() else "dir"
    return tree


def test_merged_initramfs_unpacks_as_the_archives_in_turn(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio is not installed: apt-get install cpio")
    rootfs = archive(tmp_path / "rootfs.cpio.gz", [
        Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        Entry("etc/motd", stat.S_IFREG | 0o644, b"from the rootfs\n"),
        Entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\n")])
    overlay = archive(tmp_path / "overlay.cpio.gz", [
        Entry("etc/motd", stat.S_IFREG | 0o644, b"from the overlay\n"),
        Entry("opt/ltp/runtest/math", stat.S_IFREG | 0o644, b"abs01 abs01\n" * 1000)])
    cache = tmp_path / "cache"
    merged, compression = initramfs(rootfs, [overlay], cache)
    assert compression == "gz" and merged.parent == cache / "lava-initrd"
    expected = extract([rootfs, overlay], tmp_path / "in-turn")
    assert extract([merged], tmp_path / "merged") == expected
    assert expected["etc/motd"] == b"from the overlay\n"
    assert initramfs(rootfs, [overlay], cache) == (merged, "gz")  # cached
    assert initramfs(rootfs, [], cache) == (rootfs, "gz")  # nothing to merge
    assert list(tmp_path.rglob("*.raw")) == []  # no uncompressed copy left behind


def test_merge_shifts_inodes_and_ends_with_one_trailer(tmp_path: Path) -> None:
    first = tmp_path / "a.cpio"
    first.write_bytes(write_cpio([Entry("a", stat.S_IFREG | 0o644, b"1")]) + b"\0" * 512)
    second = tmp_path / "b.cpio"
    second.write_bytes(write_cpio([Entry("b", stat.S_IFREG | 0o644, b"2")]))
    out = tmp_path / "merged.cpio"
    with out.open("wb") as stream:
        merge_cpio([first, second], stream)
    data = out.read_bytes()
    assert data.count(b"TRAILER!!!") == 1
    headers = [data[i:i + 110] for i in range(len(data)) if data.startswith(b"070701", i)]
    assert [int(h[6:14], 16) for h in headers] == [1, 3, 0]  # a, b shifted past a, trailer


def test_publishing_names_files_by_content(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"kernel bytes")
    publisher = Publisher(tmp_path / "cache", "http://lab-host:8001/lkft/artifacts/")
    url = publisher.publish(kernel)
    digest = url.split("/")[-2]
    assert url == f"http://lab-host:8001/lkft/artifacts/{digest}/Image"
    assert published_file(tmp_path / "cache", f"/lkft/artifacts/{digest}/Image") == \
        tmp_path / "cache" / "published" / digest / "Image"
    for bad in (f"/lkft/artifacts/{digest}/../{digest}/Image", "/lkft/artifacts/../x/Image",
                f"/lkft/artifacts/{digest}/", f"/lkft/artifacts/{digest[:-1]}/Image"):
        assert published_file(tmp_path / "cache", bad) is None


def test_urls_go_through_kisscache() -> None:
    prefix = "http://cache:8001/api/v1/fetch/?url=%s"
    assert lab_url("https://h/a b?x=1", prefix) == \
        "http://cache:8001/api/v1/fetch/a%20b?url=https%3A%2F%2Fh%2Fa%20b%3Fx%3D1"
    assert lab_url("https://h/", prefix) == "http://cache:8001/api/v1/fetch/?url=https%3A%2F%2Fh%2F"
    assert lab_url("https://h/Image", "http://c/f?u=%s") == "http://c/f?u=https%3A%2F%2Fh%2FImage"
    assert lab_url("https://h/Image", None) == "https://h/Image"


def read_log(name: str, contexts: list[str], chunks: bool = False) -> tuple[JobLog, str]:
    """A recorded job log fed whole or in random pieces; the console it wrote."""
    console: list[str] = []
    log = JobLog(console.append, CrashDetector(load_crash_patterns()), contexts)
    text = (DATA / name).read_text()
    if chunks:
        rng = random.Random(15)
        cuts = sorted(rng.sample(range(len(text)), 400))
        for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
            log.feed(text[start:end])
    else:
        log.feed(text)
    return log, "".join(console)


@pytest.mark.parametrize("chunks", [False, True], ids=["whole", "pieces"])
def test_job_log_of_a_smoke_run(chunks: bool) -> None:
    log, console = read_log("smoke.job.yaml", [f"smoke/{c}" for c in SMOKE], chunks)
    assert log.kernel_version == "6.1.0-57-cloud-arm64"
    assert log.boot_time is not None and 0.5 < log.boot_time < 10
    assert [b.exit_status for b in log.blocks] == [0] * len(SMOKE)
    assert log.blocks[1].output == "/\n"
    assert log.blocks[0].output.startswith("Linux lkft 6.1.0-57-cloud-arm64 #1 SMP")
    assert log.lines == (DATA / "smoke.job.yaml").read_text().count("\n")
    assert log.job_error() == "" and log.detector.crashes == []
    assert "LKFT-START\nLinux lkft" in console and "lava-test-runner" in console


def test_job_log_of_a_boot_that_panicked() -> None:
    log, _ = read_log("boot-panic.job.yaml", [])
    assert log.shell_reached is None and log.blocks == []
    assert log.job_error() == "Infrastructure error: Connection closed"
    fatal = log.detector.fatal
    assert fatal is not None and fatal.context == "boot"
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in fatal.line


def test_exit_statuses_come_from_the_jobs_test_cases() -> None:
    tests = json.loads((DATA / "smoke.tests.json").read_text())
    steps = [Step("smoke", case, "true", 600) for case in SMOKE]
    assert case_statuses(tests, steps) == [0] * len(SMOKE)
    assert case_statuses(tests, [*steps, Step("smoke", "more", "x", 1),
                                 Step("other", "run", "y", 1)])[-2:] == [None, None]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_lab_is_retried_then_one_line() -> None:
    client = LavaClient(f"http://127.0.0.1:{closed_port()}", "secret-token-value", retry_for=2)
    start = time.monotonic()
    with pytest.raises(LabUnreachable) as error:
        client.job(1)
    elapsed = time.monotonic() - start
    assert str(error.value) == (f"LAVA at {client.url} cannot be reached (Connection refused); "
                                "retried for 2 s")
    assert 1.4 < elapsed < 2.5  # pauses of 0.5 and 1 s, the next would pass the 2 s
    assert "secret-token-value" not in repr(client)


def test_the_users_prompts_win_over_the_lava_tables() -> None:
    """--lkft-prompts reaches LAVA's boot action, as it reaches QEMU's console (issue 17)."""
    spec = lava_spec("lava:qemu-arm64")
    urls = LabUrls("http://h/Image", "http://h/initrd.cpio.gz", None, None)

    def prompts(given: tuple[str, ...]) -> object:
        artifacts = DeviceArtifacts(kernel=Path("Image"), prompts=given)
        inputs = job_inputs(spec, urls, artifacts, Timeouts(), "smoke", 30)
        job = yaml.safe_load(render_job("qemu", inputs))
        return next(entry["boot"] for entry in job["actions"] if "boot" in entry)["prompts"]

    assert prompts(()) == list(spec.prompts)
    assert prompts(("login: ", "board# ")) == ["login: ", "board# "]


def boot_action(spec_name: str, artifacts: DeviceArtifacts) -> dict[str, object]:
    """The boot action of the job `job_inputs` makes for `artifacts` on `spec_name`."""
    spec = lava_spec(spec_name)
    urls = LabUrls("http://h/Image", "http://h/initrd.cpio.gz", None, "http://h/board.dtb")
    job = yaml.safe_load(render_job(spec.template, job_inputs(spec, urls, artifacts,
                                                              Timeouts(), "smoke", 30)))
    return dict(next(entry["boot"] for entry in job["actions"] if "boot" in entry))


@pytest.mark.parametrize("name", ["lava:qemu", "lava:bcm2711-rpi-4-b"])
def test_the_kernel_start_message_reaches_the_boot_action(name: str) -> None:
    """--lkft-kernel-start-message becomes LAVA's `parameters: kernel-start-message`;
    without it the device type's own is left (no key), and boot arguments that hide the
    kernel's banner make LAVA wait for the prompt alone (""), as local runs do."""
    def start(**given: object) -> object:
        boot = boot_action(name, DeviceArtifacts(kernel=Path("Image"), **given))  # type: ignore[arg-type]
        return boot.get("parameters")

    assert start() is None
    assert start(kernel_start_message=r"Booting Linux on physical CPU") == {
        "kernel-start-message": "Booting Linux on physical CPU"}
    assert start(boot_args="quiet") == {"kernel-start-message": ""}
    assert start(boot_args="loglevel=3 rdinit=/init") == {"kernel-start-message": ""}
    assert start(boot_args="quiet loglevel=7") is None  # the last one wins, as in the kernel
    assert start(boot_args="quiet", kernel_start_message="Starting kernel") == {
        "kernel-start-message": "Starting kernel"}
    boot = boot_action(name, DeviceArtifacts(kernel=Path("Image"), prompts=("board# ",)))
    assert boot["prompts"] == ["board# "]


@pytest.mark.parametrize(("args", "hidden"), [
    ("", False), ("quiet", True), ("loglevel=5", True), ("loglevel=6", False),
    ("loglevel=4 loglevel=8", False), ("quiet ignore_loglevel", False),
    ("console=ttyAMA0 quiet panic=-1", True), ("quietly", False)])
def test_which_boot_arguments_hide_the_banner(args: str, hidden: bool) -> None:
    assert banner_hidden(args) is hidden


def test_a_device_entrys_kernel_start_message_and_prompts(tmp_path: Path) -> None:
    """A LAVA table entry's kernel_start_message and prompts reach its jobs; the user's
    options win over them."""
    (tmp_path / "lava").mkdir()
    (tmp_path / "lava" / "devices.yaml").write_text(
        "devices:\n  rpi:\n    device_type: bcm2711-rpi-4-b\n    template: uboot\n"
        "    provision_as: qemu-arm64\n    kernel_start_message: 'Booting Linux'\n"
        "    prompts: ['rpi# ']\n    values: {dtb: broadcom/bcm2711-rpi-4-b.dtb}\n")
    tables.set_lab_dir(tmp_path)
    try:
        own = boot_action("lava:rpi", DeviceArtifacts(kernel=Path("Image"), boot_args="quiet"))
        given = boot_action("lava:rpi", DeviceArtifacts(
            kernel=Path("Image"), kernel_start_message="Linux", prompts=("me# ",)))
    finally:
        tables.set_lab_dir(None)
    assert (own["parameters"], own["prompts"]) == ({"kernel-start-message": "Booting Linux"},
                                                   ["rpi# "])
    assert (given["parameters"], given["prompts"]) == ({"kernel-start-message": "Linux"},
                                                       ["me# "])


def test_a_job_log_is_whole_at_its_last_line() -> None:
    """The follower stops reading the log once LAVA's last line (the `job` result) came."""
    text = (DATA / "smoke.job.yaml").read_text()
    lines = text.splitlines(keepends=True)
    log = JobLog(lambda _: None, CrashDetector(load_crash_patterns()), [])
    log.feed("".join(lines[:-1]))
    assert not log.complete
    log.feed(lines[-1])
    assert log.complete


def test_a_quiet_boots_time_runs_from_lavas_boot_action() -> None:
    """Without the kernel's banner (quiet), boot time runs from LAVA's boot action's start
    (`start: 2 ...`) to the shell, a little longer than from the banner."""
    text = (DATA / "smoke.job.yaml").read_text()
    banner, _ = read_log("smoke.job.yaml", [])
    quiet = JobLog(lambda _: None, CrashDetector(load_crash_patterns()), [])
    quiet.feed("".join(line for line in text.splitlines(keepends=True)
                       if "Linux version" not in line))
    assert quiet.kernel_version == "" and banner.boot_time is not None
    assert quiet.boot_time is not None and banner.boot_time < quiet.boot_time < 10


def test_a_qemu_devices_start_message_and_prompts_reach_its_lava_twin(tmp_path: Path) -> None:
    """A QEMU table entry's kernel_start_message and prompts (BootMessages) reach the jobs
    of `lava:<that device>` and of LAVA table devices on LAVA's qemu device type booting
    it (`lava:qemu`), not those of a board."""
    from pytest_lkft.settings.tables import packaged_dir

    table = yaml.safe_load((packaged_dir() / "qemu-devices.yaml").read_text())
    table["devices"]["qemu-arm64"].update(kernel_start_message="Booting Linux",
                                          prompts=["arm# "])
    (tmp_path / "qemu-devices.yaml").write_text(yaml.safe_dump(table))
    tables.set_lab_dir(tmp_path)
    try:
        found = {name: boot_action(name, DeviceArtifacts(kernel=Path("Image")))
                 for name in ("lava:qemu-arm64", "lava:qemu", "lava:bcm2711-rpi-4-b")}
    finally:
        tables.set_lab_dir(None)
    for name in ("lava:qemu-arm64", "lava:qemu"):
        assert found[name]["parameters"] == {"kernel-start-message": "Booting Linux"}, name
        assert found[name]["prompts"] == ["arm# "], name
    assert "parameters" not in found["lava:bcm2711-rpi-4-b"]
    assert found["lava:bcm2711-rpi-4-b"]["prompts"] == ["/ # ", "root@[^:]*:[^#]*# "]


class CancelledLab:
    """Stands in for LAVA only for an order the real lab cannot be made to keep: its
    scheduler cancelling a queued job at the job's queue timeout before the run's own look
    does (tests/test_lava.py's queue test meets either order). The records are LAVA
    2023.01's: a job cancelled in the queue is Finished, Canceled, with no device."""

    url = "http://127.0.0.1:9/"
    token = "unused"

    def __init__(self, device: str | None) -> None:
        self.device, self.cancels = device, 0

    def job_url(self, job_id: int) -> str:
        return f"{self.url}scheduler/job/{job_id}"

    def submit(self, definition: str) -> int:
        return 7

    def job(self, job_id: int) -> dict[str, object]:
        return {"state": "Finished", "health": "Canceled", "actual_device": self.device}

    def logs(self, job_id: int, start: int = 0) -> str:
        return ""

    def cancel(self, job_id: int) -> None:
        self.cancels += 1


@pytest.mark.parametrize("assigned", [None, "lkft-qemu-01"])
def test_a_job_lava_cancelled_in_the_queue_says_the_queue_timeout(
        tmp_path: Path, assigned: str | None) -> None:
    """LAVA's scheduler cancels a job queued past its queue timeout (the run's) with no
    comment: the run says the queue timeout, not "Canceled: no error given". A job that had
    a device was cancelled some other way, and keeps LAVA's word for it."""
    lab = CancelledLab(assigned)
    detector = CrashDetector(load_crash_patterns())
    job = LavaJob(lab, "device_type: qemu\n", tmp_path, detector, [],  # type: ignore[arg-type]
                  queue_timeout=0, read_tests=False)
    job.start()
    assert job.wait(10)
    assert (job.state, job.health, lab.cancels) == ("Finished", "Canceled", 0)
    assert job.error == ("" if assigned else
                         "LAVA job 7 waited in the queue for more than 0 s (no free qemu "
                         f"device); cancelled it: {lab.url}scheduler/job/7")
