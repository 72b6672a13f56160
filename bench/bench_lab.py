"""Lab throughput: two boards with `-n 2` against the same run with `-n 0`.

A real labgrid lab on 127.0.0.1 (coordinator, exporter with ser2net, two stand-in boards
behind the tests' stand-in power switch, see tests/labgrid_lab.py) runs suites on
devices standin-1 and standin-2. With `-n 2` each xdist worker leases its own board;
with `-n 0` one process runs both devices in turn. Rounds alternate the two, so machine
noise hits both alike; medians are compared.

The workload (`--suites N`, default 4) is the boot suite, the smoke suite (13 commands)
and N - 2 more copies of the smoke suite under their own suite names (`smoke-2`, ...).
The copies stand in for the further suites a lab run has on each board (LTP, kselftest):
like any suite run, each powers the board on, boots it and runs its commands. A real
lab run per board is a boot and several suites; with boot + smoke alone (`--suites 2`,
the workload before) a run is ~20 s, and the fixed start-up of xdist's workers weighs
as much as the work. pytest runs in `harness_env()`, as bench_boot.py does: plugin
autoload off and only pytest-lkft and xdist loaded (hypothesis' terminal summary alone
takes ~1 s in each process), and byte-code caching on as in a user's shell.

The stand-in boards boot on the host's CPU (QEMU), which a real board does not: two
boards booting at once compete for this machine's two cores. `--firmware-delay SECONDS`
(default 0) makes each stand-in board wait that long after power-on before its QEMU
starts, as a real board's firmware and bootloader take seconds of the board's own time
(a Raspberry Pi 4's network boot: 5-10 s before the kernel).

    python bench/bench_lab.py [--rounds 3] [--suites 4] [--firmware-delay 0]

Target (issue 6): -n 2 has at least 1.7x the throughput of -n 0 (ratio >= 1.7).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness_env import harness_env  # noqa: E402
from labgrid_lab import STANDIN_LAB, StandinLab, standin_lab  # noqa: E402

SUITES = ("test_boot.py", "test_smoke.py", "smoke.yaml")
DEVICES = ("standin-1", "standin-2")
SMOKE_SUITE = 'lkft_suite("smoke")'


def copy_suites(workdir: Path, count: int) -> list[Path]:
    """Boot, smoke and `count - 2` copies of smoke, where no repository conftest applies."""
    suites = workdir / "testsuites"
    suites.mkdir(parents=True, exist_ok=True)
    for name in SUITES:
        shutil.copy(REPO / "testsuites" / name, suites / name)
    smoke = (suites / "test_smoke.py").read_text()
    copies = []
    for number in range(2, count):
        copy = suites / f"test_smoke_{number}.py"
        copy.write_text(smoke.replace(SMOKE_SUITE, f'lkft_suite("smoke-{number}")'))
        copies.append(copy)
    return [suites / "test_boot.py", suites / "test_smoke.py", *copies][:max(count, 1)]


def timed_run(lab: StandinLab, workdir: Path, cache: Path, suites: list[Path],
              workers: int) -> float:
    """Seconds for one pytest run of both devices; raises unless every test passed."""
    command = [sys.executable, "-m", "pytest", "-p", "pytest_lkft.plugin", "-p", "xdist.plugin",
               *map(str, suites), f"--lkft-cache-dir={cache}",
               f"--lkft-lab={STANDIN_LAB}", f"--lkft-coordinator={lab.coordinator}",
               *(f"--lkft-device={d}" for d in DEVICES), "-n", str(workers),
               "-p", "no:cacheprovider", "-q"]
    start = time.monotonic()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                          env=harness_env(LKFT_LAB=str(STANDIN_LAB)))
    elapsed = time.monotonic() - start
    if done.returncode:
        raise SystemExit(f"-n {workers} run failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suites", type=int, default=4,
                        help="suites per device: boot, smoke, then copies of smoke")
    parser.add_argument("--firmware-delay", type=float, default=0.0,
                        help="seconds from a stand-in board's power-on to its QEMU starting")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lkft-test"
                        / "artifacts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            standin_lab(Path(tmp, "lab"), ["board-a", "board-b"],
                        firmware_delay=args.firmware_delay) as lab:
        workdir = Path(tmp, "run")
        suites = copy_suites(workdir, args.suites)
        timed_run(lab, workdir, args.cache, suites, 2)  # warm the artifact and page caches
        serial, parallel = [], []
        for _ in range(args.rounds):
            serial.append(timed_run(lab, workdir, args.cache, suites, 0))
            parallel.append(timed_run(lab, workdir, args.cache, suites, 2))
    s, p = statistics.median(serial), statistics.median(parallel)
    names = ", ".join(path.stem.removeprefix("test_") for path in suites)
    print(f"devices {', '.join(DEVICES)}: suites {names}; firmware delay "
          f"{args.firmware_delay:g} s; {args.rounds} rounds, "
          f"median seconds per run (nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f})")
    print(f"-n 0 (one process, boards in turn): {s:6.2f} s   "
          f"({' '.join(f'{x:.2f}' for x in serial)})")
    print(f"-n 2 (a board per worker)         : {p:6.2f} s   "
          f"({' '.join(f'{x:.2f}' for x in parallel)})")
    print(f"throughput ratio -n 2 / -n 0      : {s / p:6.3f}   (target >= 1.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
