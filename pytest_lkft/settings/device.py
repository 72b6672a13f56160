"""The device side of a run: what to boot, where, for how long, which suites. Resolved once.

Every value comes through `pytest_lkft.settings.options.Resolver` (command line, then
`LKFT_*` environment variable, then ini) and is checked here, before anything boots; a
bad one is a one-line `UserError` naming the value, where it came from and what to do.
What depends on the devices themselves (QEMU installed, a kernel of the right
architecture) is checked by each device kind (`pytest_lkft.pytestplugin.devicekinds`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.settings.options import Resolved, Resolver, origin
from pytest_lkft.settings.rootfs import debian_format

# Options naming a local file (or a URL) that must exist before anything boots.
FILE_OPTIONS = ("lkft_kernel", "lkft_rootfs", "lkft_modules", "lkft_dtb", "lkft_ltp",
                "lkft_ltp_skipfile", "lkft_libhugetlbfs")
PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
RUNTEST_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$")
LTP_LINKINGS = ("static", "dynamic")
LTP_TIMEOUT = 600.0  # seconds one LTP test may run on the device (times LTP_TIMEOUT_MUL)


# What a console shows when the kernel starts (its first group: the kernel version, a
# second one the rest of the banner) and when a shell waits for a command: LAVA's
# `kernel-start-message` and `prompts`. A device entry or an option may set others
# (`BootMessages`). The whole banner line (issue 16): matched only once its end arrived, so
# the version is never cut short while the line is still coming (`6`, `6.1.0-57-c`).
KERNEL_START_MESSAGE = r"Linux version (\S+) ([^\r\n]*)\r*\n"
SHELL_PROMPTS = (r"[#$] (?:\x1b\[6n)?$",)
PHASES = ("boot", "test", "silence")


BANNER_LOGLEVEL = 5  # the version banner is a notice (KERN_NOTICE)
LOGLEVEL = re.compile(r"^loglevel=(\d+)$")


def banner_hidden(boot_args: str) -> bool:
    """True when the kernel command line keeps the kernel's version banner off the console
    (`quiet`, or `loglevel=N` with N at most the banner's level): no kernel-start message
    comes, only the prompt."""
    if "ignore_loglevel" in boot_args.split():
        return False
    hidden = False
    for arg in boot_args.split():  # the last of quiet/loglevel= wins, as in the kernel
        found = LOGLEVEL.match(arg)
        if arg == "quiet":
            hidden = True
        elif found:
            hidden = int(found.group(1)) <= BANNER_LOGLEVEL
    return hidden


def regex(text: str) -> str:
    """`text` if it is a regular expression; ValueError saying why not."""
    try:
        re.compile(text)
    except re.error as error:
        raise ValueError(f"not a regular expression ({error})") from None
    return text


@dataclass(frozen=True)
class BootMessages:
    """What the console shows as the kernel starts and when a shell waits for a command.

    Regular expressions. A prompt is proof enough that the kernel started (`quiet` hides
    the start message); the start message, when seen, gives the kernel version.
    """

    kernel_start: str = KERNEL_START_MESSAGE
    prompts: tuple[str, ...] = SHELL_PROMPTS

    def given(self, kernel_start: str, prompts: tuple[str, ...]) -> BootMessages:
        """These messages with another kernel-start message and prompts, where given."""
        return BootMessages(kernel_start or self.kernel_start, prompts or self.prompts)


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per phase: reaching a shell, one test command, and the longest a
    booting console may print nothing (a kernel that never starts is stopped that early)."""

    boot: float = 300.0
    test: float = 600.0
    silence: float = 120.0
    given: tuple[str, ...] = field(default=(), compare=False)  # phases the user set

    def for_suite(self, suite_default: float | None) -> float:
        """A suite's command timeout: the user's test= first, then the suite's own."""
        return self.test if "test" in self.given or not suite_default else suite_default

    @classmethod
    def parse(cls, text: str, source: str = "--lkft-timeouts") -> Timeouts:
        """`boot=60,test=300,silence=30` (any subset) into Timeouts; one-line UserError
        when bad."""
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            phase, _, seconds = item.partition("=")
            if phase not in PHASES:
                raise UserError(f"invalid phase {phase!r} in {source} {text!r}; "
                                "use boot=SECONDS,test=SECONDS,silence=SECONDS")
            try:
                values[phase] = float(seconds)
            except ValueError:
                values[phase] = -1.0
            if not values[phase] > 0:  # also refuses nan
                raise UserError(f"invalid timeout {seconds!r} for {phase} in {source} "
                                f"{text!r}; give seconds, e.g. {phase}=300")
        return cls(**values, given=tuple(sorted(values)))


@dataclass(frozen=True)
class Shard:
    """Run the `index`-th test (1-based) of a runtest file and every `total`-th after it."""

    index: int
    total: int

    def keeps(self, position: int) -> bool:
        """True for the 0-based `position` of a test in its runtest file."""
        return position % self.total == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str, source: str = "--lkft-ltp-shard") -> Shard:
    """`INDEX/TOTAL` as a Shard; UserError naming `source` for anything else."""
    index, _, total = text.partition("/")
    try:
        shard = Shard(int(index), int(total))
    except ValueError:
        shard = Shard(0, 0)
    if not 1 <= shard.index <= shard.total:
        raise UserError(f"invalid shard {text!r} from {source}; pass INDEX/TOTAL with "
                        "1 <= INDEX <= TOTAL, e.g. 2/4")
    return shard


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
    ltp_src: str | None = None
    ltp_linking: str = "static"
    ltp_timeout: float = LTP_TIMEOUT
    ltp_timeout_mul: str = ""  # $LTP_TIMEOUT_MUL of the run, passed on to the device
    memory: int | None = None
    debian_mirror: str | None = None  # --lkft-rootfs=debian's archive, else the host's
    boot_args: str = ""
    kernel_start_message: str = ""  # "" and (): the device's own
    prompts: tuple[str, ...] = ()
    qemu_binary: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # --lkft-parameter NAME=VALUE, in order
    libhugetlbfs: str | None = None
    timeouts: Timeouts = Timeouts()
    results_dir: Path = Path("lkft-results")
    console: bool = False
    tests: tuple[str, ...] = ()  # suite names or globs; () runs every suite
    tests_source: str = "--lkft-tests"
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # dest -> source

    @classmethod
    def resolve(cls, options: Resolver, invocation_dir: Path, console: bool = False) -> Settings:
        """Resolve and check every device option; UserError on the first bad one."""
        found = {dest: options.value(dest) for dest in (
            "lkft_kernel", "lkft_rootfs", "lkft_modules", "lkft_kselftest", "lkft_dtb",
            "lkft_ltp", "lkft_ltp_skipfile", "lkft_ltp_shard", "lkft_boot_args",
            "lkft_kernel_start_message", "lkft_qemu_binary", "lkft_timeouts",
            "lkft_results_dir", "lkft_libhugetlbfs", "lkft_ltp_src", "lkft_ltp_linking",
            "lkft_ltp_timeout", "lkft_memory", "lkft_ltp_runtest", "lkft_debian_mirror")}
        values = {dest: resolved.value for dest, resolved in found.items()}
        sources = {dest: resolved.source for dest, resolved in found.items()}
        check_files(values, sources)
        check_ltp(values, sources)
        tests, prompts = options.values("lkft_tests"), options.values("lkft_prompts")
        check_regexes({"lkft_kernel_start_message": (values["lkft_kernel_start_message"],),
                       "lkft_prompts": prompts.value},
                      {**sources, "lkft_prompts": prompts.source})
        shard, timeouts = None, Timeouts()
        if values["lkft_ltp_shard"]:
            shard = parse_shard(values["lkft_ltp_shard"], origin(sources["lkft_ltp_shard"]))
        if values["lkft_timeouts"]:
            timeouts = Timeouts.parse(values["lkft_timeouts"], sources["lkft_timeouts"])
        return cls(
            devices=options.values("lkft_device").value,
            kernel=values["lkft_kernel"],
            rootfs=values["lkft_rootfs"],
            modules=values["lkft_modules"],
            kselftest=values["lkft_kselftest"],
            dtb=values["lkft_dtb"],
            ltp=values["lkft_ltp"],
            ltp_runtest=runtest_names(values["lkft_ltp_runtest"] or ""),
            ltp_skipfile=values["lkft_ltp_skipfile"],
            ltp_shard=shard,
            ltp_src=values["lkft_ltp_src"],
            ltp_linking=values["lkft_ltp_linking"] or "static",
            ltp_timeout=positive(values["lkft_ltp_timeout"], sources["lkft_ltp_timeout"],
                                 LTP_TIMEOUT),
            ltp_timeout_mul=os.environ.get("LTP_TIMEOUT_MUL", ""),
            memory=int(positive(values["lkft_memory"], sources["lkft_memory"], 0)) or None,
            debian_mirror=check_mirror(values["lkft_debian_mirror"],
                                       sources["lkft_debian_mirror"]),
            boot_args=values["lkft_boot_args"] or "",
            kernel_start_message=values["lkft_kernel_start_message"] or "",
            prompts=prompts.value,
            qemu_binary=values["lkft_qemu_binary"],
            parameters=parse_parameters(options.values("lkft_parameter")),
            libhugetlbfs=values["lkft_libhugetlbfs"],
            timeouts=timeouts,
            results_dir=Path(invocation_dir, values["lkft_results_dir"] or "lkft-results"),
            console=console or options.flag("lkft_console"),
            tests=tests.value,
            tests_source=tests.source or "--lkft-tests",
            sources=sources,
        )

    def source(self, dest: str) -> str:
        """Where the value of `dest` came from, e.g. `--lkft-kernel` or `LKFT_KERNEL`."""
        return self.sources.get(dest) or "--" + dest.replace("_", "-")


