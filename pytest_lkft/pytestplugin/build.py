"""The pytest side of kernel builds: --lkft-tree and friends, one build per session and arch.

plugin.py wires these: `settings_from(config, device_archs)` in pytest_configure (every
value is checked there, before make starts), and `kernel_build_for(config, device_arch)`
where a device needs its kernel. Under xdist each
worker calls it; a file lock in the build cache makes the first one build and the others
wait and reuse that build.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_lkft.build.inputs import GitPrefetch, parse_make_vars, parse_targets
from pytest_lkft.build.kernel import KernelBuild
from pytest_lkft.build.result import DEFAULT_TARGETS, BuildProgress, BuildResult
from pytest_lkft.errors import UserError
from pytest_lkft.provision.kernelimage import arch_matches
from pytest_lkft.provision.kselftest import KSELFTEST_PREFIX, libc_overlay
from pytest_lkft.provision.rootfs import stored_overlay, tarball_overlay, tarball_overlay_file
from pytest_lkft.pytestplugin.options import resolver
from pytest_lkft.pytestplugin.terminal import terminal
from pytest_lkft.settings.archs import get_arch, host_arch
from pytest_lkft.settings.options import Resolved
from pytest_lkft.settings.rootfs import suite_fragments

NEEDS_TREE = "{option} needs --lkft-tree DIR, the kernel source to build"

BUILD_SETTINGS_KEY = pytest.StashKey["BuildSettings | None"]()
BUILDS_KEY = pytest.StashKey[dict[str, BuildResult]]()


@dataclass(frozen=True)
class BuildSettings:
    """The build options of a run, resolved and checked once."""

    tree: Path
    target_arch: str | None = None
    toolchain: str = "gcc"
    kconfig: str = "defconfig"
    kconfig_add: tuple[str, ...] = ()
    targets: tuple[str, ...] = DEFAULT_TARGETS
    make_vars: tuple[tuple[str, str], ...] = ()
    build_dir: Path | None = None

    def kernel_build(self, arch: str, cache_dir: Path | None = None) -> KernelBuild:
        """The KernelBuild these settings make for `arch`."""
        build_dir = self.build_dir / arch if self.build_dir else None
        kernel = KernelBuild(tree=self.tree, target_arch=arch, toolchain=self.toolchain,
                             kconfig=self.kconfig, kconfig_add=self.kconfig_add,
                             targets=self.targets, make_vars=dict(self.make_vars),
                             build_dir=build_dir)
        if cache_dir is not None:
            kernel.cache_dir = cache_dir
        return kernel


BUILD_VALUES = ("lkft_tree", "lkft_target_arch", "lkft_toolchain", "lkft_kconfig",
                "lkft_build_targets", "lkft_build_dir")
BUILD_LISTS = ("lkft_kconfig_add", "lkft_make_var")


def settings_from(config: pytest.Config, device_archs: Sequence[str] = ()) -> BuildSettings | None:
    """Resolve and check the build options (stashed for kernel_build_for); None without a tree.

    Every check runs here, for the target architecture or else each device's: a tree that is
    no kernel source, an unknown arch or toolchain, a missing fragment or cross compiler.
    """
    options = resolver(config)
    values = {dest: options.value(dest) for dest in BUILD_VALUES}
    lists = {dest: options.values(dest) for dest in BUILD_LISTS}
    settings = None
    if not values["lkft_tree"]:
        _refuse_without_tree([*values.values(), *lists.values()])
    elif config.getoption("lkft_kernel", default=None):
        raise UserError("--lkft-kernel and --lkft-tree both give the kernel to boot; pass one")
    else:
        settings = _settings(values, lists, options.values("lkft_tests").value)
        for arch in _archs(settings, device_archs):
            settings.kernel_build(arch).validate()
        if not getattr(config.option, "numprocesses", None):  # not under -n: one process
            # the cache key's walk of the tree runs while pytest collects; one the session
            # did not take (nothing built) is dropped with it, never seen by a later one
            GitPrefetch.start(settings.tree)
            config.add_cleanup(lambda: GitPrefetch.drop(settings.tree))
    config.stash[BUILD_SETTINGS_KEY] = settings
    return settings


def _refuse_without_tree(given: list[Resolved]) -> None:
    found = next((resolved for resolved in given if resolved), None)
    if found is not None:
        raise UserError(NEEDS_TREE.format(option=found.source))


def _settings(values: dict[str, Resolved], lists: dict[str, Resolved],
              tests: Iterable[str]) -> BuildSettings:
    targets, build_dir = values["lkft_build_targets"].value, values["lkft_build_dir"].value
    given = tuple(lists["lkft_kconfig_add"].value)
    # the fragments of the suites --lkft-tests names (rcutorture, gpio-sim), issue 18
    kconfig_add = given + tuple(f for f in suite_fragments(tests) if f not in given)
    return BuildSettings(
        tree=Path(str(values["lkft_tree"].value)).expanduser().resolve(),
        target_arch=values["lkft_target_arch"].value,
        toolchain=values["lkft_toolchain"].value or "gcc",
        kconfig=values["lkft_kconfig"].value or "defconfig",
        kconfig_add=kconfig_add,
        targets=parse_targets(targets) if targets else DEFAULT_TARGETS,
        make_vars=tuple(parse_make_vars(list(lists["lkft_make_var"].value),
                                        "--lkft-make-var").items()),
        build_dir=Path(build_dir).expanduser().resolve() if build_dir else None,
    )


def _archs(settings: BuildSettings, device_archs: Iterable[str]) -> list[str]:
    """The architectures to build: the target arch (checked against the devices), else theirs."""
    archs = sorted(set(device_archs))
    if settings.target_arch is None:
        return archs or [host_arch()]
    for arch in archs:
        if not arch_matches(arch, settings.target_arch):
            raise UserError(f"--lkft-target-arch {settings.target_arch} cannot boot on an "
                            f"{arch} device; drop --lkft-target-arch to build for each device")
    return [settings.target_arch]


class TerminalProgress:
    """Build progress on the terminal past pytest's capture: one rewritten line on a tty."""

    def __init__(self, config: pytest.Config) -> None:
        self.terminal = terminal(config)
        self.target = ""

    def __call__(self, progress: BuildProgress) -> None:
        minutes, seconds = divmod(int(progress.elapsed), 60)
        text = f"lkft build [{minutes}:{seconds:02d}] {progress.target}: {progress.line.strip()}"
        if not self.terminal.tty and progress.target == self.target:
            return
        self.terminal.rewrite(text)
        self.target = progress.target

    def finish(self) -> None:
        """Take the progress line away, so pytest's own output goes on where it was."""
        self.terminal.end_progress()


