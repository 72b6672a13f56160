"""Benchmark: our KTAP parser against the kernel's kunit_parser.py on the same log.

Builds one KTAP document of >= 100 MB from real corpus lines (two KUnit fixtures of
the kernel's own test data, with their kernel noise), then, each in a fresh Python
subprocess so that the peak RSS (ru_maxrss) is its own:

- ours (`pytest_lkft.parsers.ktap.iter_cases`, with its C scanner) on the 100 MB log
  and on a 10 MB one: MB/s and peak memory, which must not grow with the log; and on
  the 100 MB log without the scanner (its regex fast path, what an install without a C
  compiler gets);
- kunit_parser.py from Debian's linux-source-6.1 (`parse_run_tests`) on a 5 MB log
  and a 2 MB one built the same way (at its speed 100 MB takes a minute or more and
  hundreds of MB: `--full-baseline` runs it too; its memory grows with the log, which
  the two sizes show).

Speeds are given in CPU time (`time.process_time`) and wall time: on a shared machine
the wall time of either side depends on the load, the CPU time much less.

Run: `python bench/bench_parse.py [--size-mb 100] [--baseline-mb 5]`. The kunit tool
is extracted from /usr/src/linux-source-6.1.tar.xz (`apt-get install -y
linux-source-6.1`) into a cache directory, or taken from `$KUNIT_TOOL_DIR`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "kunit"
SOURCES = (
    "kunit-test_data-test_is_test_passed-failure.log",
    "kunit-test_data-test_interrupted_tap_output.log",
)
TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
TOOL_IN_TARBALL = "linux-source-6.1/tools/testing/kunit/"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lkft-bench"
PREFIX = "[    0.060000] "

OURS = """
import resource, sys, time
from pytest_lkft.parsers import ktap
if sys.argv[2:] == ["regex"]:
    ktap.SCANNER = None
elif ktap.SCANNER is None:
    sys.exit("the C scanner is not built: pip install -e . with gcc and python3-dev")
start, wall = time.process_time(), time.perf_counter()
count = 0
with open(sys.argv[1], errors="replace") as log:
    for case in ktap.iter_cases(log):
        count += 1
seconds, wall = time.process_time() - start, time.perf_counter() - wall
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f'{{"seconds": {seconds}, "wall": {wall}, "cases": {count}, "rss_kb": {rss}}}')
"""

KUNIT = """
import contextlib, io, resource, sys, time
sys.path.insert(0, sys.argv[2])
import kunit_parser
start, wall = time.process_time(), time.perf_counter()
with open(sys.argv[1], errors="replace") as log, contextlib.redirect_stdout(io.StringIO()):
    test = kunit_parser.parse_run_tests(log)
