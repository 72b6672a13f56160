"""The Debian rootfs and the suites on it, for real (issue 18).

The arm64 rootfs with every suite's tools is built once per machine (mmdebstrap, cached in
the shared test cache as the kernels are), booted on qemu-arm64 with the Debian kernel
flavour the suites need, and runs perf (the tests that take under 3 s here), v4l2 against
vivid, libgpiod and libhugetlbfs (built from ../shared/libhugetlbfs); rcutorture,
libgpiod against gpio-sim and perf from the kernel build's tools/perf run on the arm64
kernel the builds tests make (tests/shared_kernel.py: with the perf, rcutorture and
gpio-sim fragments and the perf target). Every suite's per-case results are checked
against its raw console, parsed here independently of the plugin's parsers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_kernel import (  # noqa: F401  (linux_source, shared_kernel: fixtures)
    linux_source,
    need_tools,
    plugin_options,
    shared_kernel,
)

from conftest import REPO, SHARED_CACHE, TESTSUITES, need_qemu
from pytest_lkft.build.kernel import BuildResult

pytestmark = pytest.mark.qemu

HUGETLBFS_SOURCE = REPO.parent / "shared" / "libhugetlbfs" / "libhugetlbfs-2.24.tar.xz"
# perf test numbers (Debian's perf 6.1 on arm64) that took 3 s or more each on this 2-cpu
# machine under load; the rest take about a minute
PERF_SLOW = "1,6,10,17,26,31,74,81,82,84,86,87,88,90,91,92,93,94,97"
ALL_TOOLS = ("perf", "v4l2", "libgpiod")
SHARED = ("entries", "apt", "defaults", "debian-rootfs", "kernel-modules", "overlays",
          "builds")


@pytest.fixture
def debian_cache(tmp_path: Path) -> Path:
    """A cache of the test's own (case lists) sharing the machine's kernels, Debian rootfs,
    images and builds with every other run."""
    private = tmp_path / "cache"
    private.mkdir()
    for name in SHARED:
        (SHARED_CACHE / "artifacts" / name).mkdir(parents=True, exist_ok=True)
        (private / name).symlink_to(SHARED_CACHE / "artifacts" / name)
    return private


def run_suites(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(TESTSUITES), f"--lkft-cache-dir={cache}",
                                         "-p", "no:cacheprovider", "-rs", *args)


def junit_results(junit: Path) -> dict[str, dict[str, str]]:
    """suite -> case -> pass/failure/error/skipped, from the LKFT properties of each case."""
    found: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "lkft.suite" not in props:
            continue
        tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        found.setdefault(str(props["lkft.suite"]), {})[str(props["lkft.test"])] = \
            tags[0] if tags else "pass"
    return found


# -- the consoles, read here without the plugin's parsers ----------------------------------

JUNIT_WORD = {"pass": "pass", "fail": "failure", "skip": "skipped"}


def suite_output(console: Path) -> list[str]:
    """What the suite's script printed: the console after its command's start marker."""
    text = console.read_text(errors="replace").replace("\r", "")
    return text.rsplit("\nLKFT-START\n", 1)[-1].splitlines()


def numbered(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """name -> result, a repeated name as `name#2`, results as JUnit words."""
    seen: dict[str, int] = {}
    found = {}
    for name, result in pairs:
        seen[name] = seen.get(name, 0) + 1
        found[name if seen[name] == 1 else f"{name}#{seen[name]}"] = JUNIT_WORD[result]
    return found


def script_checks(lines: list[str]) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in
            (re.match(r"LKFT-CASE: (\S+) (pass|fail|skip)", line) for line in lines) if m]


def console_perf(lines: list[str]) -> dict[str, str]:
    pairs, inside = script_checks(lines), False
    for line in lines:
        inside = (inside or line == "--- start ---") and line != "---- end ----"
        found = re.match(r"(.*): (Ok|FAILED!|Skip)", line)
        if found and not inside and line != "---- end ----":
            name = re.sub(r"[^A-Za-z0-9_-]+", "_", found.group(1) + ":").rstrip("_")
            word = {"Ok": "pass", "FAILED!": "fail", "Skip": "skip"}[found.group(2)]
            pairs.append((name.replace("_-", "_"), word))
    return numbered(pairs)


def console_v4l2(lines: list[str]) -> dict[str, str]:
    pairs = script_checks(lines)
    for line in lines:
        found = re.match(r"\s*test (.+): (OK|FAIL)", line)
        if found:
            name = found.group(1).replace(" ", "_").replace("/", "-")
            pairs.append((name, "pass" if found.group(2) == "OK" else "fail"))
    return numbered(pairs)


def console_tap(lines: list[str]) -> dict[str, str]:
    pairs = []
    for line in lines:
        found = re.match(r"(not ok|ok) \d+ (\S+)( # SKIP)?", line)
        if found:
            word = "skip" if found.group(3) else {"ok": "pass", "not ok": "fail"}[found.group(1)]
            pairs.append((found.group(2), word))
    return numbered(pairs)


def console_hugetlbfs(lines: list[str]) -> dict[str, str]:
    pairs = script_checks(lines)
    for line in lines:
        found = re.match(r"(\S.*? \(\d+[KMGT]?: \d+\)):\s(.*)", line)
        if found:
            words = re.sub(r"[():]", "", found.group(1).replace("/", "-")).split()
            outcome = found.group(2)
            word = "fail"
            if outcome.startswith("PASS"):
                word = "pass"
            elif outcome.startswith(("SKIP", "Bad configuration")):
                word = "skip"
            pairs.append(("-".join(words).replace("=", "_"), word))
    return numbered(pairs)


def console_rcutorture(lines: list[str]) -> dict[str, str]:
    found = dict(script_checks(lines))
    text = "\n".join(lines)
    for section in text.split("LKFT-RCUTORTURE: ")[1:]:
        kind = section.split()[0]
        suffix = "" if kind == "rcu" else f"-{kind}"
        found.setdefault(f"rcutorture-start{suffix}",
                         "pass" if f"{kind}-torture:--- Start of test" in section else "fail")
        found.setdefault(f"rcutorture-end{suffix}", "pass" if
                         f"{kind}-torture:--- End of test: SUCCESS" in section else "fail")
    return {name: JUNIT_WORD[word] for name, word in found.items()}


CONSOLE_READERS = {"perf": console_perf, "v4l2": console_v4l2, "libgpiod": console_tap,
                   "libhugetlbfs": console_hugetlbfs, "rcutorture": console_rcutorture}


def check_against_consoles(results_dir: Path, device: str,
                           results: dict[str, dict[str, str]], suites: tuple[str, ...]) -> None:
    """Every case each suite reported is what its console says, and nothing else."""
    for suite in suites:
        console = results_dir / device / suite / "console.log"
        expected = CONSOLE_READERS[suite](suite_output(console))
        reported = {name: word for name, word in results[suite].items()
                    if name not in ("run", "crash")}
        assert reported == expected, f"{suite}: {console}"


# -- the rootfs ---------------------------------------------------------------------------


def lkft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_lkft.cli", *args],
                          capture_output=True, text=True, check=False)


def elf_machine(path: Path) -> int:
    """e_machine of an ELF file (183: aarch64, 62: x86-64)."""
    return int.from_bytes(path.read_bytes()[18:20], "little")


def test_lkft_rootfs_build_is_made_once(debian_cache: Path) -> None:
    """The arm64 rootfs of every suite's tools (the one the suites below boot): arm64
    binaries unpacked, never run; our init and shell; the second build is the cache's."""
    args = ["rootfs", "build", "--arch", "arm64", "--suites",
            "perf,v4l2,libgpiod,libhugetlbfs", "--format", "dir",
            f"--cache-dir={debian_cache}"]
    first = lkft(*args)
    assert first.returncode == 0, first.stderr
    root = Path(first.stdout.splitlines()[0].removeprefix("rootfs: "))
    assert elf_machine(root / "usr" / "bin" / "perf") == 183
    for tool in ("v4l2-compliance", "gpioset", "python3"):
        assert elf_machine((root / "usr" / "bin" / tool).resolve()) == 183
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert "setsid cttyhack sh -l" in (root / "init").read_text()
    assert (root.parent / "fakeroot.state").is_file()  # the owners, for images made later
    assert first.stdout.splitlines()[2].startswith("snapshot: bookworm ")
    stamp = (root.parent / "rootfs.json").stat().st_mtime_ns
    again = lkft(*args)
    assert again.stdout == first.stdout
    assert (root.parent / "rootfs.json").stat().st_mtime_ns == stamp  # not built again


