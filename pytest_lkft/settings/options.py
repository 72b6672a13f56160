"""Every `--lkft-*` option in one table, and the one way a value is resolved.

Each option may also come from an `LKFT_*` environment variable and, for some, an ini
key. The order is: command line, environment, ini, default. An empty value counts as
not given, wherever it comes from. A resolved value remembers where it came from, so a
bad one is refused naming its source: `invalid timeout 'x' for boot in LKFT_TIMEOUTS`.

The pytest side (`pytest_lkft.pytestplugin.options`) adds these options to pytest's
parser; stages read them through a `Resolver`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["value", "list", "flag", "args"]
TOKEN_ENV = "LKFT_SQUAD_TOKEN"


@dataclass(frozen=True)
class Option:
    """One `--lkft-*` option: flag, environment variable, ini key, metavar and help.

    `value` takes one string; `list` is repeatable and its values may hold several
    items separated by commas (so may the environment variable); `flag` is on or off;
    `args` takes one or more values after the flag.
    """

    flag: str
    help: str
    env: str | None = None
    metavar: str | None = None
    kind: Kind = "value"
    ini: str | None = None
    comma: bool = True  # a `list` option's values are comma-separated

    @property
    def dest(self) -> str:
        """The argparse destination: `--lkft-cache-dir` -> `lkft_cache_dir`."""
        return self.flag.removeprefix("--").replace("-", "_")

    def help_text(self) -> str:
        """The help with where else the value may come from."""
        where = []
        if self.env:
            where.append(f"env {self.env}")
            if self.kind == "list":
                where.append("comma-separated")
        if self.ini:
            where.append(f"ini {self.ini}")
        return f"{self.help} [{', '.join(where)}]" if where else self.help


DEVICE_HELP = "Device to test on, e.g. qemu-arm64 (repeat for a device matrix)"
TESTS_HELP = ("Suites to run, by SQUAD suite name or glob: boot,smoke,kselftest-*; "
              "SUITE/CASE runs only those cases of it: kunit/list-kunit-test.* "
              "(repeatable; default all)")

OPTIONS: tuple[Option, ...] = (
    # devices and what they boot
    Option("--lkft-device", DEVICE_HELP, "LKFT_DEVICE", "NAME", "list"),
    Option("--lkft-kernel", "Kernel image to boot (default: the distribution's kernel for "
           "the device)", "LKFT_KERNEL", "PATH|URL"),
    Option("--lkft-rootfs", "Root filesystem: ext4 or cpio, optionally .gz/.xz/.zst, or "
           "debian[:ext4|:cpio] to build a Debian 12 rootfs with the suites' tools "
           "(default: a busybox initramfs)", "LKFT_ROOTFS", "PATH|URL|debian"),
    Option("--lkft-debian-mirror", "A Debian mirror for --lkft-rootfs=debian (default: this "
           "Debian machine's apt sources; needed on Ubuntu and other distributions)",
           "LKFT_DEBIAN_MIRROR", "URL"),
    Option("--lkft-modules", "Kernel modules tarball, put into the rootfs", "LKFT_MODULES",
           "PATH|URL"),
    Option("--lkft-kselftest", "Kselftest install tarball (LKFT's kselftest.tar.xz), laid "
           "over the rootfs at /opt/kselftest", "LKFT_KSELFTEST", "PATH|URL"),
    Option("--lkft-dtb", "Device tree blob", "LKFT_DTB", "PATH|URL"),
    Option("--lkft-ltp", "LTP install tarball (the /opt/ltp tree), put into the rootfs for "
           "the ltp-* suites", "LKFT_LTP", "PATH|URL"),
    Option("--lkft-ltp-src", "LTP source (release tarball or directory) to cross-build for "
           "the device and put into the rootfs for the ltp-* suites", "LKFT_LTP_SRC",
           "TARBALL|DIR|URL"),
    Option("--lkft-ltp-linking", "How --lkft-ltp-src is linked: static (default) or dynamic "
           "(the cross C library is laid into the rootfs)", "LKFT_LTP_LINKING",
           "static|dynamic"),
    Option("--lkft-ltp-timeout", "Seconds one LTP test may run on the device before it is "
           "killed and failed (default 600; times $LTP_TIMEOUT_MUL when set)",
           "LKFT_LTP_TIMEOUT", "S"),
    Option("--lkft-ltp-runtest", "LTP runtest files to run (default: LKFT's set, those the "
           "tarball has); without --lkft-ltp, those of the rootfs's own /opt/ltp",
           "LKFT_LTP_RUNTEST", "NAME[,NAME]"),
    Option("--lkft-ltp-skipfile", "LTP tags to skip, one a line, # comments (runltp -S)",
           "LKFT_LTP_SKIPFILE", "PATH"),
    Option("--lkft-ltp-shard", "Run the INDEX-th LTP test of each runtest file and every "
           "TOTAL-th after it", "LKFT_LTP_SHARD", "INDEX/TOTAL"),
    Option("--lkft-memory", "Guest RAM in MiB instead of the device's (e.g. 2048)",
           "LKFT_MEMORY", "MIB"),
    Option("--lkft-boot-args", "Extra kernel command line arguments", "LKFT_BOOT_ARGS",
           "ARGS"),
    Option("--lkft-kernel-start-message", "Regular expression the console shows when the "
           "kernel starts, its first group the version (default: the device's, the "
           "`Linux version ...` line)",
           "LKFT_KERNEL_START_MESSAGE", "REGEX"),
    Option("--lkft-prompts", "Regular expression of the shell prompt (default: the device's, "
           "`[#$] ` at the end of the output); repeatable", "LKFT_PROMPTS", "REGEX", "list",
           comma=False),
    Option("--lkft-parameter", "A suite parameter, as tuxrun's --parameters: "
           "TORTURE_TIME=30, PERF_TEST_ARGS='-s 81', ...; repeatable", "LKFT_PARAMETERS",
           "NAME=VALUE", "list", comma=False),
    Option("--lkft-libhugetlbfs", "libhugetlbfs source tarball or tree: its tests are built "
           "for the device and laid into the rootfs at /opt/libhugetlbfs",
           "LKFT_LIBHUGETLBFS", "PATH|URL"),
    Option("--lkft-qemu-binary", "QEMU binary to use instead of the device's",
           "LKFT_QEMU_BINARY", "PATH"),
    Option("--lkft-timeouts", "Per-phase timeouts in seconds (default boot=300,test=600,"
           "silence=120: a boot whose console prints nothing that long is stopped)",
           "LKFT_TIMEOUTS", "boot=S,test=S,silence=S"),
    Option("--lkft-results-dir", "Where console logs and reproducers go (default "
           "./lkft-results)", "LKFT_RESULTS_DIR", "DIR"),
    Option("--lkft-tests", TESTS_HELP, "LKFT_TESTS", "SUITE[,SUITE]", "list", "lkft_tests"),
    Option("--lkft-console", "Stream the console to the terminal while it runs (as does -s)",
           kind="flag"),
    Option("--lkft-lab-dir", "Directory of your own device tables (qemu-devices.yaml, "
           "archs.yaml, crash-patterns.yaml, kconfig/), used before the packaged ones",
           "LKFT_LAB_DIR", "DIR"),
    # logs given as results
    Option("--lkft-results", "Test logs (KTAP, kselftest, LTP, kirk JSON, LAVA) to turn into "
           "items", metavar="LOG", kind="args"),
    Option("--lkft-results-device", "Device (SQUAD environment) the --lkft-results logs came "
           "from", metavar="NAME"),
    # the artifact cache
    Option("--lkft-cache-dir", "Artifact cache directory (default ~/.cache/lkft)",
           "LKFT_CACHE_DIR", "DIR"),
    Option("--lkft-cache-url", "KissCache URL prefix, e.g. "
           "http://host:8001/api/v1/fetch/?url=%%s", "LKFT_CACHE_URL", "PREFIX"),
    Option("--lkft-cache-max-size", "Evict least recently used artifacts beyond this size, "
           "e.g. 20G", "LKFT_CACHE_MAX_SIZE", "SIZE"),
    # kernel builds
    Option("--lkft-tree", "Kernel source to build and boot (never written to: the build is "
           "out of tree)", "LKFT_TREE", "DIR"),
    Option("--lkft-target-arch", "Architecture to build for (default: the device's)",
           "LKFT_TARGET_ARCH", "ARCH"),
    Option("--lkft-toolchain", "Toolchain: gcc, gcc-N, clang, clang-N, llvm or llvm-N "
           "(default gcc)", "LKFT_TOOLCHAIN", "NAME"),
    Option("--lkft-kconfig", "Kernel config: a make target (defconfig, tinyconfig), a file or "
           "a URL", "LKFT_KCONFIG", "CONFIG"),
    Option("--lkft-build-targets", "Build targets among config,kernel,modules,dtbs,headers,"
           "kselftest (default config,kernel,modules)", "LKFT_BUILD_TARGETS", "T,T"),
    Option("--lkft-build-dir", "Where the build's artifacts go (default: the build cache)",
           "LKFT_BUILD_DIR", "DIR"),
    Option("--lkft-kconfig-add", "Kconfig fragment: a file, a URL, the name of a packaged "
           "fragment, CONFIG_X=y or make:<target>, merged in order; repeatable",
           metavar="FRAGMENT", kind="list", comma=False),
    Option("--lkft-make-var", "Extra make variable; repeatable", metavar="K=V", kind="list",
           comma=False),
    # labgrid boards
    Option("--lkft-lab", "Lab file mapping device names to labgrid places, e.g. "
           "lab/rpi4.yaml", "LKFT_LAB", "FILE"),
    Option("--lkft-coordinator", "labgrid coordinator HOST:PORT (default 127.0.0.1:20408)",
           "LG_COORDINATOR", "ADDRESS"),
    Option("--lkft-place-timeout", "Seconds to wait for a free place before giving up "
           "(default 600)", "LKFT_PLACE_TIMEOUT", "SECONDS"),
    # LAVA labs
    Option("--lkft-lava-url", "LAVA server to run lava:<device-type> devices on, e.g. "
           "https://lava.example.org (token: env LKFT_LAVA_TOKEN)", "LKFT_LAVA_URL", "URL"),
    Option("--lkft-lava-jobs", "LAVA jobs to keep in flight per pytest process (default 1)",
           "LKFT_LAVA_JOBS", "N"),
    Option("--lkft-lava-queue-timeout", "Seconds a LAVA job may wait in the queue before it "
           "is cancelled (default 3600)", "LKFT_LAVA_QUEUE_TIMEOUT", "SECONDS"),
    Option("--lkft-lava-retry", "Seconds to keep retrying a LAVA lab that does not answer or "
           "answers 5xx (default 60)", "LKFT_LAVA_RETRY", "SECONDS"),
    Option("--lkft-lava-artifacts-url", "Base URL the lab fetches local artifacts from: where "
           "<cache>/published is served (default: a server this process starts, see "
           "--lkft-lava-serve)", "LKFT_LAVA_ARTIFACTS_URL", "URL"),
    Option("--lkft-lava-serve", "HOST:PORT this process serves local artifacts on for the "
           "lab; HOST must be an address the lab reaches (default 127.0.0.1 and a free port)",
           "LKFT_LAVA_SERVE", "HOST:PORT"),
    # reporting
    Option("--lkft-store", "Embedded results store (SQLite file)", "LKFT_STORE", "STORE"),
    Option("--lkft-squad-url", f"SQUAD server to submit results to; token from ${TOKEN_ENV}",
           "LKFT_SQUAD_URL", "URL"),
    Option("--lkft-squad-group", "SQUAD group (default lkft)", "LKFT_SQUAD_GROUP", "GROUP"),
    Option("--lkft-squad-project", "SQUAD project (default local)", "LKFT_SQUAD_PROJECT",
           "PROJECT"),
    Option("--lkft-squad-build", "SQUAD build (default the kernel version, else `git "
           "describe`)", "LKFT_SQUAD_BUILD", "BUILD"),
    Option("--lkft-squad-environment", "SQUAD environment (default the device name)",
           "LKFT_SQUAD_ENVIRONMENT", "ENVIRONMENT"),
    Option("--lkft-known-issues", "YAML file of known issues: matching failures become xfail",
           "LKFT_KNOWN_ISSUES", "ISSUES"),
)
BY_DEST = {option.dest: option for option in OPTIONS}


@dataclass(frozen=True)
class Resolved:
    """A value and where it came from: `source` names it as written (`--lkft-x`, `LKFT_X`,
    `lkft_x in FILE`, or "" when not given), for messages that quote it with its value
    (`LKFT_ROOTFS /x: no such file`); `origin` says what it is, for "from ..." phrases
    (`from LKFT_X environment variable`)."""

    value: Any
    source: str

    def __bool__(self) -> bool:
        return bool(self.value)

    @property
    def origin(self) -> str:
        """`--lkft-x`, `LKFT_X environment variable` or `lkft_x in FILE`."""
        return origin(self.source)


def origin(source: str) -> str:
    """What a source is, for "from ..." phrases: an environment variable says so."""
    if source.isupper():
        return f"{source} environment variable"
    return source


class Resolver:
    """Resolves options: command line, then environment, then ini, then nothing.

    `getoption(dest)` reads the command line (pytest's `config.getoption`, or an argparse
    namespace); `getini(name)` an ini key (None when there is no ini).
    """

    def __init__(self, getoption: Callable[[str], Any],
                 environ: Mapping[str, str] | None = None,
                 getini: Callable[[str], Any] | None = None, inipath: object = None) -> None:
        self.getoption, self.getini, self.inipath = getoption, getini, inipath
        self.environ = os.environ if environ is None else environ

    def value(self, dest: str) -> Resolved:
        """A `value` option: a string, or None when not given anywhere."""
        option = BY_DEST[dest]
        given = self.getoption(dest)
        if given not in (None, "", []):
            return Resolved(str(given), option.flag)
        if option.env and self.environ.get(option.env):
            return Resolved(self.environ[option.env], option.env)
        return Resolved(None, "")

    def values(self, dest: str) -> Resolved:
        """A `list` or `args` option: a tuple of strings, each given once, in order."""
        option = BY_DEST[dest]
        given, source = list(self.getoption(dest) or []), option.flag
        if not given and option.env and self.environ.get(option.env):
            given, source = [self.environ[option.env]], option.env
        if not given and option.ini and self.getini is not None:
            given, source = list(self.getini(option.ini) or []), f"{option.ini} in {self.inipath}"
        if option.comma:  # names (devices, suites): each once; fragments keep their order
            given = [part for value in given for part in str(value).split(",")]
        found = tuple(item for item in (str(value).strip() for value in given) if item)
        if option.comma:
            found = tuple(dict.fromkeys(found))
        if not found:
            return Resolved((), "")
        return Resolved(found, source)

    def flag(self, dest: str) -> bool:
        """A `flag` option."""
        return bool(self.getoption(dest))
