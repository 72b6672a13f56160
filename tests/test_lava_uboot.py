"""U-Boot boards on LAVA: the uboot job template, the board entries, their checks.

No board is attached here. The jobs are proven by LAVA's own code instead: LAVA's job
schema, and `lava-run --validate` (the dispatcher builds the job's whole pipeline: TFTP
deploy, the U-Boot header on the ramdisk, U-Boot's commands, the test shell) against a
device dictionary rendered from LAVA's real device-type template. In that dictionary the
power switch (`/bin/true`) and the serial line (`cat`) are stand-ins, because no board
exists here; so is `in.tftpd` when tftpd-hpa is not installed (LAVA only checks that the
worker has it). Those tests skip, saying what to install, where LAVA's packages are absent
(fail under CI).
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import need_qemu
from pytest_lkft.devices.lava.jobs import (
    JobInputs,
    Step,
    dump,
    fill,
    job_values,
    load_template,
    qemu_context,
    render_job,
    template_values,
)
from pytest_lkft.devices.lava.session import LabUrls, job_inputs, need_dtb
from pytest_lkft.devices.lava.specs import LavaSpec, lava_spec, load_lava_devices
from pytest_lkft.errors import UserError
from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.provision.kernelimage import MIN_SIZE
from pytest_lkft.provision.rootfs import Entry, write_cpio
from pytest_lkft.settings import tables
from pytest_lkft.settings.device import Timeouts

HERE = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with LAVA's packages
BOARDS = ["bcm2711-rpi-4-b", "am57xx-beagle-x15"]
DISPATCHER_TMP = Path("/var/lib/lava/dispatcher/tmp")  # lava-run's, per job id
# The device dictionary of a board that is not there: LAVA's device-type template, a
# power switch that does nothing and a "serial line" that echoes nothing back.
STAND_IN_DEVICE = """{{% extends '{device_type}.jinja2' %}}
{{% set connection_command = 'cat' %}}
{{% set power_on_command = '/bin/true' %}}
{{% set power_off_command = '/bin/true' %}}
{{% set hard_reset_command = '/bin/true' %}}
"""
STEPS = [Step("smoke", "uname", "uname -a", 600),
         Step("ltp-math", "run", "cat <<'EOF'\nx\nEOF", 60)]


def board_inputs(spec: LavaSpec, base: str, **changes: object) -> JobInputs:
    """The inputs of a job on `spec`, its files under `base`."""
    inputs = JobInputs(spec.device_type, f"lkft on {spec.name}", f"{base}/Image",
                       f"{base}/rootfs.cpio.gz", dtb_url=f"{base}/board.dtb",
                       console=spec.console, prompts=list(spec.prompts),
                       metadata={"lkft.device": spec.name}, values=dict(spec.values))
    for key, value in changes.items():
        setattr(inputs, key, value)
    return inputs


def job_of(spec: LavaSpec, **changes: object) -> dict[str, object]:
    return dict(yaml.safe_load(render_job(spec.template, board_inputs(spec, "http://h",
                                                                      **changes))))


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "lava").mkdir()
    tables.set_lab_dir(tmp_path)
    yield tmp_path
    tables.set_lab_dir(None)


def test_rpi4_job_deploys_to_tftp_and_boots_u_boot() -> None:
    spec = lava_spec("lava:bcm2711-rpi-4-b")
    found = (spec.device_type, spec.template, spec.arch, spec.console, spec.qemu)
    assert found == ("bcm2711-rpi-4-b", "uboot", "arm64", "ttyS1", None)
    job = job_of(spec, boot_args="quiet", kernel_compression="gz", steps=STEPS)
    assert job["context"] == {"console_device": "ttyS1", "extra_kernel_args": "quiet"}
    deploy, boot, test = (action for action in job["actions"])  # type: ignore[attr-defined]
    assert deploy["deploy"] == {
        "to": "tftp", "timeout": {"seconds": 600},
        "kernel": {"url": "http://h/Image", "type": "image", "compression": "gz"},
        "dtb": {"url": "http://h/board.dtb"},
        "ramdisk": {"url": "http://h/rootfs.cpio.gz", "compression": "gz"}}
    assert boot["boot"]["method"] == "u-boot" and boot["boot"]["commands"] == "ramdisk"
    assert boot["boot"]["prompts"] == list(spec.prompts)
    assert [d["name"] for d in test["test"]["definitions"]] == ["smoke", "ltp-math"]


def test_x15_takes_a_zimage_and_an_nfs_root() -> None:
    spec = lava_spec("lava:am57xx-beagle-x15")
    assert (spec.arch, spec.console, spec.values["kernel_type"]) == ("arm", "ttyS2", "zimage")
    job = job_of(spec, nfsrootfs_url="http://h/rootfs.tar.xz", nfsrootfs_compression="xz",
                 modules_url="http://h/modules.tar.xz")
    deploy = job["actions"][0]["deploy"]  # type: ignore[index]
    assert "ramdisk" not in deploy and deploy["kernel"]["type"] == "zimage"
    assert deploy["nfsrootfs"] == {"url": "http://h/rootfs.tar.xz", "compression": "xz"}
    assert deploy["modules"] == {"url": "http://h/modules.tar.xz", "compression": "xz"}
    assert job["actions"][1]["boot"]["commands"] == "nfs"  # type: ignore[index]
    assert job["context"] == {"console_device": "ttyS2"}  # no boot args: the lab's own
    assert len(job["actions"]) == 2  # type: ignore[arg-type]  # boot only: no test action


def test_no_qemu_value_reaches_a_board_job() -> None:
    text = render_job("uboot", board_inputs(lava_spec("lava:bcm2711-rpi-4-b"), "http://h",
                                            command_line="console=ttyAMA0 panic=-1",
                                            context={"arch": "aarch64"}))
    assert "ttyAMA0" not in text and "aarch64" not in text and "image_arg" not in text


def test_a_wrong_kernel_type_is_one_line_naming_it() -> None:
    with pytest.raises(UserError) as error:
        template_values("uboot", {"kernel_type": "bzimage"})
    assert str(error.value) == ("LAVA job template 'uboot': kernel_type 'bzimage' is not one "
                                "of image, zimage, uimage; set a valid one in the device's "
                                "`values:`")
    with pytest.raises(UserError, match=r"^LAVA job template 'uboot' takes no value 'colour'; "
                       r"its values: dtb, kernel_type, root$"):
        template_values("uboot", {"colour": "red"})
    with pytest.raises(UserError, match=r"^LAVA job template 'qemu' takes no value "
                       r"'kernel_type'; its values: none$"):
        render_job("qemu", JobInputs("qemu", "x", "http://k", "http://r",
                                     values={"kernel_type": "image"}))


@pytest.mark.parametrize(("entry", "message"), [
    ("{device_type: rpi, template: uboot, provision_as: qemu-arm64, values: "
     "{kernel_type: bzimage}}",
     "entry 'rpi': LAVA job template 'uboot': kernel_type 'bzimage' is not one of image"),
    ("{device_type: rpi, template: uboot, provision_as: qemu-arm64, colour: red}",
     "entry 'rpi': unknown key 'colour'; valid keys: console, debian_flavour, device_type, "
     "kernel_args, kernel_start_message, prompts, provision_as, template, values"),
    ("{device_type: rpi, provision_as: qemu-arm64}", "entry 'rpi': missing key 'template'"),
    ("{device_type: rpi, template: uboot, provision_as: qemu-arm64, values: [image]}",
     "entry 'rpi': key 'values' is ['image']: expected a mapping of the template's values"),
    ("{device_type: rpi, template: grub, provision_as: qemu-arm64}",
     "entry 'rpi': no LAVA job template 'grub'; known: qemu, uboot"),
])
def test_a_bad_device_entry_names_file_entry_and_key(lab_dir: Path, entry: str,
                                                     message: str) -> None:
    (lab_dir / "lava" / "devices.yaml").write_text(f"devices:\n  rpi: {entry}\n")
    with pytest.raises(UserError) as error:
        load_lava_devices()
    assert str(error.value).startswith(f"{lab_dir / 'lava' / 'devices.yaml'}: {message}")
    assert "\n" not in str(error.value)


def test_the_lab_dir_replaces_the_device_table(lab_dir: Path) -> None:
    (lab_dir / "lava" / "devices.yaml").write_text(
        "devices:\n  my-rpi4:\n    device_type: bcm2711-rpi-4-b\n    template: uboot\n"
        "    provision_as: qemu-arm64\n    console: ttyS0\n")
    spec = lava_spec("lava:my-rpi4")
    found = (spec.console, spec.values["kernel_type"], spec.values["dtb"])
    assert found == ("ttyS0", "image", None)
    with pytest.raises(UserError, match="unknown LAVA device 'lava:bcm2711-rpi-4-b'"):
        lava_spec("lava:bcm2711-rpi-4-b")  # the packaged table is replaced, not merged


def test_a_board_needs_its_device_tree() -> None:
    spec = lava_spec("lava:bcm2711-rpi-4-b")
    with pytest.raises(UserError, match=r"^lava:bcm2711-rpi-4-b boots with a device tree and "
                       r"none was given: pass --lkft-dtb .*, broadcom/bcm2711-rpi-4-b.dtb of "
                       r"your kernel build \(arch/arm64/boot/dts/broadcom/bcm2711-rpi-4-b.dtb"):
        need_dtb(spec, None)
    need_dtb(spec, "http://h/x.dtb")
    need_dtb(lava_spec("lava:qemu"), None)


def test_lkft_lava_job_prints_a_board_job(tmp_path: Path) -> None:
    """`lkft lava job` for a board: the given kernel, dtb and rootfs by URL, no download."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lkft"), "lava", "job",
         "--device", "lava:bcm2711-rpi-4-b", "--kernel", str(arm64_image(tmp_path / "Image")),
         "--dtb", str(file_of(tmp_path / "bcm2711-rpi-4-b.dtb", b"\xd0\x0d\xfe\xed")),
         "--rootfs", str(file_of(tmp_path / "rootfs.cpio.gz", gzip.compress(write_cpio(
             [Entry("init", 0o100755, b"#!/bin/sh\n")])))),
         "--cache-dir", str(tmp_path / "cache"), "--command", "uname -a"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    job = yaml.safe_load(done.stdout)
    deploy = job["actions"][0]["deploy"]
    assert deploy["to"] == "tftp" and deploy["kernel"]["type"] == "image"
    assert deploy["dtb"]["url"].endswith("/bcm2711-rpi-4-b.dtb")
    assert job["actions"][1]["boot"]["method"] == "u-boot"


