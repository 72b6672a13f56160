"""Boot overhead: pytest start to shell prompt, against the bare QEMU command.

Both runs boot the same kernel and initramfs with the same QEMU command line (the one the
harness writes to reproducer.sh), and both are timed the same way: from process start to
the shell prompt showing on the console, read through a pty. The harness streams its
console with --lkft-console, so the prompt is seen as soon as the harness sees it.

    python bench/bench_boot.py [--device qemu-arm64] [--rounds 5]

Target (issue 2): the harness adds at most 10% (ratio <= 1.10).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
PROMPT = r"/ # "


def time_to_prompt(command: list[str], cwd: Path, timeout: float = 120) -> float:
    """Seconds from spawning `command` to the busybox prompt on its output."""
    start = time.monotonic()
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    child = pexpect.spawn(command[0], command[1:], cwd=str(cwd), encoding="utf-8", env=env,
                          codec_errors="replace", timeout=timeout, dimensions=(50, 1000))
    try:
        child.expect(r"Linux version")
        child.expect(PROMPT)
        return time.monotonic() - start
    finally:
        child.terminate(force=True)
        child.close(force=True)


def import_pytest_time() -> float:
    """Seconds for Python to start and import pytest: no plugin can start QEMU sooner."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import pytest"], check=True)
    return time.monotonic() - start


def harness_command(device: str, cache: Path) -> list[str]:
    """pytest with pytest-lkft (and xdist, its dependency) only: other plugins installed in
    the same environment (labgrid's, hypothesis') cost start-up time that is not ours."""
    return [sys.executable, "-m", "pytest", "-p", "pytest_lkft.plugin", "-p", "xdist.plugin",
            str(REPO / "testsuites" / "test_boot.py"), "-k", "test_boot",
            f"--lkft-device={device}", f"--lkft-cache-dir={cache}", "--lkft-console",
            "-p", "no:cacheprovider", "-q"]


def bare_command(workdir: Path, device: str) -> list[str]:
    script = (workdir / "lkft-results" / device / "boot" / "reproducer.sh").read_text()
    line = next(x for x in script.splitlines() if x.startswith("exec "))
    return shlex.split(line.removeprefix("exec "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="qemu-arm64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lkft-test"
                        / "artifacts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        subprocess.run(harness_command(args.device, args.cache), cwd=workdir, check=True,
                       stdout=subprocess.DEVNULL,  # warm the cache, write the reproducer
                       env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
        bare_cmd = bare_command(workdir, args.device)
        harness, bare, floor = [], [], []
        for _ in range(args.rounds):  # alternate, so machine noise hits both alike
            bare.append(time_to_prompt(bare_cmd, workdir))
            harness.append(time_to_prompt(harness_command(args.device, args.cache), workdir))
            floor.append(import_pytest_time())
    b, h, f = statistics.median(bare), statistics.median(harness), statistics.median(floor)
    print(f"device {args.device}, {args.rounds} rounds, median seconds to the shell prompt")
    print(f"bare QEMU command : {b:6.2f} s   ({' '.join(f'{x:.2f}' for x in bare)})")
    print(f"pytest --lkft-... : {h:6.2f} s   ({' '.join(f'{x:.2f}' for x in harness)})")
    print(f"ratio harness/bare: {h / b:6.3f}   (target <= 1.10)")
    print(f"harness overhead  : {h - b:6.2f} s   (python and pytest start-up before the boot "
          "starts, then contention for the 2 cores)")
    print(f"floor             : {f:6.2f} s   (`python -c 'import pytest'`: any pytest plugin's "
          f"ratio is at least {(b + f) / b:.3f} here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
