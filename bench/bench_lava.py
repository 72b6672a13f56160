"""LAVA devices: submit-to-results, harness cost, and jobs in flight, with baselines.

A real LAVA 2023.01 on 127.0.0.1 (tests/lava_lab.py: Debian's packages, two QEMU devices)
runs the boot suite and the smoke suite (13 commands) on `lava:qemu`, Debian's arm64
kernel and the busybox initramfs; each suite run is one LAVA job. In the same run, as
baselines on the same kernel and initramfs:

- tuxrun `--runtime null` (PyPI tuxrun) does the same work (a boot; a boot and the 13
  smoke commands) with LAVA's dispatcher on this machine and no server, its own job for
  qemu-arm64: `-cpu max,pauth-impdef=on` and MTE, which tuxrun's qemu-arm64 machine
  needs (it refuses cortex-a57), 4 GB, the same kernel and initramfs;
- the same suites on local QEMU (`--lkft-device=qemu-arm64`).

Figures, medians over alternating rounds:

- submit-to-results per job: from pytest-lkft submitting the job to its results being
  in the process (lava-job.json's times), against tuxrun's wall time for the same work;
- harness cost per job: that time minus LAVA's own duration of the job (submitted to
  finished, as LAVA records it): polling, reading the log and the test cases (target
  <= 0.5 s); and the whole pytest run's wall time minus its jobs' durations;
- four suite runs (boot, smoke and two more copies of smoke) with `--lkft-lava-jobs=4`
  (four in flight, on LAVA's two devices) against `--lkft-lava-jobs=1` (one after the
  other), whole pytest runs (target <= 0.6x); with what makes the difference: how busy
  the two devices were (the harness's part: a device left waiting), and how much longer
  a job took on its device beside another (the lab's part: here both devices' QEMU share
  this machine's cores, as two boards would not);
- this machine's floor for that ratio: the same four jobs (their definitions as LAVA
  holds them, artifacts as file:// URLs) run by LAVA's dispatcher alone, `lava-run` with
  each device's configuration as the lab's server renders it, as tuxrun drives it: no
  server, scheduler, worker or harness; four in a row on one device against two at a
  time, one on each device.

    python bench/bench_lava.py [--rounds 3] [--tuxrun PATH]

tuxrun: `pip install tuxrun` into a virtualenv of its own (it pins its own
dependencies), then `--tuxrun ~/tuxrun-venv/bin/tuxrun`; without it that baseline is
left out and the script says so. Runs as root (LAVA's packages, its daemons).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness_env import harness_env  # noqa: E402
from lava_lab import DEVICES, LavaLab, lava_lab, manage  # noqa: E402

from pytest_lkft.artifacts.publish import PUBLISHED, ROUTE  # noqa: E402

SUITES = ("test_boot.py", "test_smoke.py", "smoke.yaml")
SMOKE_SUITE = 'lkft_suite("smoke")'
FLOOR_JOB_IDS = 900000  # lava-run's job ids for the floor, far above the lab's


def copy_suites(workdir: Path, count: int) -> list[Path]:
    """Boot, smoke and `count - 2` copies of smoke under their own suite names."""
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
    return [suites / "test_boot.py", suites / "test_smoke.py", *copies][:count]


def pytest_run(lab: LavaLab, workdir: Path, cache: Path, suites: list[Path], device: str,
               *args: str) -> float:
    """Seconds for one pytest-lkft run; raises unless every test passed."""
    shutil.rmtree(workdir / "lkft-results", ignore_errors=True)
    command = [sys.executable, "-m", "pytest", "-p", "pytest_lkft.plugin", "-p", "xdist.plugin",
               *map(str, suites), f"--lkft-cache-dir={cache}", f"--lkft-device={device}",
               f"--lkft-lava-url={lab.url}", "-p", "no:cacheprovider", "-q", *args]
    start = time.monotonic()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                          env=harness_env(LKFT_LAVA_TOKEN=lab.token))
    elapsed = time.monotonic() - start
    if done.returncode:
        raise SystemExit(f"{device} run failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return elapsed


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_run(lab: LavaLab, workdir: Path, cache: Path, suites: list[Path], device: str,
             *args: str) -> tuple[float, float]:
    """(seconds, the machine's CPU busy share during it) of one pytest-lkft run."""
    busy, total = cpu_ticks()
    wall = pytest_run(lab, workdir, cache, suites, device, *args)
    busy_after, total_after = cpu_ticks()
    return wall, (busy_after - busy) / max(total_after - total, 1)


Job = tuple[str, dict[str, Any], dict[str, Any]]  # suite run, lava-job.json, LAVA's record


def last_jobs(lab: LavaLab, workdir: Path) -> list[Job]:
    """Each job of the last run: its suite run's name, our record of it, LAVA's."""
    found = []
    for record_path in sorted((workdir / "lkft-results" / "lava:qemu").glob("*/lava-job.json")):
        record = json.loads(record_path.read_text())
        found.append((record_path.parent.name, record, lab.job(int(record["id"]))))
    return found


def timeline(jobs: list[Job]) -> list[str]:
    """Each job: seconds from the first submission to its start and end, and its device."""
    times = [(name, _utc(job["submit_time"]), _utc(job["start_time"]), _utc(job["end_time"]),
              job.get("actual_device", "")) for name, _, job in jobs]
    first = min((t[1] for t in times), default=0.0)
    return [f"{name:<10} {device:<14} submitted {sub - first:5.1f}  started {start - first:5.1f}"
            f"  ended {end - first:5.1f}" for name, sub, start, end, device in times]


def job_spans(jobs: list[Job]) -> list[float]:
    """Each job: LAVA's seconds from its start to its end on a device."""
    return [_utc(job["end_time"]) - _utc(job["start_time"]) for _, _, job in jobs]


def _utc(text: object) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def job_figures(jobs: list[Job]) -> list[tuple[float, float]]:
    """(ours: submit to results, LAVA's duration) of each job."""
    return [(record["results_at"] - record["submitted_at"],
             _utc(job["end_time"]) - _utc(job["submit_time"])) for _, record, job in jobs]


RENDER_DEVICES = """
import yaml
from lava_scheduler_app.models import Device
for name in {devices!r}:
    config = Device.objects.get(hostname=name).load_configuration(job_ctx={context!r})
    print(yaml.safe_dump({{name: config}}))
"""


def device_configs(jobs: list[Job], workdir: Path) -> list[Path]:
    """Each lab device's configuration as LAVA's server renders it for these jobs (their
    context), written for `lava-run --device`."""
    context = yaml.safe_load(jobs[0][2]["definition"]).get("context") or {}
    configs = yaml.safe_load(manage("shell", "-c", RENDER_DEVICES.format(
        devices=list(DEVICES), context=context))) or {}
    paths = []
    for name in DEVICES:
        path = workdir / "floor" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(configs[name]))
        paths.append(path)
    return paths


