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
  the two sizes show);
- the command users run, end to end (issue 17): `lkft parse LOG > FILE` from a fresh
  virtualenv where the project was pip-installed as a user installs it (a wheel, with its
  C modules), in a user's shell environment (no PYTHONUNBUFFERED, byte code cached by a
  first run), on the 100 MB and 10 MB logs, with `--output json` and `jsonl`, and once
  more without its C writer (`cli/_jsonrows.c`, as an install with no compiler): the
  child's CPU time (user + system), wall time and peak RSS (`os.wait4`), so the figure
  holds start-up, detection, parsing and writing;
- format detection against the parse, in a fresh interpreter: the 100 MB log, a log
  whose first line is `--long-line-mb` (300) MB of text before a short KTAP document,
  and 20,000 blank lines before one (the old KTAP pattern was quadratic in them); and
  the long-line log through the command (its peak RSS must stay far below the line).

Speeds are given in CPU time (`time.process_time`) and wall time: on a shared machine
the wall time of either side depends on the load, the CPU time much less.

Run: `python bench/bench_parse.py [--size-mb 100] [--baseline-mb 5] [--long-line-mb 300]`.
The kunit tool is extracted from /usr/src/linux-source-6.1.tar.xz (`apt-get install -y
linux-source-6.1`) into a cache directory, or taken from `$KUNIT_TOOL_DIR`. The
virtualenv is made in a temporary directory and removed (pip needs the project's
dependencies from its index; about a minute).
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

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "kunit"
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


DETECT = """
import sys, time
from pytest_lkft.parsers.detect import LogFile
start = time.process_time()
with LogFile(sys.argv[1]) as log:
    detected = time.process_time() - start
    count = sum(1 for _ in log.cases())
seconds = time.process_time() - start
print(f'{{"detect": {detected}, "seconds": {seconds}, "cases": {count}, "format": "{log.format}"}}')
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


def build_long_line_log(path: Path, size_mb: float) -> None:
    """One line of `size_mb` MB of words (no newline, no carriage return), then KTAP."""
    chunk = b"noise, words without an end " * 37450  # ~1 MB
    with path.open("wb") as log:
        for _ in range(int(size_mb)):
            log.write(chunk)
        log.write(b"\nKTAP version 1\n1..2\nok 1 first\nnot ok 2 second\n")


def user_venv(root: Path) -> Path:
    """The `lkft` of a fresh virtualenv with the project pip-installed (not editable)."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(REPO)], check=True,
                   stdout=subprocess.DEVNULL)
    return venv / "bin" / "lkft"


def user_env() -> dict[str, str]:
    """A user's shell environment: output buffered, byte code written and reused."""
    drop = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")
    return {key: value for key, value in os.environ.items() if key not in drop}


# Runs a command and prints its rusage. A child's ru_maxrss includes what its parent held
# when it forked (Linux keeps the larger), so the command is started from this small
# process, not from the benchmark, which holds a few hundred MB by then.
RUSAGE = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as sink:
    start = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=sink)
    _, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status),
                  "seconds": usage.ru_utime + usage.ru_stime,
                  "wall": time.perf_counter() - start, "rss_kb": usage.ru_maxrss}))
"""


def measure_command(lkft: Path, log: Path, out: Path, *extra: str) -> dict[str, float]:
    """Run `lkft parse LOG [extra] > out`; its CPU (user + system), wall time, peak RSS."""
    python = str(lkft.parent / "python")
    done = subprocess.run([python, "-c", RUSAGE, str(out), str(lkft), "parse", str(log), *extra],
                          capture_output=True, text=True, check=True, env=user_env())
    result: dict[str, float] = json.loads(done.stdout)
    if result["status"]:
        raise SystemExit(f"lkft parse {log} exited {result['status']}: {done.stderr}")
    result["mb"] = log.stat().st_size / 1_000_000
    result["mb_s"] = result["mb"] / result["seconds"]
    result["wall_mb_s"] = result["mb"] / result["wall"]
    result["cases"] = count_results(out)
    return result


def count_results(out: Path) -> int:
    """The results in a `lkft parse` output: a result a line (JSON: between the braces)."""
    with out.open("rb") as text:
        first = text.readline()
        lines = 1 + sum(1 for _ in text)
    if first == b"{\n":  # `{`, the results, `}`
        return lines - 2
    return lines


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
    parser.add_argument("--long-line-mb", type=float, default=300)
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
        baselines = [base]
        if args.full_baseline:
            same = measure(KUNIT, logs["big"], str(tool))
            report("kunit_parser.py 6.1 (big log)", same)
            baselines.append(same)
        ours = [("ours", big), *measure_user_command(Path(tmp), logs, args.long_line_mb)]
    for label, result in ours:
        for theirs in baselines:
            print(
                f"speed ratio, {label} on {result['mb']:.0f} MB / kunit_parser on "
                f"{theirs['mb']:.0f} MB: {result['mb_s'] / theirs['mb_s']:.1f}x CPU time, "
                f"{result['wall_mb_s'] / theirs['wall_mb_s']:.1f}x wall time (target >= 20x)"
            )
    return 0


def measure_user_command(
    tmp: Path, logs: dict[str, Path], long_line_mb: float
) -> list[tuple[str, dict[str, float]]]:
    """`lkft parse` as a user runs it; detection against parsing (see the docstring)."""
    print("installing the project into a fresh virtualenv", file=sys.stderr)
    lkft = user_venv(tmp)
    out = tmp / "results.json"
    measure_command(lkft, logs["small"], out)  # writes the byte code, as a user's first run
    command = measure_command(lkft, logs["big"], out)
    report("lkft parse (command, json)", command)
    report("lkft parse (1/10 size)", measure_command(lkft, logs["small"], out))
    lines = measure_command(lkft, logs["big"], out, "--output", "jsonl")
    report("lkft parse --output jsonl", lines)
    for module in (lkft.parent.parent / "lib").glob("python3*/site-packages/pytest_lkft/cli/"
                                                     "_jsonrows*.so"):
        module.unlink()  # as an install without a C compiler has it
    python_writer = measure_command(lkft, logs["big"], out)
    report("lkft parse, Python writer", python_writer)
    long_line, blank = tmp / "long-line.log", tmp / "blank-lines.log"
    build_long_line_log(long_line, long_line_mb)
    report(f"lkft parse ({long_line_mb:.0f} MB line)", measure_command(lkft, long_line, out))
    blank.write_text("\n" * 20_000 + "KTAP version 1\n1..1\nok 1 after_blank_lines\n")
    python = str(lkft.parent / "python")
    for label, log in (("100 MB log", logs["big"]), (f"{long_line_mb:.0f} MB line", long_line),
                       ("20,000 blank lines", blank)):
        done = subprocess.run([python, "-c", DETECT, str(log)], capture_output=True, text=True,
                              check=True, env=user_env())
        found = json.loads(done.stdout)
        print(f"detection on the {label}: {found['detect']:.3f} s CPU (opening, reading the "
              f"head, sniffing), the whole parse {found['seconds']:.3f} s "
              f"({found['format']}, {found['cases']} cases)")
    return [("lkft parse end to end", command), ("lkft parse --output jsonl", lines),
            ("lkft parse, Python writer", python_writer)]


if __name__ == "__main__":
    sys.exit(main())