def as_nobody() -> list[str]:
    """A command prefix running Python with pytest_lkft as a user without root: `setpriv`
    to nobody when we are root (the venv's Python where nobody may run it, else the
    system's), [] when we are not root."""
    if os.geteuid() != 0:
        return [sys.executable]
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed (util-linux)")
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env",
            f"PYTHONPATH={REPO}"]
    for python in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run([*drop, python, "-c", "import pytest_lkft.cli.rootfs"],
                               capture_output=True, check=False, cwd="/")
        if probe.returncode == 0:
            return [*drop, python]
    pytest.skip(f"no Python with pytest_lkft's dependencies that nobody may run ({REPO} or "
                "the venv is private to root)")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may write (the test's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="lkft-nobody-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_rootfs_build_needs_no_root(public_dir: Path) -> None:
    """A user without root builds the rootfs and its ext4 image: every file root's, the
    console a device node, as a root build makes them."""
    command = [*as_nobody(), "-m", "pytest_lkft.cli", "rootfs", "build", "--arch", "arm64",
               f"--cache-dir={public_dir}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/",
                          env={**os.environ, "HOME": str(public_dir),
                               "TMPDIR": str(public_dir)})
    assert done.returncode == 0, done.stderr
    image = done.stdout.splitlines()[0].removeprefix("rootfs: ")
    listing = subprocess.run(["debugfs", "-R", "ls -l /bin", image], capture_output=True,
                             text=True, check=True).stdout
    busybox = next(line.split() for line in listing.splitlines() if line.endswith(" busybox"))
    assert (busybox[1], busybox[3], busybox[4]) == ("100755", "0", "0")  # mode, uid, gid
    console = subprocess.run(["debugfs", "-R", "stat /dev/console", image],
                             capture_output=True, text=True, check=True).stdout
    assert "Type: character special" in console and "User:     0" in console


# -- the suites on Debian's kernels -------------------------------------------------------


def test_suites_on_the_debian_rootfs(pytester: pytest.Pytester, debian_cache: Path) -> None:
    """perf, v4l2 and libgpiod on qemu-arm64 with the full arm64 flavour (vivid), every case
    as its console shows it; the gpio simulators Debian lacks are skips that name them."""
    need_qemu("qemu-system-aarch64")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, debian_cache, "--lkft-device=qemu-arm64",
                        "--lkft-rootfs=debian", f"--lkft-tests={','.join(ALL_TOOLS)}",
                        f"--lkft-parameter=PERF_TEST_ARGS=-s {PERF_SLOW}", f"--junitxml={junit}")
    results = junit_results(junit)
    assert set(results) == set(ALL_TOOLS), result.stdout.str()[-3000:]
    perf, v4l2, gpiod = results["perf"], results["v4l2"], results["libgpiod"]
    assert perf["perf_record_test"] == "pass" and perf["Detect_openat_syscall_event"] == "pass"
    assert perf["_1_vmlinux_symtab_matches_kallsyms"] == "skipped"  # -s: not run, not -v
    assert len(perf) > 80
    assert v4l2["modprobe-vivid"] == "pass" and v4l2["VIDIOC_QUERYCAP"] == "pass"
    assert len(v4l2) > 100
    assert gpiod["gpiodetect_invalid_args"] == "pass"
    assert gpiod["gpioget_read_all_lines"] == "skipped"
    result.stdout.fnmatch_lines(["*the kernel lacks CONFIG_GPIO_SIM and CONFIG_GPIO_MOCKUP*"])
    assert all(word == "pass" for name, word in results["libgpiod"].items()
               if not name.startswith(("gpioget_read", "gpioset_set", "gpiomon", "gpioinfo_dump",
                                       "gpiodetect_list", "gpiofind", "gpioget_same",
                                       "gpioset_invalid")))
    check_against_consoles(pytester.path / "lkft-results", "qemu-arm64", results, ALL_TOOLS)