def local_definition(job: dict[str, Any], cache: Path, path: Path) -> Path:
    """The job's definition with its published artifacts' URLs turned into file:// URLs of
    the same files (the run's artifact server is gone with its pytest run)."""
    definition = yaml.safe_load(job["definition"])
    for action in definition["actions"]:
        for image in action.get("deploy", {}).get("images", {}).values():
            route = urllib.parse.urlsplit(image["url"]).path
            if ROUTE in route:
                image["url"] = (cache / PUBLISHED / route.split(ROUTE, 1)[1]).as_uri()
    path.write_text(yaml.safe_dump(definition))
    return path


def dispatch(definition: Path, device: Path, job_id: int, workdir: Path) -> None:
    """Run one job with LAVA's dispatcher alone (`lava-run`, no server); raises if it fails."""
    output = workdir / "floor" / f"job-{job_id}"
    shutil.rmtree(output, ignore_errors=True)
    done = subprocess.run(["lava-run", "--job-id", str(job_id), "--output-dir", str(output),
                           "--device", str(device), str(definition)],
                          capture_output=True, text=True)
    results = (output / "result.yaml").read_text() if (output / "result.yaml").exists() else ""
    if done.returncode or "result: fail" in results:
        raise SystemExit(f"lava-run of {definition.name} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-2000:]}")