seconds, wall = time.process_time() - start, time.perf_counter() - wall
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
count = test.counts.passed + test.counts.failed + test.counts.skipped + test.counts.crashed
print(f'{{"seconds": {seconds}, "wall": {wall}, "cases": {count}, "rss_kb": {rss}}}')
"""


def suite_blocks() -> list[str]:
    """The suite blocks (lines between the top plan and the end) of the sources."""
    lines: list[str] = []
    for name in SOURCES:
        text = (CORPUS / name).read_text()
        body = [line.removeprefix(PREFIX) for line in text.splitlines()]
        start = next(i for i, line in enumerate(body) if line.startswith("1.."))
        end = max(i for i, line in enumerate(body) if line.startswith(("ok ", "not ok ")))
        lines += body[start + 1 : end + 1]
    return lines


def build_log(path: Path, size_mb: float) -> None:
    """Write one KTAP document of at least `size_mb` MB, top-level results renumbered."""
    block = suite_blocks()
    suites = sum(line.startswith(("ok ", "not ok ")) for line in block)
    block_bytes = sum(len(PREFIX) + len(line) + 1 for line in block)
    copies = int(size_mb * 1_000_000 // block_bytes) + 1
    number = 0
    with path.open("w") as log:
        log.write(f"{PREFIX}TAP version 14\n{PREFIX}1..{copies * suites}\n")
        for _ in range(copies):
            out = []
            for line in block:
                if line.startswith(("ok ", "not ok ")):
                    number += 1
                    status, _, rest = line.partition(" - ")
                    line = f"{status.rsplit(' ', 1)[0]} {number} - {rest}"
                out.append(PREFIX + line + "\n")
            log.write("".join(out))


def kunit_tool() -> Path | None:
    """The directory holding kunit_parser.py, extracting it once if needed."""
    if os.environ.get("KUNIT_TOOL_DIR"):
        return Path(os.environ["KUNIT_TOOL_DIR"])
    target = CACHE / TOOL_IN_TARBALL
    if (target / "kunit_parser.py").is_file():
        return target
    if not TARBALL.is_file():
        return None
    print(f"extracting {TOOL_IN_TARBALL} from {TARBALL} (about a minute)", file=sys.stderr)
    with tarfile.open(TARBALL) as tar:
        members = [m for m in tar if m.name.startswith(TOOL_IN_TARBALL) and m.isfile()]
        tar.extractall(CACHE, members=members, filter="data")
    return target


def measure(script: str, log: Path, *extra: str) -> dict[str, float]:
    """Run a measuring script in a fresh interpreter; return its JSON line."""
    command = [sys.executable, "-c", script, str(log), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["mb"] = log.stat().st_size / 1_000_000
    result["mb_s"] = result["mb"] / result["seconds"]
    result["wall_mb_s"] = result["mb"] / result["wall"]
    return result


def report(name: str, result: dict[str, float]) -> None:
    print(
        f"{name:<30} {result['mb']:6.1f} MB  CPU {result['seconds']:6.2f} s "
        f"{result['mb_s']:5.1f} MB/s  wall {result['wall_mb_s']:5.1f} MB/s "
        f"{int(result['cases']):>7} cases "
        f"peak RSS {result['rss_kb'] / 1024:7.1f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=100)
    parser.add_argument("--baseline-mb", type=float, default=5)
    parser.add_argument(
        "--full-baseline", action="store_true", help="Also run kunit_parser on the big log"
    )
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lkft-bench-") as tmp:
        logs = {}
        for label, size in (
            ("big", args.size_mb),
            ("small", args.size_mb / 10),
            ("base", args.baseline_mb),
            ("base-small", args.baseline_mb / 2.5),
        ):
            logs[label] = Path(tmp) / f"ktap-{label}.log"
            build_log(logs[label], size)
        big = measure(OURS, logs["big"])
        report("ours", big)
        report("ours (1/10 size)", measure(OURS, logs["small"]))
        report("ours without the C scanner", measure(OURS, logs["big"], "regex"))
        ours_base = measure(OURS, logs["base"])
        report("ours (baseline log)", ours_base)
        tool = kunit_tool()
        if tool is None:
            print(f"no kunit_parser.py: install linux-source-6.1 ({TARBALL}) or set KUNIT_TOOL_DIR")
            return 1
        base = measure(KUNIT, logs["base"], str(tool))
        report("kunit_parser.py 6.1", base)
        report("kunit_parser.py 6.1 (smaller)", measure(KUNIT, logs["base-small"], str(tool)))
        ratios = [(big, base)]
        if args.full_baseline:
            same = measure(KUNIT, logs["big"], str(tool))
            report("kunit_parser.py 6.1 (big log)", same)
            ratios.append((big, same))
    for ours, theirs in ratios:
        print(
            f"speed ratio, ours on {ours['mb']:.0f} MB / kunit_parser on {theirs['mb']:.0f} MB: "
            f"{ours['mb_s'] / theirs['mb_s']:.1f}x CPU time, "
            f"{ours['wall_mb_s'] / theirs['wall_mb_s']:.1f}x wall time (target >= 20x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
