"""Boot overhead: pytest start to shell prompt, against the bare QEMU command.

Both runs boot the same kernel and initramfs with the same QEMU command line (the one the
harness writes to reproducer.sh), from process start to the shell prompt:

- bare: the bench spawns QEMU on a pty and reads its console until the prompt;
- harness: `pytest --lkft-device=...` on a pty (as a user runs it in a terminal) with
  the bench's `prompt_clock` plugin, which stamps the moment the harness's own console
  reader matched the prompt (and when it spawned QEMU). Each QEMU console then has one
  reader, as on a user's run. Streaming the console to the terminal (`--lkft-console`,
  -s) puts a second reader behind the first (the terminal): ~0.2 s more here, shown by
  `--stream`, which times the harness by its terminal output instead.

    python bench/bench_boot.py [--device qemu-arm64] [--rounds 5] [--stream]

Target (issue 2): the harness adds at most 10% (ratio <= 1.10).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect
from harness_env import harness_env

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PROMPT = r"/ # "


def time_to_prompt(command: list[str], cwd: Path, timeout: float = 120) -> float:
    """Seconds from spawning `command` to the busybox prompt on its output."""
    start = time.monotonic()
    child = pexpect.spawn(command[0], command[1:], cwd=str(cwd), encoding="utf-8",
                          env=harness_env(), codec_errors="replace", timeout=timeout,
                          dimensions=(50, 1000), searchwindowsize=4096)
    try:
        child.expect(r"Linux version")
        child.expect(PROMPT)
        return time.monotonic() - start
    finally:
        left = descendants(child.pid) if child.pid else []  # a --stream harness's QEMU
        child.terminate(force=True)
        child.close(force=True)
        wait_gone(left)


def descendants(pid: int) -> list[int]:
    """The PIDs of every process below `pid`."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: list[int] = []
    wanted = {pid}
    while wanted:
        wanted = {child for child, parent in parents.items() if parent in wanted}
        found += wanted
    return found


def wait_gone(pids: list[int], timeout: float = 30) -> None:
    """Wait until each process has exited (a QEMU frees its guest memory as it exits), so
    that no run still holds the CPU when the next one starts."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.01)


def harness_to_prompt(device: str, cache: Path, cwd: Path,
                      timeout: float = 120) -> tuple[float, float]:
    """Seconds from starting pytest-lkft to its QEMU's spawn and to the prompt it saw."""
    clock = cwd / "prompt-clock"
    clock.unlink(missing_ok=True)
    command = [*harness_command(device, cache, stream=False), "-p", "prompt_clock"]
    env = harness_env(LKFT_BENCH_CLOCK=str(clock), PYTHONPATH=str(BENCH))
    start = time.monotonic()
    child = pexpect.spawn(command[0], command[1:], cwd=str(cwd), encoding="utf-8", env=env,
                          codec_errors="replace", timeout=timeout, dimensions=(50, 1000))
    child.expect(pexpect.EOF)  # on a terminal, as a user runs it
    child.close()
    if child.exitstatus != 0:
        raise SystemExit(f"the harness failed ({child.exitstatus}):\n{child.before or ''}")
    stamps = dict(line.split() for line in clock.read_text().splitlines())
    return float(stamps["spawn"]) - start, float(stamps["prompt"]) - start


def import_pytest_time() -> float:
    """Seconds for Python to start and import pytest: no plugin can start QEMU sooner."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import pytest"], check=True)
    return time.monotonic() - start


def harness_command(device: str, cache: Path, stream: bool = True) -> list[str]:
    """pytest with pytest-lkft (and xdist, its dependency) only (see harness_env)."""
    return [sys.executable, "-m", "pytest", "-p", "pytest_lkft.plugin", "-p", "xdist.plugin",
            str(REPO / "testsuites" / "test_boot.py"), "-k", "test_boot",
            f"--lkft-device={device}", f"--lkft-cache-dir={cache}",
            *(["--lkft-console"] if stream else []), "-p", "no:cacheprovider", "-q"]


def bare_command(workdir: Path, device: str) -> list[str]:
    script = (workdir / "lkft-results" / device / "boot" / "reproducer.sh").read_text()
    line = next(x for x in script.splitlines() if x.startswith("exec "))
    return shlex.split(line.removeprefix("exec "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="qemu-arm64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stream", action="store_true",
                        help="time the harness by its --lkft-console output on a pty")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lkft-test"
                        / "artifacts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        subprocess.run(harness_command(args.device, args.cache), cwd=workdir, check=True,
                       stdout=subprocess.DEVNULL,  # warm the caches, write the reproducer
                       env=harness_env())
        bare_cmd = bare_command(workdir, args.device)
        harness, bare, floor, spawn = [], [], [], []
        for _ in range(args.rounds):  # alternate, so machine noise hits both alike
            bare.append(time_to_prompt(bare_cmd, workdir))
            if args.stream:
                harness.append(time_to_prompt(harness_command(args.device, args.cache),
                                              workdir))
            else:
                spawned, prompt = harness_to_prompt(args.device, args.cache, workdir)
                spawn.append(spawned)
                harness.append(prompt)
            floor.append(import_pytest_time())
    b, h, f = statistics.median(bare), statistics.median(harness), statistics.median(floor)
    how = "its --lkft-console output" if args.stream else "its console reader (prompt_clock)"
    print(f"device {args.device}, {args.rounds} rounds, median seconds to the shell prompt; "
          f"harness timed by {how}")
    print(f"bare QEMU command : {b:6.2f} s   ({' '.join(f'{x:.2f}' for x in bare)})")
    print(f"pytest --lkft-... : {h:6.2f} s   ({' '.join(f'{x:.2f}' for x in harness)})")
    print(f"ratio harness/bare: {h / b:6.3f}   (target <= 1.10)")
    if spawn:
        s = statistics.median(spawn)
        print(f"harness overhead  : {h - b:6.2f} s   (QEMU spawned {s:.2f} s after pytest "
              f"started; its boot took {h - s:.2f} s against {b:.2f} s bare)")
    print(f"floor             : {f:6.2f} s   (`python -c 'import pytest'`: any pytest plugin's "
          f"ratio is at least {(b + f) / b:.3f} here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