def dispatcher_floor(jobs: list[Job], cache: Path, workdir: Path) -> tuple[float, float]:
    """The machine's floor for jobs in flight: the same jobs run by LAVA's dispatcher alone
    (`lava-run`, as tuxrun drives it; no server, scheduler or harness), with the lab's
    rendered device configurations: (seconds for all in a row on one device, seconds with
    the two devices each running half of them, side by side)."""
    devices = device_configs(jobs, workdir)
    definitions = [local_definition(job, cache, workdir / "floor" / f"{name}.yaml")
                   for name, _, job in jobs]
    ids = iter(range(FLOOR_JOB_IDS, FLOOR_JOB_IDS + 2 * len(definitions)))
    start = time.monotonic()
    for definition in definitions:
        dispatch(definition, devices[0], next(ids), workdir)
    in_a_row = time.monotonic() - start
    lanes = [[(d, devices[lane], next(ids)) for d in definitions[lane::len(devices)]]
             for lane in range(len(devices))]
    start = time.monotonic()
    with ThreadPoolExecutor(len(lanes)) as pool:
        for lane_done in [pool.submit(run_lane, lane, workdir) for lane in lanes]:
            lane_done.result()
    return in_a_row, time.monotonic() - start


def run_lane(lane: list[tuple[Path, Path, int]], workdir: Path) -> None:
    """One device's share of the jobs, one after the other."""
    for definition, device, job_id in lane:
        dispatch(definition, device, job_id, workdir)


def tuxrun_job(tuxrun: str, artifacts: tuple[Path, Path], commands: list[str],
               workdir: Path) -> float:
    """Seconds `tuxrun --runtime null` takes for the same work as one of our jobs: a boot,
    or a boot and the smoke commands (one shell line: tuxrun runs its commands as one
    LAVA test case); raises if it fails."""
    kernel, rootfs = artifacts
    command = [tuxrun, "--runtime", "null", "--device", "qemu-arm64", "--kernel",
               kernel.as_uri(), "--rootfs", rootfs.as_uri(),
               "--log-file-yaml", str(workdir / "tuxrun-logs.yaml")]
    if commands:
        command += ["--", "sh", "-c", "; ".join(commands)]
    start = time.monotonic()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if done.returncode:
        raise SystemExit(f"tuxrun failed ({done.returncode}):\n{done.stdout[-3000:]}"
                         f"{done.stderr[-2000:]}")
    return elapsed