def test_libhugetlbfs_built_from_its_source(pytester: pytest.Pytester,
                                            debian_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    if not HUGETLBFS_SOURCE.is_file():
        pytest.skip(f"{HUGETLBFS_SOURCE} is absent: libhugetlbfs's source is read from the "
                    "shared folder beside the checkout (../shared/libhugetlbfs/)")
    need_tools("aarch64-linux-gnu-gcc", "autoreconf")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, debian_cache, "--lkft-device=qemu-arm64",
                        "--lkft-rootfs=debian", "--lkft-tests=libhugetlbfs",
                        f"--lkft-libhugetlbfs={HUGETLBFS_SOURCE}",
                        "--lkft-parameter=LIBHUGETLBFS_TESTS=func", f"--junitxml={junit}")
    results = junit_results(junit)
    cases = results.get("libhugetlbfs", {})
    assert cases.get("zero_filesize_segment-2M-64") == "pass", result.stdout.str()[-3000:]
    assert cases["HUGETLB_VERBOSE_1-empty_mounts-2M-64"] == "pass"
    assert len(cases) > 80
    check_against_consoles(pytester.path / "lkft-results", "qemu-arm64", results,
                           ("libhugetlbfs",))


def test_perf_on_qemu_x86_64(pytester: pytest.Pytester, debian_cache: Path) -> None:
    """The amd64 rootfs on Debian's cloud-amd64 kernel: its disk on virtio (q35's AHCI is
    not in that flavour), a few perf tests."""
    need_qemu("qemu-system-x86_64")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, debian_cache, "--lkft-device=qemu-x86_64",
                        "--lkft-rootfs=debian", "--lkft-tests=perf",
                        "--lkft-parameter=PERF_TEST_ARGS=2 5", f"--junitxml={junit}")
    results = junit_results(junit)
    perf = results.get("perf", {})
    assert perf.get("Detect_openat_syscall_event") == "pass", result.stdout.str()[-3000:]
    reproducer = (pytester.path / "lkft-results" / "qemu-x86_64" / "perf" / "reproducer.sh")
    assert "-device virtio-blk-pci" in reproducer.read_text()
    assert "linux-image-6.1.0" in reproducer.read_text() and "cloud-amd64" in \
        reproducer.read_text()
    check_against_consoles(pytester.path / "lkft-results", "qemu-x86_64", results, ("perf",))


