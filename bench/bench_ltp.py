"""Real LTP on qemu-arm64: pytest-lkft against kirk 4.2.0, LTP's own runner, same everything.

Both run the same LTP build (LTP 20260529 from ../shared/ltp, static arm64: the runtest
files and skipfile of tests/test_ltp_real.py, built once and cached), the same Debian
kernel and the same rootfs (the ext4 disk and loader initramfs pytest-lkft provisions: the
busybox base, LTP, the kernel's modules and config, /etc/passwd), on this machine, one
runtest file per boot, one round:

- pytest-lkft: `pytest testsuites/test_ltp.py --lkft-device=qemu-arm64 --lkft-ltp-src=...`,
  the command users run, timed end to end (start-up, boots, runs, JUnit);
- kirk: `kirk --com qemu:... --run-suite NAME --skip-file F --json-report R` per runtest
  file (kirk takes one suite per call), QEMU as FACTS.md describes (TCG, cortex-a57,
  a PCI serial port for its transport), the same disk (snapshot) and loader. kirk's skip
  file holds regular expressions it searches for in each tag (`stat01` skips
  `cachestat01`), so its lines are the same tags anchored, `^stat01$`.

It prints each side's wall time and the ratio (target <= 1.0), whether both gave the same
result for each test that ran in both, and the harness's time around the tests: wall time
less the tests' own durations (ours measured in the guest by the runner, kirk's by kirk),
per test.

    python bench/bench_ltp.py [--runtest math,pty,...] [--kirk-first]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from harness_env import harness_env

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]
from test_ltp_real import LTP_SOURCE, RUNTESTS, ci_skips  # noqa: E402  (the CI build's inputs)

from conftest import junit_name  # noqa: E402

CACHE = Path(os.environ.get("LKFT_TEST_CACHE") or Path.home() / ".cache" / "lkft-test")
KIRK = "kirk==4.2.0"
ELAPSED = re.compile(r"^lkft_elapsed=(\d+\.\d+)$", re.MULTILINE)


def kirk_venv() -> Path:
    """A venv with kirk 4.2.0 (PyPI), made once under the test cache."""
    venv = CACHE / "kirk-venv"
    if not (venv / "bin" / "kirk").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", KIRK], check=True)
    return venv / "bin" / "kirk"


def provisioned(cache: Path, runtests: list[str], skipfile: Path) -> tuple[Path, Path, Path]:
    """(kernel, loader initramfs, disk) as pytest-lkft provisions them (the LTP built)."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.device import provision
    from pytest_lkft.settings.device import Settings
    from pytest_lkft.settings.devices import load_devices

    settings = Settings(devices=("qemu-arm64",), ltp_src=str(LTP_SOURCE),
                        ltp_runtest=tuple(runtests), ltp_skipfile=str(skipfile))
    with ArtifactCache(cache) as artifacts:
        found = provision(settings, load_devices().get("qemu-arm64"), artifacts.fetch, cache)
    assert found.rootfs is not None and found.disk is not None
    return found.kernel, found.rootfs, found.disk


def run_ours(work: Path, cache: Path, runtests: list[str], skipfile: Path) -> float:
    """Seconds the user's command takes, start to exit."""
    command = [sys.executable, "-m", "pytest", "-p", "pytest_lkft.plugin", "-p", "xdist.plugin",
               str(REPO / "testsuites" / "test_ltp.py"), "--lkft-device=qemu-arm64",
               f"--lkft-ltp-src={LTP_SOURCE}", f"--lkft-ltp-runtest={','.join(runtests)}",
               f"--lkft-ltp-skipfile={skipfile}", f"--lkft-cache-dir={cache}",
               f"--lkft-results-dir={work / 'results'}", f"--junitxml={work / 'ours.xml'}",
               "-p", "no:cacheprovider", "-q"]
    start = time.monotonic()
    subprocess.run(command, cwd=work, env=harness_env(), stdout=subprocess.DEVNULL, check=False)
    return time.monotonic() - start