def default_artifacts(cache: Path) -> tuple[Path, Path]:
    """Debian's arm64 kernel and the busybox initramfs, as the runs boot them."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts as defaults
    from pytest_lkft.settings.devices import load_devices

    with ArtifactCache(cache) as shared:
        found = defaults(load_devices().get("qemu-arm64"), shared.root, shared.fetch)
    return found.kernel, found.rootfs


def show(label: str, values: list[float], unit: str = "s") -> float:
    """Print a median with its rounds; the median."""
    middle = statistics.median(values)
    print(f"  {label:<44} {middle:7.2f} {unit}  ({' '.join(f'{v:.2f}' for v in values)})")
    return middle


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tuxrun", default=shutil.which("tuxrun"), help="tuxrun to run")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lkft-test"
                        / "artifacts")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the lab stops on kill too
    ours, lava, harness, whole, walls, tux, local, serial, parallel = ([] for _ in range(9))
    serial_spans: list[float] = []
    parallel_spans: list[float] = []
    occupancy: list[float] = []
    floor_row: list[float] = []
    floor_side: list[float] = []
    serial_busy: list[float] = []
    parallel_busy: list[float] = []
    last_timeline: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, lava_lab(Path(tmp, "lab")) as lab:
        workdir = Path(tmp, "run")
        two, four = copy_suites(workdir, 2), copy_suites(workdir, 4)
        artifacts = default_artifacts(args.cache)
        smoke = list(yaml.safe_load((REPO / "testsuites" / "smoke.yaml").read_text()).values())
        pytest_run(lab, workdir, args.cache, two, "lava:qemu")  # warm caches, byte code
        pytest_run(lab, workdir, args.cache, two, "qemu-arm64")
        for _ in range(args.rounds):
            wall = pytest_run(lab, workdir, args.cache, two, "lava:qemu")
            walls.append(wall)
            jobs = job_figures(last_jobs(lab, workdir))
            ours += [j[0] for j in jobs]
            lava += [j[1] for j in jobs]
            harness += [j[0] - j[1] for j in jobs]
            whole.append((wall - sum(j[1] for j in jobs)) / len(jobs))
            if args.tuxrun:
                for commands in ([], smoke):
                    tux.append(tuxrun_job(args.tuxrun, artifacts, commands, Path(tmp)))
            local.append(pytest_run(lab, workdir, args.cache, two, "qemu-arm64"))
            wall, busy = busy_run(lab, workdir, args.cache, four, "lava:qemu",
                                  "--lkft-lava-jobs=1")
            serial.append(wall)
            serial_busy.append(busy * 100)
            serial_spans += job_spans(last_jobs(lab, workdir))
            wall, busy = busy_run(lab, workdir, args.cache, four, "lava:qemu",
                                  "--lkft-lava-jobs=4")
            parallel.append(wall)
            parallel_busy.append(busy * 100)
            in_flight = last_jobs(lab, workdir)
            spans = job_spans(in_flight)
            parallel_spans += spans
            occupancy.append(sum(spans) / (len(DEVICES) * wall) * 100)
            last_timeline = timeline(in_flight)
            row, side = dispatcher_floor(in_flight, args.cache, workdir)
            floor_row.append(row)
            floor_side.append(side)
    print(f"lava:qemu, boot + smoke (13 commands), {args.rounds} rounds, medians "
          f"(nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f})")
    o = show("ours: submit to results, per job", ours)
    show("LAVA: job submitted to finished, per job", lava)
    h = show("harness cost per job (ours - LAVA's)", harness)
    show("whole run: wall - LAVA's jobs, per job", whole)
    if tux:
        t = show("tuxrun --runtime null, per job", tux)
        print(f"  submit-to-results / tuxrun                    {o / t:7.2f}x")
    else:
        print("  tuxrun: not found (pip install tuxrun; --tuxrun PATH): baseline left out")
    w = show("lava:qemu, boot + smoke, whole pytest run", walls)
    loc = show("local QEMU, boot + smoke, whole pytest run", local)
    print(f"  lava:qemu / local QEMU, whole runs            {w / loc:7.2f}x")
    s = show("4 suite runs, --lkft-lava-jobs=1 (in a row)", serial)
    p = show("4 suite runs, --lkft-lava-jobs=4 (in flight)", parallel)
    show("machine CPU busy, four in a row", serial_busy, "%")
    show("machine CPU busy, four in flight", parallel_busy, "%")
    show("the 2 devices busy with a job, four in flight", occupancy, "%")
    a = show("a job on its device, four in a row", serial_spans)
    b = show("a job on its device, four in flight", parallel_spans)
    print(f"  a job in flight / in a row (beside another)   {b / a:7.2f}x")
    fr = show("same 4 jobs, lava-run alone, in a row", floor_row)
    fs = show("same 4 jobs, lava-run alone, 2 at a time", floor_side)
    print(f"  floor: lava-run 2 at a time / in a row        {fs / fr:7.2f}x")
    print("  last four-in-flight run, seconds from the first submission:")
    for line in last_timeline:
        print(f"    {line}")
    print(f"  harness cost per job                          {h:7.2f} s   (target <= 0.5 s)")
    print(f"  four in flight / four in a row                {p / s:7.2f}x  (target <= 0.6x;"
          f" floor {fs / fr:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