def parse_parameters(given: Resolved) -> tuple[tuple[str, str], ...]:
    """`NAME=VALUE` suite parameters as pairs, in order; UserError naming a bad one."""
    pairs = []
    for text in given.value:
        if not PARAMETER.match(text):
            raise UserError(f"invalid parameter {text!r} from {origin(given.source)}; pass "
                            "NAME=VALUE, e.g. TORTURE_TIME=30")
        name, _, value = text.partition("=")
        pairs.append((name, value))
    return tuple(pairs)


def runtest_names(text: str, source: str = "--lkft-ltp-runtest") -> tuple[str, ...]:
    """`syscalls,mm` as names; a name that is no runtest file's (it reaches the device's
    shell and a path) is refused in one line."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    for name in names:
        if not RUNTEST_NAME.match(name):
            raise UserError(f"{source} {name!r} is not a runtest file's name: use letters, "
                            "digits and _.+- only, e.g. syscalls,mm")
    return names


MIRROR = re.compile(r"^(https?|file)://\S+$")


def check_mirror(text: str | None, source: str) -> str | None:
    """A Debian mirror's URL (http, https or file), None when not given; one line when bad."""
    if not text:
        return None
    if not MIRROR.match(text):
        raise UserError(f"invalid Debian mirror {text!r} from {origin(source)}; give its URL, "
                        "http://, https:// or file:// (where dists/ and pool/ are)")
    return text.rstrip("/")