def lkft_lava_job(*args: str) -> str:
    """`lkft lava job ARGS`' output; its error in the assertion."""
    done = subprocess.run([str(Path(sys.executable).parent / "lkft"), "lava", "job", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def given_files(tmp_path: Path) -> list[str]:
    """--kernel, --dtb and --rootfs options of files that pass for an arm64 board's."""
    rootfs = gzip.compress(write_cpio([Entry("init", 0o100755, b"#!/bin/sh\n")]))
    return ["--kernel", str(arm64_image(tmp_path / "Image")),
            "--dtb", str(file_of(tmp_path / "bcm2711-rpi-4-b.dtb", b"\xd0\x0d\xfe\xed")),
            "--rootfs", str(file_of(tmp_path / "rootfs.cpio.gz", rootfs)),
            "--cache-dir", str(tmp_path / "cache")]


def boot_of(job: dict[str, Any]) -> dict[str, Any]:
    return dict(next(action["boot"] for action in job["actions"] if "boot" in action))


@pytest.mark.parametrize("name", ["lava:qemu", "lava:bcm2711-rpi-4-b"])
def test_lkft_lava_job_passes_the_start_message_and_prompts(name: str, tmp_path: Path) -> None:
    """`lkft lava job --kernel-start-message R --prompts P...`: the job's boot action
    carries them (LAVA's `parameters: kernel-start-message`, `prompts`), and LAVA's own
    schema takes the job; `--boot-args quiet` alone makes LAVA wait for the prompt only."""
    need_lava_dispatcher()
    printed = lkft_lava_job("--device", name, *given_files(tmp_path),
                            "--kernel-start-message", r"Booting Linux on physical CPU 0x\d+",
                            "--prompts", "board# ", "--prompts", "/ # ", "--command", "uname")
    boot = boot_of(yaml.safe_load(printed))
    assert boot["parameters"] == {"kernel-start-message": r"Booting Linux on physical CPU 0x\d+"}
    assert boot["prompts"] == ["board# ", "/ # "]
    schema = lava_schema(tmp_path, printed)
    assert schema.returncode == 0, schema.stderr
    quiet = boot_of(yaml.safe_load(lkft_lava_job("--device", name, *given_files(tmp_path),
                                                 "--boot-args", "quiet")))
    assert quiet["parameters"] == {"kernel-start-message": ""}
    assert quiet["prompts"] == list(lava_spec(name).prompts)


def test_a_bad_start_message_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "lkft"), "lava", "job", "--device",
                           "lava:qemu", "--kernel-start-message", "Linux (version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "lkft lava: error: --kernel-start-message 'Linux (version': not a regular expression "
        "(missing ), unterminated subpattern at position 6); give a Python regular expression"]