def run_kirk(work: Path, kirk: Path, artifacts: tuple[Path, Path, Path], runtests: list[str],
             skipfile: Path) -> float:
    """Seconds kirk takes for the runtest files, one call (one boot) each."""
    kernel, loader, disk = artifacts
    options = ("-snapshot -M virt,gic-version=3,accel=tcg -cpu cortex-a57 "
               "-device pci-serial-2x,chardev2=transport "
               "-append 'console=ttyAMA0 loglevel=1 lkft.root=/dev/vda panic=-1'")
    com = (f"qemu:system=aarch64:kernel={kernel}:initrd={loader}:image={disk}:ram=1G:smp=2:"
           f"prompt=/ # :options={options}")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "LTP_TIMEOUT_MUL": "1"}
    (work / "kirk-tmp").mkdir(exist_ok=True)  # kirk stops at once without it
    start = time.monotonic()
    for name in runtests:
        report = work / f"kirk-{name}.json"
        report.unlink(missing_ok=True)
        subprocess.run(["timeout", "3600", str(kirk), "--com", com, "--sut", "default:com=qemu",
                        "--exec-timeout", "600", "--suite-timeout", "3600",
                        "--skip-file", str(skipfile), "--run-suite", name, "--no-colors",
                        "--json-report", str(report), "--tmp-dir", str(work / "kirk-tmp")],
                       cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
    return time.monotonic() - start


def our_results(work: Path) -> tuple[dict[str, str], float]:
    """tag -> pass/fail/skip from our JUnit (cases only), and the tests' own seconds."""
    found = {}
    for case in ET.parse(work / "ours.xml").getroot().iter("testcase"):
        name = junit_name(case)  # without the ` [qemu-arm64]` every case's name ends with
        if name in ("run", "crash"):
            continue
        tags = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[f"{case.get('classname')}/{name}"] = {"failure": "fail", "error": "fail",
                                                    "skipped": "skip"}.get(tags[0] if tags
                                                                           else "", "pass")
    seconds = sum(float(value) for log in (work / "results").glob("*/ltp-*/console.log")
                  for value in ELAPSED.findall(log.read_text(errors="replace")))
    return found, seconds


def kirk_results(work: Path, runtests: list[str]) -> tuple[dict[str, str], float]:
    """The same from kirk's JSON reports."""
    found, seconds = {}, 0.0
    for name in runtests:
        report = work / f"kirk-{name}.json"
        if not report.exists():
            continue
        for result in json.loads(report.read_text())["results"]:
            status = {"pass": "pass", "conf": "skip"}.get(result["status"], "fail")
            found[f"ltp-{name}/{result['test_fqn']}"] = status
            seconds += float(result["test"]["duration"])
    return found, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtest", default=",".join(RUNTESTS),
                        help="runtest files (default: the CI build's)")
    parser.add_argument("--kirk-first", action="store_true",
                        help="run kirk's side first (on a machine whose load drifts, run "
                        "both orders)")
    args = parser.parse_args()
    runtests = args.runtest.split(",")
    work = Path(subprocess.run(["mktemp", "-d", "/tmp/bench-ltp.XXXXXX"], capture_output=True,
                               text=True, check=True).stdout.strip())
    cache = CACHE / "bench-ltp-cache"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("entries", "apt", "defaults", "kernel-modules"):
        if not (cache / name).exists():
            (cache / name).symlink_to(CACHE / "artifacts" / name)
    if not (cache / "ltp-builds").exists():
        (cache / "ltp-builds").symlink_to(CACHE / "ltp-builds")
    skipfile = work / "skipfile"
    skipfile.write_text("".join(f"{tag}\n" for tag in ci_skips()))
    kirk_skipfile = work / "kirk-skipfile"  # kirk's lines are regexes it searches for in a tag
    kirk_skipfile.write_text("".join(f"^{re.escape(tag)}$\n" for tag in ci_skips()))
    kirk = kirk_venv()
    artifacts = provisioned(cache, runtests, skipfile)  # build and disk made before timing
    print(f"kernel {artifacts[0]}\nloader {artifacts[1]}\ndisk {artifacts[2]}", flush=True)
    if args.kirk_first:
        kirk_wall = run_kirk(work, kirk, artifacts, runtests, kirk_skipfile)
    ours_wall = run_ours(work, cache, runtests, skipfile)
    if not args.kirk_first:
        kirk_wall = run_kirk(work, kirk, artifacts, runtests, kirk_skipfile)
    ours, ours_tests = our_results(work)
    theirs, kirk_tests = kirk_results(work, runtests)
    ran = {name: result for name, result in ours.items() if result != "skip" or name in theirs}
    both = sorted(set(ran) & set(theirs))
    differ = [f"{name}: ours {ours[name]}, kirk {theirs[name]}" for name in both
              if ours[name] != theirs[name]]
    print(f"work directory {work}; load average {os.getloadavg()[0]:.1f}")
    print(f"pytest-lkft: {ours_wall:.1f} s wall, {len(ours)} results, tests' own time "
          f"{ours_tests:.1f} s, around them {(ours_wall - ours_tests) / max(len(ran), 1):.3f} "
          "s a test")
    print(f"kirk 4.2.0:  {kirk_wall:.1f} s wall, {len(theirs)} results, tests' own time "
          f"{kirk_tests:.1f} s, around them {(kirk_wall - kirk_tests) / max(len(theirs), 1):.3f}"
          " s a test")
    print(f"ratio pytest-lkft / kirk: {ours_wall / kirk_wall:.3f} (target <= 1.0)")
    print(f"results: {len(both)} tests in both, {len(both) - len(differ)} the same; "
          f"only ours: {len(set(ran) - set(theirs))}, only kirk's: {len(set(theirs) - set(ran))}")
    for line in differ:
        print(f"  differs: {line}")
    print(f"commands: see {work} (ours.xml, kirk-*.json, results/); kirk ran "
          f"{shlex.join([str(kirk), '--run-suite', runtests[0], '...'])}")


if __name__ == "__main__":
    main()