def test_suites_skip_naming_what_is_missing(pytester: pytest.Pytester, private_cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """On the busybox initramfs and Debian's kernel nothing boots for these suites: each
    skips, saying what it lacks and what to pass. A rootfs given by path is known only on
    the device: there the suite's script says what it lacks."""
    monkeypatch.setenv("LKFT_PREBOOT", "0")  # nothing boots but what a suite run needs
    result = run_suites(pytester, private_cache, "--lkft-device=qemu-arm64",
                        "--lkft-tests=perf,v4l2,libgpiod,libhugetlbfs,rcutorture")
    result.assert_outcomes(skipped=10)  # <suite>/run and <suite>/crash of each
    result.stdout.fnmatch_lines_random([
        "*perf runs perf, which the busybox initramfs lacks: pass --lkft-rootfs=debian",
        "*v4l2 runs v4l2-compliance, which the busybox initramfs lacks*",
        "*libhugetlbfs's tests are not packaged in Debian: pass --lkft-libhugetlbfs SOURCE*",
        "*the kernel lacks CONFIG_RCU_TORTURE_TEST (see *cloud-arm64.config); build one that "
        "has it: --lkft-tree SRC --lkft-kconfig-add=rcutorture",
    ])
    assert not (pytester.path / "lkft-results").exists()  # no device booted
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    with ArtifactCache(private_cache) as cache:
        busybox = default_artifacts(load_devices().get("qemu-arm64"), cache.root,
                                    cache.fetch).rootfs
    on_device = run_suites(pytester, private_cache, "--lkft-device=qemu-arm64",
                           f"--lkft-rootfs={busybox}", "--lkft-tests=perf")
    on_device.assert_outcomes(passed=1, skipped=1)  # the run skips; no crash on the console
    on_device.stdout.fnmatch_lines(["*perf: perf is not on the rootfs: pass --lkft-rootfs=debian"])


# -- a kernel the plugin builds: rcutorture, gpio-sim ----------------------------------------


@pytest.fixture
def torture_kernel(linux_source: Path, shared_kernel: BuildResult) -> list[str]:  # noqa: F811
    """The arm64 kernel the builds tests make (tests/shared_kernel.py), which has the
    rcutorture and gpio-sim fragments; the options that ask the plugin for it with those
    two fragments left to the plugin: --lkft-tests=rcutorture,libgpiod adds them, in that
    order (the same build, found in the cache)."""
    return plugin_options(linux_source, left_to_suites=("rcutorture", "gpio-sim"))


def test_rcutorture_and_gpio_sim_on_a_built_kernel(pytester: pytest.Pytester,
                                                    debian_cache: Path,
                                                    torture_kernel: list[str]) -> None:
    need_qemu("qemu-system-aarch64")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, debian_cache, "--lkft-device=qemu-arm64",
                        "--lkft-rootfs=debian", "--lkft-tests=rcutorture,libgpiod",
                        "--lkft-parameter=TORTURE_TIME=10", *torture_kernel,
                        f"--junitxml={junit}")
    results = junit_results(junit)
    assert results.get("rcutorture") == {
        "run": "pass", "crash": "pass", "modprobe-rcutorture": "pass",
        "rcutorture-start": "pass", "rmmod-rcutorture": "pass", "rcutorture-end": "pass",
    }, result.stdout.str()[-3000:]
    metrics = ET.parse(junit).getroot().iter("property")
    assert any(p.get("name") == "lkft.metric.rcu-ver" for p in metrics)
    gpiod = results["libgpiod"]
    assert len(gpiod) == 21 + 2 and set(gpiod.values()) == {"pass"}, gpiod
    check_against_consoles(pytester.path / "lkft-results", "qemu-arm64", results,
                           ("rcutorture", "libgpiod"))