@pytest.mark.parametrize(("board", "extra"), [
    ("bcm2711-rpi-4-b", "earlycon=uart,mmio32,0xfe215040 quiet loglevel=7"),
    ("am57xx-beagle-x15", "quiet loglevel=7")])
def test_boot_args_come_after_the_boards_own(board: str, extra: str, files: str,
                                             tmp_path: Path) -> None:
    """--lkft-boot-args go after the device type's own extra kernel arguments (the rpi4's
    earlycon), which LAVA's `extra_kernel_args` would replace: in the job's context, and
    in the U-Boot `bootargs` LAVA's device type builds from it; without boot args the job
    leaves the device type's own."""
    need_lava_dispatcher()
    spec = lava_spec(f"lava:{board}")
    urls = LabUrls(f"{files}/Image", f"{files}/rootfs.cpio.gz", "gz", f"{files}/board.dtb")

    def job(boot_args: str) -> str:
        artifacts = DeviceArtifacts(kernel=Path("Image"), boot_args=boot_args)
        return render_job("uboot", job_inputs(spec, urls, artifacts, Timeouts(), "boot", 30))

    assert "extra_kernel_args" not in yaml.safe_load(job(""))["context"]
    text = job("quiet loglevel=7")
    assert yaml.safe_load(text)["context"]["extra_kernel_args"] == extra
    result, _ = lava_validate(tmp_path, spec.device_type, text)
    assert result["result"] == "pass", result
    assert f" {extra} " in (tmp_path / "device.yaml").read_text()  # U-Boot's bootargs