def kernel_build_for(config: pytest.Config, device_arch: str) -> BuildResult | None:
    """The session's build for a device of `device_arch`; None when no --lkft-tree was given.

    Builds once per process and arch; across xdist workers the build cache's lock makes the
    first worker build and the others reuse it. A failed build is returned, not raised:
    check `result.passed` and show `result.first_errors`.
    """
    if BUILD_SETTINGS_KEY not in config.stash:
        settings_from(config)
    settings = config.stash[BUILD_SETTINGS_KEY]
    if settings is None:
        return None
    arch = settings.target_arch or device_arch
    done = config.stash.setdefault(BUILDS_KEY, {})
    if arch not in done:
        from pytest_lkft.pytestplugin.cache import cache_from_config

        kernel = settings.kernel_build(arch, cache_from_config(config).root / "builds")
        progress = kernel.progress = TerminalProgress(config)
        done[arch] = kernel.run()
        progress.finish()
    return done[arch]


def report_header(config: pytest.Config) -> str | None:
    """`lkft: build tree=... arch=... toolchain=... kconfig=...`, or None without a tree."""
    settings = config.stash.get(BUILD_SETTINGS_KEY, None)
    if settings is None:
        return None
    kconfig, targets = "+".join([settings.kconfig, *settings.kconfig_add]), ",".join(
        settings.targets)
    return (f"lkft: build tree={settings.tree} arch={settings.target_arch or 'device'} "
            f"toolchain={settings.toolchain} kconfig={kconfig} targets={targets}")


def build_properties(result: BuildResult) -> list[tuple[str, str]]:
    """`lkft.meta.*` user_properties describing the build, for every case of its device."""
    build, git = result.metadata["build"], result.metadata.get("git", {})
    meta = {"build_arch": build["target_arch"], "toolchain": build["toolchain"],
            "kconfig": " ".join([build["kconfig"], *build["kconfig_add"]]),
            "compiler": result.metadata["compiler"]["version_full"],
            "git_describe": git.get("git_describe", ""), "git_commit": git.get("git_commit", ""),
            "build_dir": str(result.output_dir),
            "perf": f"build:{result.perf}" if result.perf else ""}  # in place of Debian's
    return [(f"lkft.meta.{k}", v) for k, v in meta.items() if v]


def target_properties(result: BuildResult, target: str) -> list[tuple[str, str]]:
    """user_properties of a `build/<target>` result: warnings as a metric, the build's facts
    (suite, test and device are the item's from collection)."""
    return [("lkft.metric.warnings", str(result.warnings)), *build_properties(result)]


def failure_reason(result: BuildResult) -> str:
    """One line for the device's skipped suites: which targets failed, the first error, the log."""
    failed = [t for t, status in result.status.items() if status == "FAIL"]
    first = (result.first_errors.splitlines() or ["no error line in the log"])[0]
    return f"kernel build failed ({', '.join(failed)}): {first}; see {result.log}"


def device_overlays(result: BuildResult, cache_root: Path, with_libc: bool = True) -> list[Path]:
    """cpio.gz overlays for a device booting this build (cached by content): the
    kselftests under /opt/kselftest and, with them and `with_libc` (the busybox rootfs,
    which has no C library), the cross C library under /lib; the build's perf under /usr,
    over Debian's linux-perf (issue 18)."""
    overlays = []
    if result.kselftest is not None:
        overlays.append(stored_overlay(tarball_overlay(result.kselftest, KSELFTEST_PREFIX),
                                       cache_root))
        libc = get_arch(result.metadata["build"]["target_arch"]).libc_dir
        if libc is not None and with_libc:
            overlays.append(stored_overlay(libc_overlay(libc), cache_root))
    if result.perf is not None:
        overlays.append(tarball_overlay_file(result.perf, cache_root))
    return overlays