def positive(text: str | None, source: str, default: float) -> float:
    """A positive number given as text, `default` when not given; one line when bad."""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"invalid value {text!r} from {origin(source)}; give a positive "
                        "number")
    return value


def check_ltp(values: dict[str, str | None], sources: dict[str, str]) -> None:
    """Refuse a missing LTP source, an unknown linking, two sources of LTP."""
    src, linking = values.get("lkft_ltp_src"), values.get("lkft_ltp_linking")
    if src and not is_url(src) and not Path(src).exists():
        raise UserError(f"{sources['lkft_ltp_src']} {src}: no such file or directory; pass an "
                        "LTP release tarball, source directory or URL")
    if src and values.get("lkft_ltp"):
        raise UserError(f"{sources['lkft_ltp']} and {sources['lkft_ltp_src']} both give LTP; "
                        "pass one")
    if linking and linking not in LTP_LINKINGS:
        raise UserError(f"invalid {sources['lkft_ltp_linking']} {linking!r}; use static or "
                        "dynamic")


def is_url(value: str) -> bool:
    """True for http(s) and file URLs, which go through the artifact cache."""
    return value.startswith(("http://", "https://", "file://"))


def check_regexes(values: dict[str, tuple[str | None, ...]], sources: dict[str, str]) -> None:
    """Refuse a kernel-start message or prompt that is not a regular expression."""
    for dest, texts in values.items():
        for text in filter(None, texts):
            try:
                regex(text)
            except ValueError as error:
                raise UserError(f"{sources[dest]} {text!r}: {error}; give a Python regular "
                                "expression") from None


def check_files(values: dict[str, str | None], sources: dict[str, str]) -> None:
    """Refuse a local file option naming no file (the kselftest tarball is its suite's
    to report: `pytest_lkft.suites.kselftest.install`); `--lkft-rootfs=debian` names the
    Debian rootfs the run builds, not a file."""
    for dest in FILE_OPTIONS:
        value = values.get(dest)
        if dest == "lkft_rootfs" and debian_format(value) is not None:
            continue
        if value and not is_url(value) and not Path(value).is_file():
            raise UserError(f"{sources[dest]} {value}: no such file; check the path or give "
                            "a URL")