# Each board's default: Debian's kernel flavour that carries its device tree, and a string
# of that device tree's root `compatible` (the right board's).
BOARD_DEFAULTS = {"bcm2711-rpi-4-b": ("arm64", b"raspberrypi,4-model-b"),
                  "am57xx-beagle-x15": ("armmp", b"ti,am572x-beagle-x15")}


@pytest.mark.parametrize("board", BOARDS)
def test_a_board_boots_debians_kernel_with_its_device_tree(board: str, private_cache: Path,
                                                           tmp_path: Path) -> None:
    """`lkft lava job --device lava:<board>` with no --kernel and no --dtb: Debian's kernel
    of the board's flavour (not the cloud one of its QEMU twin) and the board's device tree
    from that kernel's package, served as the file the package has; the job passes
    lava-run's validation (every URL answers)."""
    need_lava_dispatcher()
    flavour, compatible = BOARD_DEFAULTS[board]
    published = private_cache / "published"
    published.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        SimpleHTTPRequestHandler, directory=str(published)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        printed = lkft_lava_job("--device", f"lava:{board}", "--cache-dir", str(private_cache),
                                "--artifacts-url", base, "--command", "uname -a")
        job = yaml.safe_load(printed)
        deploy = job["actions"][0]["deploy"]
        result, log = lava_validate(tmp_path, job["device_type"], printed)
    finally:
        server.shutdown()
        server.server_close()
    assert result["result"] == "pass", (result, log[-3000:])
    kernel_name = rf"/linux-image-[0-9.]+-[0-9]+-{flavour}\.kernel$"  # not -cloud-arm64
    assert re.search(kernel_name, deploy["kernel"]["url"]), deploy["kernel"]
    dtb_url = deploy["dtb"]["url"]
    dtb_name = lava_spec(f"lava:{board}").values["dtb"]
    assert dtb_url.startswith(base) and dtb_url.endswith("/" + Path(dtb_name).name)
    served = (published / dtb_url.removeprefix(base + "/")).read_bytes()
    assert served == deb_member(private_cache, board, f"usr/lib/linux-image-*/{dtb_name}")
    assert served.startswith(b"\xd0\x0d\xfe\xed") and compatible in served


def test_a_pytest_run_on_a_board_takes_its_default_kernel_and_dtb(private_cache: Path,
                                                                   tmp_path: Path) -> None:
    """pytest --lkft-device=lava:bcm2711-rpi-4-b with no kernel and no dtb: the run does not
    stop at start; its job (job.yaml, written before submitting: the lab's URL answers
    nothing, so the boot fails saying so) deploys Debian's arm64 kernel and the Pi's
    device tree from its package, published in the run's cache."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "-p", "no:cacheprovider",
         str(HERE.parent / "testsuites" / "test_boot.py"), "--lkft-device=lava:bcm2711-rpi-4-b",
         "--lkft-lava-url=http://127.0.0.1:9", f"--lkft-results-dir={tmp_path / 'results'}",
         f"--lkft-cache-dir={private_cache}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "LKFT_LAVA_TOKEN": "x", "LKFT_LAVA_RETRY": "1"})
    assert "cannot be reached" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    job = yaml.safe_load((tmp_path / "results" / "lava:bcm2711-rpi-4-b" / "boot" /
                          "job.yaml").read_text())
    deploy = job["actions"][0]["deploy"]
    assert re.search(r"/linux-image-[0-9.]+-[0-9]+-arm64\.kernel$", deploy["kernel"]["url"])
    digest, name = deploy["dtb"]["url"].split("/")[-2:]
    assert name == "bcm2711-rpi-4-b.dtb"
    served = (private_cache / "published" / digest / name).read_bytes()
    assert served == deb_member(private_cache, "bcm2711-rpi-4-b",
                                "usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb")


def deb_member(cache: Path, board: str, pattern: str) -> bytes:
    """A file of the board's default kernel package, read with dpkg-deb and tar."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts

    spec = lava_spec(f"lava:{board}").boots
    assert spec is not None and spec.debian is not None
    with ArtifactCache(cache) as artifacts:
        deb = default_artifacts(spec, cache, artifacts.fetch).kernel_deb
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                         check=True).stdout
    return subprocess.run(["tar", "-xO", "--wildcards", f"./{pattern}"], input=tar,
                          capture_output=True, check=True).stdout


