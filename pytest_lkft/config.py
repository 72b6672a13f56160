"""Device options (`--lkft-device`, artifacts, timeouts, console, suites), resolved once.

Order: command line, then the `LKFT_*` environment variable (then the ini file, for
`lkft_tests`). Every value is checked here,
before anything boots, and a bad one is a one-line `UserError` naming the value, where it
came from and what to do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_lkft.devices.qemu import Timeouts, qemu_package_hint
from pytest_lkft.errors import UserError
from pytest_lkft.kernelimage import arch_matches, describe, image_arch
from pytest_lkft.lab import DeviceTable, load_devices
from pytest_lkft.ltp import Shard, parse_shard

if TYPE_CHECKING:
    import pytest

DEVICE_HELP = "QEMU device to test on, e.g. qemu-arm64 (repeat for a device matrix)"
TESTS_HELP = ("Suites to run, by SQUAD suite name or glob: boot,smoke,kselftest-* "
              "(repeatable; default all)")

# (option, dest, environment variable, metavar, help)
ARTIFACT_OPTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("--lkft-kernel", "lkft_kernel", "LKFT_KERNEL", "PATH|URL",
     "Kernel image to boot (default: the distribution's kernel for the device)"),
    ("--lkft-rootfs", "lkft_rootfs", "LKFT_ROOTFS", "PATH|URL",
     "Root filesystem: ext4 or cpio, optionally .gz/.xz/.zst (default: a busybox initramfs)"),
    ("--lkft-modules", "lkft_modules", "LKFT_MODULES", "PATH|URL",
     "Kernel modules tarball, put into the rootfs"),
    ("--lkft-kselftest", "lkft_kselftest", "LKFT_KSELFTEST", "PATH|URL",
     "Kselftest install tarball (LKFT's kselftest.tar.xz), laid over the rootfs at "
     "/opt/kselftest"),
    ("--lkft-dtb", "lkft_dtb", "LKFT_DTB", "PATH|URL", "Device tree blob"),
    ("--lkft-ltp", "lkft_ltp", "LKFT_LTP", "PATH|URL",
     "LTP install tarball (the /opt/ltp tree), put into the rootfs for the ltp-* suites"),
    ("--lkft-ltp-runtest", "lkft_ltp_runtest", "LKFT_LTP_RUNTEST", "NAME[,NAME]",
     "LTP runtest files to run (default: LKFT's set, those the tarball has); without "
     "--lkft-ltp, those of the rootfs's own /opt/ltp"),
    ("--lkft-ltp-skipfile", "lkft_ltp_skipfile", "LKFT_LTP_SKIPFILE", "PATH",
     "LTP tags to skip, one a line, # comments (runltp -S)"),
    ("--lkft-ltp-shard", "lkft_ltp_shard", "LKFT_LTP_SHARD", "INDEX/TOTAL",
     "Run the INDEX-th LTP test of each runtest file and every TOTAL-th after it"),
    ("--lkft-boot-args", "lkft_boot_args", "LKFT_BOOT_ARGS", "ARGS",
     "Extra kernel command line arguments"),
    ("--lkft-qemu-binary", "lkft_qemu_binary", "LKFT_QEMU_BINARY", "PATH",
     "QEMU binary to use instead of the device's"),
    ("--lkft-timeouts", "lkft_timeouts", "LKFT_TIMEOUTS", "boot=S,test=S",
     "Per-phase timeouts in seconds (default boot=300,test=600)"),
    ("--lkft-results-dir", "lkft_results_dir", "LKFT_RESULTS_DIR", "DIR",
     "Where console logs and reproducers go (default ./lkft-results)"),
)


@dataclass(frozen=True)
class Settings:
    """The device side of a run, resolved once in pytest_configure."""

    devices: tuple[str, ...] = ()
    kernel: str | None = None
    rootfs: str | None = None
    modules: str | None = None
    kselftest: str | None = None
    dtb: str | None = None
    ltp: str | None = None
    ltp_runtest: tuple[str, ...] = ()
    ltp_skipfile: str | None = None
    ltp_shard: Shard | None = None
    boot_args: str = ""
    qemu_binary: str | None = None
    timeouts: Timeouts = Timeouts()
    results_dir: Path = Path("lkft-results")
    console: bool = False
    tests: tuple[str, ...] = ()  # suite names or globs; () runs every suite
    tests_source: str = "--lkft-tests"

    @classmethod
    def from_config(cls, config: pytest.Config, lab_devices: Sequence[str] = ()) -> Settings:
        """Resolve and check every device option; UserError on the first bad one.

        `lab_devices` are the names a lab file defines (labgrid boards, checked there).
        """
        found = {dest: _value(config, option, dest, env)
                 for option, dest, env, _, _ in ARTIFACT_OPTIONS}
        values = {dest: value for dest, (value, _) in found.items()}
        sources = {dest: source for dest, (_, source) in found.items()}
        timeouts_text = values["lkft_timeouts"]
        tests, tests_source = _tests(config)
        settings = cls(
            devices=_devices(config),
            kernel=values["lkft_kernel"],
            rootfs=values["lkft_rootfs"],
            modules=values["lkft_modules"],
            kselftest=values["lkft_kselftest"],
            dtb=values["lkft_dtb"],
            ltp=values["lkft_ltp"],
            ltp_runtest=tuple(n.strip() for n in (values["lkft_ltp_runtest"] or "").split(",")
                              if n.strip()),
            ltp_skipfile=values["lkft_ltp_skipfile"],
            ltp_shard=parse_shard(values["lkft_ltp_shard"], sources["lkft_ltp_shard"])
            if values["lkft_ltp_shard"] else None,
            boot_args=values["lkft_boot_args"] or "",
            qemu_binary=values["lkft_qemu_binary"],
            timeouts=Timeouts.parse(timeouts_text, sources["lkft_timeouts"]) if timeouts_text
            else Timeouts(),
            results_dir=Path(config.invocation_params.dir,
                             values["lkft_results_dir"] or "lkft-results"),
            console=bool(config.getoption("lkft_console"))
            or config.getoption("capture") == "no",
            tests=tests,
            tests_source=tests_source,
        )
        settings.check(load_devices(), lab_devices, sources)
        return settings

    def check(self, table: DeviceTable, lab_devices: Sequence[str] = (),
              sources: dict[str, str] | None = None) -> None:
        """Refuse unknown devices, missing files, missing QEMU and wrong-arch kernels.

        `sources` names where each value came from (an option or an LKFT_* variable).
        A --lkft-kselftest problem is not checked here: the kselftest suite reports it and
        the other suites run (`pytest_lkft.suites.kselftest_install`).
        """
        where = sources or {}
        for dest, value in (("lkft_kernel", self.kernel), ("lkft_rootfs", self.rootfs),
                            ("lkft_modules", self.modules), ("lkft_dtb", self.dtb),
                            ("lkft_ltp", self.ltp), ("lkft_ltp_skipfile", self.ltp_skipfile)):
            if value and not is_url(value) and not Path(value).is_file():
                source = where.get(dest, "--" + dest.replace("_", "-"))
                raise UserError(f"{source} {value}: no such file; check the path or give a URL")
        for name in (n for n in self.devices if n not in lab_devices):
            spec = table.get(name)
            binary = self.qemu_binary or spec.qemu
            if shutil.which(binary) is None:
                raise UserError(qemu_package_hint(spec, binary))
            if self.kernel and not is_url(self.kernel):
                found = image_arch(Path(self.kernel))
                if not arch_matches(spec.arch, found):
                    raise UserError(f"--lkft-kernel {self.kernel} is {describe(str(found))} but "
                                    f"{name} needs an {spec.arch} kernel; pass a kernel built "
                                    f"for {spec.arch} or choose another device")


def is_url(value: str) -> bool:
    """True for http(s) and file URLs, which go through the artifact cache."""
    return value.startswith(("http://", "https://", "file://"))


def _value(config: pytest.Config, option: str, dest: str, env: str) -> tuple[str | None, str]:
    """(value, where it came from): the command line, else the environment variable."""
    value = config.getoption(dest, default=None)
    if value:
        return str(value), option
    return os.environ.get(env) or None, env


def _tests(config: pytest.Config) -> tuple[tuple[str, ...], str]:
    """(suite names or globs, where they came from): --lkft-tests, LKFT_TESTS, lkft_tests ini."""
    given: list[str] = list(config.getoption("lkft_tests", default=None) or [])
    source = "--lkft-tests"
    if not given and os.environ.get("LKFT_TESTS"):
        given, source = [os.environ["LKFT_TESTS"]], "LKFT_TESTS"
    if not given:
        given, source = list(config.getini("lkft_tests") or []), f"lkft_tests in {config.inipath}"
    names = [n.strip() for value in given for n in value.split(",") if n.strip()]
    return tuple(dict.fromkeys(names)), source


def _devices(config: pytest.Config) -> tuple[str, ...]:
    names: list[str] = list(config.getoption("lkft_device", default=None) or [])
    if not names and os.environ.get("LKFT_DEVICE"):
        names = os.environ["LKFT_DEVICE"].split(",")
    unique = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    return tuple(unique)


def add_options(group: pytest.OptionGroup) -> None:
    """Add the device options to the plugin's `lkft` option group."""
    group.addoption("--lkft-device", dest="lkft_device", action="append", metavar="NAME",
                    help=f"{DEVICE_HELP} [env LKFT_DEVICE, comma-separated]")
    for option, dest, env, metavar, help_text in ARTIFACT_OPTIONS:
        group.addoption(option, dest=dest, default=None, metavar=metavar,
                        help=f"{help_text} [env {env}]")
    group.addoption("--lkft-tests", dest="lkft_tests", action="append", metavar="SUITE[,SUITE]",
                    help=f"{TESTS_HELP} [env LKFT_TESTS, ini lkft_tests]")
    group.addoption("--lkft-console", dest="lkft_console", action="store_true", default=False,
                    help="Stream the console to the terminal while it runs (as does -s)")


def add_ini(parser: pytest.Parser) -> None:
    """Add the ini keys of the device options (lkft_tests)."""
    parser.addini("lkft_tests", TESTS_HELP, type="linelist", default=[])