# -- perf from the kernel build (tuxmake's perf target) --------------------------------------

# perf test numbers (perf 6.1, arm64) for the shared tinyconfig kernel, which has no
# tracepoints, kprobes or BPF, and a perf without libelf: its software events, sampling,
# synthesized events and perf's own parsers, in about a minute. Not 24 ("Number of exit
# events of a simple workload"): it polls for its child's exit event at most 1,000 times,
# and a loaded machine's TCG guest wakes it more often than that first ("Failed after
# retrying 1000 times", twice in five runs beside a CPU hog).
PERF_BUILT_TESTS = ("7 9 14 18 25 27 29 30 33 34 36 37 38 39 43 44 45 46 47 48 49 50 52 53 "
                    "55 56 57 59 61 64 65 66 68")


def test_perf_from_the_kernel_build(pytester: pytest.Pytester, debian_cache: Path,
                                    linux_source: Path,  # noqa: F811
                                    shared_kernel: BuildResult) -> None:  # noqa: F811
    """The shared arm64 kernel, built with the perf target: its perf (tools/perf, static)
    laid over Debian's linux-perf, `perf test` on qemu-arm64 with that kernel; the cases
    as its console shows them, the run's metadata naming the build's perf."""
    need_qemu("qemu-system-aarch64")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, debian_cache, "--lkft-device=qemu-arm64",
                        "--lkft-rootfs=debian", "--lkft-tests=perf",
                        f"--lkft-parameter=PERF_TEST_ARGS={PERF_BUILT_TESTS}",
                        *plugin_options(linux_source), f"--junitxml={junit}")
    results = junit_results(junit)
    perf = results.get("perf", {})
    assert perf.get("perf_record_test") == "pass", result.stdout.str()[-3000:]
    assert perf["perf_report_test"] == "pass" and perf["perf_test"] == "pass"
    assert perf["Software_clock_events_period_values"] == "pass"  # the kernel's events
    # run, crash, the script's four checks and every test asked for, all passed
    assert len(perf) == 2 + 4 + len(PERF_BUILT_TESTS.split()), sorted(perf)
    assert set(perf.values()) == {"pass"}, perf
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert properties["lkft.meta.perf"] == f"build:{shared_kernel.perf}"
    console = pytester.path / "lkft-results" / "qemu-arm64" / "perf" / "console.log"
    text = re.sub(r"\x1b\[[0-9;]*m|\r", "", console.read_text())  # perf colours ON, OFF
    assert re.search(r"^ +libelf: \[ OFF \]", text, re.MULTILINE)  # not Debian's perf
    check_against_consoles(pytester.path / "lkft-results", "qemu-arm64", results, ("perf",))