def file_of(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def arm64_image(path: Path) -> Path:
    """A file that is an arm64 Image as far as its header and size go (magic at 0x38)."""
    return file_of(path, bytes(0x38) + b"ARM\x64" + bytes(MIN_SIZE))


# --- LAVA's own checks ------------------------------------------------------------------

def need_lava_dispatcher() -> None:
    """Skip, naming the packages, where LAVA's dispatcher or device types are absent (fail
    under CI)."""
    missing = [what for what, there in (
        ("lava-dispatcher (lava-run)", shutil.which("lava-run")),
        ("lava-server (its device-type templates)",
         Path("/usr/share/lava-server/device-types/base-uboot.jinja2").exists()),
        ("u-boot-tools (mkimage, for the ramdisk's U-Boot header)", shutil.which("mkimage")),
        ("LAVA's Python packages in /usr/bin/python3", Path(SYSTEM_PYTHON).exists() and
         subprocess.run([SYSTEM_PYTHON, "-c", "import lava_common.schemas, lava_dispatcher"],
                        capture_output=True).returncode == 0))
        if not there]
    if missing:
        message = (f"needs {', '.join(missing)}: apt-get install lava-dispatcher lava-server "
                   "u-boot-tools (Debian 12)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web server for the job's URLs (lava-run checks that they answer)."""
    folder = tmp_path_factory.mktemp("files")
    for name in ("Image", "board.dtb", "rootfs.cpio.gz", "rootfs.tar.xz", "modules.tar.xz"):
        (folder / name).write_bytes(b"x")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def lava_schema(tmp_path: Path, job: str) -> subprocess.CompletedProcess[str]:
    """LAVA's job schema (strict) on `job`."""
    (tmp_path / "job.yaml").write_text(job)
    return subprocess.run([SYSTEM_PYTHON, str(HERE / "lava_validate.py"), "schema",
                           str(tmp_path / "job.yaml")], capture_output=True, text=True)


def lava_validate(tmp_path: Path, device_type: str, job: str) -> tuple[dict[str, str], str]:
    """LAVA's schema check, then lava-run's validation against a stand-in board of
    `device_type`: lava-run's result (result.yaml) and its log."""
    schema = lava_schema(tmp_path, job)
    assert schema.returncode == 0, schema.stderr
    devices = tmp_path / "devices"
    devices.mkdir(exist_ok=True)
    (devices / "board-01.jinja2").write_text(STAND_IN_DEVICE.format(device_type=device_type))
    device = subprocess.run([SYSTEM_PYTHON, str(HERE / "lava_validate.py"), "device",
                             str(devices), "board-01", str(tmp_path / "job.yaml")],
                            capture_output=True, text=True, check=True)
    (tmp_path / "device.yaml").write_text(device.stdout)
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir(exist_ok=True)
    if shutil.which("in.tftpd") is None:  # LAVA checks only that the worker has one
        (stand_ins / "in.tftpd").write_text("#!/bin/sh\nexit 0\n")
        (stand_ins / "in.tftpd").chmod(0o755)
    (tmp_path / "tftp").mkdir(exist_ok=True)
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    # a job id of its own: lava-run removes /var/lib/lava/dispatcher/tmp/<id> when done
    job_id = f"lkft-validate-{os.getpid()}-{tmp_path.name}"
    run = subprocess.run([SYSTEM_PYTHON, str(HERE / "lava_validate.py"), "pipeline",
                          str(tmp_path / "tftp"), job_id, str(out),
                          str(tmp_path / "device.yaml"), str(tmp_path / "job.yaml")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{stand_ins}:{os.environ['PATH']}"})
    shutil.rmtree(DISPATCHER_TMP / job_id, ignore_errors=True)  # a qemu job's stays behind
    return dict(yaml.safe_load((out / "result.yaml").read_text())), run.stdout + run.stderr


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("steps", [[], STEPS], ids=["boot", "two-suites"])
def test_board_jobs_pass_lavas_own_validation(board: str, steps: list[Step], files: str,
                                              tmp_path: Path) -> None:
    """Boot-only and two suites' jobs on each board pass LAVA's schema and lava-run's
    validation; the kernel type is one the device type boots as it is (LAVA warns when it
    has to fall back to bootm and convert the kernel)."""
    need_lava_dispatcher()
    spec = lava_spec(f"lava:{board}")
    job = render_job(spec.template, board_inputs(spec, files, steps=steps, boot_args="quiet"))
    result, log = lava_validate(tmp_path, spec.device_type, job)
    assert result["result"] == "pass", result
    assert "uboot-commands" in (tmp_path / "out" / "description.yaml").read_text()
    assert "falling back to bootm" not in log


def test_an_nfs_root_passes_lavas_own_validation(files: str, tmp_path: Path) -> None:
    need_lava_dispatcher()
    spec = lava_spec("lava:bcm2711-rpi-4-b")
    job = render_job("uboot", board_inputs(spec, files, steps=STEPS[:1],
                                           nfsrootfs_url=f"{files}/rootfs.tar.xz",
                                           nfsrootfs_compression="xz",
                                           modules_url=f"{files}/modules.tar.xz"))
    result, _ = lava_validate(tmp_path, spec.device_type, job)
    assert result["result"] == "pass", result


NFS_BOARD = """
devices:
  rpi4-nfs:
    device_type: bcm2711-rpi-4-b
    template: uboot
    provision_as: qemu-arm64
    console: ttyS1
    values: {kernel_type: image, dtb: broadcom/bcm2711-rpi-4-b.dtb, root: nfs}
"""


def test_a_board_with_an_nfs_root_gets_the_rootfs_and_its_overlays_as_a_tarball(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A board whose entry says `root: nfs` (here in a lab directory): `lkft lava job`
    deploys the rootfs with its overlays (a modules tarball here) as an `nfsrootfs`
    tarball, not a ramdisk, and boots U-Boot's nfs commands; the tarball holds what the
    initramfs would, with owners, links and the console node; the job passes LAVA's own
    validation (every URL answers) and LAVA's U-Boot commands mount the root over NFS."""
    need_lava_dispatcher()
    (tmp_path / "lab" / "lava").mkdir(parents=True)
    (tmp_path / "lab" / "lava" / "devices.yaml").write_text(NFS_BOARD)
    monkeypatch.setenv("LKFT_LAB_DIR", str(tmp_path / "lab"))
    rootfs = gzip.compress(write_cpio([Entry("init", 0o100755, b"#!/bin/sh\n"),
                                       Entry("bin/busybox", 0o100755, b"busybox"),
                                       Entry("bin/sh", 0o120777, b"busybox"),
                                       Entry("dev/console", 0o20600, rdev=(5, 1))]))
    modules = tmp_path / "modules.tar.xz"
    with tarfile.open(modules, "w:xz") as tar:
        member = tarfile.TarInfo("lib/modules/6.1.0-lkft/kernel/fs/x.ko")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"elf"))
    published = tmp_path / "cache" / "published"
    published.mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        SimpleHTTPRequestHandler, directory=str(published)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        printed = lkft_lava_job("--device", "lava:rpi4-nfs", *given_files(tmp_path),
                                "--rootfs", str(file_of(tmp_path / "nfs.cpio.gz", rootfs)),
                                "--modules", str(modules), "--artifacts-url", base,
                                "--command", "uname -a")
        (tmp_path / "validate").mkdir()
        result, log = lava_validate(tmp_path / "validate", "bcm2711-rpi-4-b", printed)
    finally:
        server.shutdown()
        server.server_close()
    assert result["result"] == "pass", (result, log[-3000:])
    job = yaml.safe_load(printed)
    deploy = job["actions"][0]["deploy"]
    assert "ramdisk" not in deploy and deploy["nfsrootfs"]["compression"] == "gz"
    assert boot_of(job)["commands"] == "nfs"
    assert "root=/dev/nfs" in (tmp_path / "validate" / "device.yaml").read_text()
    url = deploy["nfsrootfs"]["url"]
    with tarfile.open(published / url.removeprefix(base + "/")) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert tar.extractfile("init").read() == b"#!/bin/sh\n"  # type: ignore[union-attr]
    assert {"init", "bin/busybox", "bin/sh", "dev/console",
            "lib/modules/6.1.0-lkft/kernel/fs/x.ko"} <= set(members)
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    console = members["dev/console"]
    assert console.ischr() and (console.devmajor, console.devminor) == (5, 1)
    assert members["init"].mode == 0o755 and members["init"].uid == 0


def test_the_checks_have_teeth(files: str, tmp_path: Path) -> None:
    """What pytest-lkft refuses, LAVA refuses too: a kernel type LAVA does not know fails
    its schema (the template filled without pytest-lkft's check of the choices); and the
    x15 given an arm64-style `image` is a kernel its device type cannot boot as it is
    (LAVA falls back to bootm, which the test above sees)."""
    need_lava_dispatcher()
    spec = lava_spec("lava:am57xx-beagle-x15")
    inputs = board_inputs(spec, files, values={**spec.values, "kernel_type": "bzimage"})
    unchecked = dump(fill(load_template("uboot")["job"],
                          job_values(load_template("uboot"), inputs)))
    schema = lava_schema(tmp_path, unchecked)
    assert schema.returncode != 0 and "kernel" in schema.stderr, schema.stderr
    job = render_job("uboot", board_inputs(spec, files,
                                           values={**spec.values, "kernel_type": "image"}))
    _, log = lava_validate(tmp_path, spec.device_type, job)
    assert "No booti parameters available, falling back to bootm" in log, log[-2000:]


def test_the_qemu_template_still_passes_lavas_own_validation(files: str,
                                                             tmp_path: Path) -> None:
    """The template values do not disturb the qemu template: its job passes LAVA's checks
    against a device of LAVA's qemu device type (tests/test_lava.py does it in the lab)."""
    need_lava_dispatcher()
    spec = lava_spec("lava:qemu")
    assert spec.qemu is not None
    job = render_job("qemu", JobInputs("qemu", "lkft", f"{files}/Image",
                                       f"{files}/rootfs.cpio.gz", steps=STEPS,
                                       context=qemu_context(spec.qemu)))
    result, _ = lava_validate(tmp_path, "qemu", job)
    assert result["result"] == "pass", result


@pytest.mark.parametrize("kernel", ["given", "built"])
def test_a_run_on_a_board_without_its_device_tree_stops_at_start(kernel: str,
                                                                  tmp_path: Path) -> None:
    """pytest --lkft-device=lava:<board> --lkft-kernel=... (or --lkft-tree=..., a kernel
    to build, which brings no device tree either) without --lkft-dtb: one line, before any
    build or job (the lab's URL answers nothing; it is never asked). (The board's default
    kernel brings its own device tree: tests below.)"""
    given = f"--lkft-kernel={arm64_image(tmp_path / 'Image')}"
    if kernel == "built":
        tree = tmp_path / "linux"  # what a kernel source's top has, enough for the checks
        tree.mkdir()
        for name in ("Makefile", "Kconfig", "Kbuild"):
            (tree / name).write_text("")
        given = f"--lkft-tree={tree}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q",
         str(HERE.parent / "testsuites" / "test_boot.py"), "--lkft-device=lava:bcm2711-rpi-4-b",
         given, "--lkft-lava-url=http://127.0.0.1:9",
         f"--lkft-results-dir={tmp_path / 'results'}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "LKFT_LAVA_TOKEN": "x", "LKFT_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]
    assert errors == ["ERROR: lava:bcm2711-rpi-4-b boots with a device tree and none was "
                      "given: pass --lkft-dtb (`lkft lava job --dtb`), "
                      "broadcom/bcm2711-rpi-4-b.dtb of your kernel build "
                      "(arch/arm64/boot/dts/broadcom/bcm2711-rpi-4-b.dtb), as a path or URL"]


# --- A U-Boot board that boots: QEMU's -------------------------------------------------

UBOOT_BIN = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")  # Debian's u-boot-qemu
# QEMU's arm64 virt machine as a U-Boot board of base-uboot.jinja2: U-Boot from u-boot-qemu
# as its firmware, the "serial line" QEMU's stdio, the "TFTP server" QEMU's user network
# serving the worker's TFTP directory (at 10.0.2.2, the dispatcher_ip the job's U-Boot
# commands fetch from), the device tree QEMU's own (at the start of RAM: no dtb is
# deployed), power a stand-in. QEMU's stdio delivers the kernel's first messages at once,
# not at a UART's pace, so LAVA would look for "Linux version" in a window they have
# already left: the board's kernel-start-message is off (the shell prompt is still waited
# for).
QEMU_UBOOT_BOARD = """{{% extends 'base-uboot.jinja2' %}}
{{% set booti_kernel_addr = '0x40400000' %}}
{{% set booti_ramdisk_addr = '0x46000000' %}}
{{% set booti_dtb_addr = '0x40000000' %}}
{{% set bootm_kernel_addr = '0x40400000' %}}
{{% set bootm_ramdisk_addr = '0x46000000' %}}
{{% set bootm_dtb_addr = '0x40000000' %}}
{{% set uboot_mkimage_arch = 'arm64' %}}
{{% set console_device = console_device|default('ttyAMA0') %}}
{{% set bootloader_prompt = '=>' %}}
{{% set kernel_start_message = '' %}}
{{% set connection_command = '{qemu}' %}}
{{% set power_on_command = '/bin/true' %}}
{{% set power_off_command = '/bin/true' %}}
{{% set hard_reset_command = '/bin/true' %}}
"""
QEMU_UBOOT = ("qemu-system-aarch64 -machine virt -cpu cortex-a57 -m 1024 -nographic -no-reboot "
              "-bios {uboot} -netdev user,id=n0,tftp={tftp} -device virtio-net-pci,netdev=n0")


@pytest.mark.qemu
def test_a_u_boot_board_boots_the_job_for_real(artifact_cache: Path, tmp_path: Path) -> None:
    """The uboot template's job, run by lava-run itself on QEMU's U-Boot: LAVA deploys the
    kernel and the initramfs (its test shell added, a U-Boot header put on) to TFTP, U-Boot
    fetches them over the network and boots them with booti, the suite's commands run and
    come back as LAVA test cases with their exit statuses."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    need_lava_dispatcher()
    need_u_boot_board()
    with ArtifactCache(artifact_cache) as cache:
        found = default_artifacts(load_devices().get("qemu-arm64"), artifact_cache,
                                  cache.fetch)
    served = tmp_path / "files"
    served.mkdir()
    shutil.copy(found.kernel, served / "Image")
    shutil.copy(found.rootfs, served / "rootfs.cpio.gz")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        result, log = lava_run_board(tmp_path, render_job("uboot", JobInputs(
            "qemu-uboot-arm64", "lkft on U-Boot", f"{base}/Image", f"{base}/rootfs.cpio.gz",
            console="ttyAMA0", boot_timeout=300, values={"kernel_type": "image"},
            prompts=list(lava_spec("lava:bcm2711-rpi-4-b").prompts),
            steps=[Step("smoke", "uname", "uname -a", 120),
                   Step("smoke", "false", "false", 120)])))
    finally:
        server.shutdown()
        server.server_close()
    assert result["result"] == "pass", (result, log[-3000:])
    for line in ("Starting kernel", "booti 0x40400000 0x46000000 0x40000000",
                 "AArch64 Linux RAMDisk Image", "lkft: init done",
                 "TEST_CASE_ID=uname RESULT=pass UNITS=rc MEASUREMENT=0",
                 "TEST_CASE_ID=false RESULT=fail UNITS=rc MEASUREMENT=1"):
        assert line in log, line


def need_u_boot_board() -> None:
    """Skip (fail under CI) without QEMU's U-Boot or lava-run's root."""
    need_qemu("qemu-system-aarch64")
    missing = [what for what, there in (
        (f"u-boot-qemu ({UBOOT_BIN})", UBOOT_BIN.exists()),
        ("root (lava-run runs as root)", os.geteuid() == 0)) if not there]
    if missing:
        message = f"a U-Boot board in QEMU needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def lava_run_board(tmp_path: Path, job: str) -> tuple[dict[str, str], str]:
    """lava-run running `job` on QEMU's U-Boot board: its result and log."""
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "qemu-uboot-01.jinja2").write_text(
        QEMU_UBOOT_BOARD.format(qemu=QEMU_UBOOT.format(uboot=UBOOT_BIN, tftp=tftp)))
    (tmp_path / "job.yaml").write_text(job)
    device = subprocess.run([SYSTEM_PYTHON, str(HERE / "lava_validate.py"), "device",
                             str(devices), "qemu-uboot-01", str(tmp_path / "job.yaml")],
                            capture_output=True, text=True, check=True)
    (tmp_path / "device.yaml").write_text(device.stdout)
    (tmp_path / "dispatcher.yaml").write_text("dispatcher_ip: 10.0.2.2\n")
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    if shutil.which("in.tftpd") is None:  # QEMU serves TFTP here; LAVA checks for one
        (stand_ins / "in.tftpd").write_text("#!/bin/sh\nexit 0\n")
        (stand_ins / "in.tftpd").chmod(0o755)
    out = tmp_path / "out"
    run = subprocess.run([SYSTEM_PYTHON, str(HERE / "lava_validate.py"), "run", str(tftp),
                          f"lkft-uboot-{os.getpid()}-{tmp_path.name}", str(out),
                          str(tmp_path / "device.yaml"), str(tmp_path / "job.yaml"),
                          str(tmp_path / "dispatcher.yaml")],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PATH": f"{stand_ins}:{os.environ['PATH']}"})
    return dict(yaml.safe_load((out / "result.yaml").read_text())), run.stdout + run.stderr
