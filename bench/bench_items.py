"""168,000 results through pytest with --junitxml: our items against trivial pytest tests.

LKFT's mainline run has about 168,000 results with about 4,000 failures. The harness
turns a KTAP log of that size into items (`pytest --lkft-results LOG --junitxml`); the
baseline is pytest itself on the same number of trivial parametrized tests with the same
failures (`assert i % 42 != 0`), also with --junitxml, measured in the same run.

    python bench/bench_items.py [--cases 168000] [--failures 4000]

Target (issue 3): at most the baseline's time (ratio <= 1.0).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = '''
import pytest

@pytest.mark.parametrize("i", range({cases}))
def test_case(i):
    assert i % {every} != 0
'''


def ktap_log(cases: int, every: int) -> str:
    """One KTAP document: suites of 100 cases, every `every`-th case failing."""
    lines = ["KTAP version 1", f"1..{(cases + 99) // 100}"]
    for suite in range((cases + 99) // 100):
        count = min(100, cases - suite * 100)
        lines += ["    KTAP version 1", f"    # Subtest: suite{suite}", f"    1..{count}"]
        for n in range(count):
            i = suite * 100 + n
            if i % every == 0:
                lines += [f"    # case{n}: EXPECTATION FAILED at lib/x.c:{n}",
                          f"    not ok {n + 1} case{n}"]
            else:
                lines.append(f"    ok {n + 1} case{n}")
        lines.append(f"ok {suite + 1} suite{suite}")
    return "\n".join(lines) + "\n"


def timed(command: list[str], cwd: Path) -> float:
    start = time.monotonic()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=168_000)
    parser.add_argument("--failures", type=int, default=4_000)
    args = parser.parse_args()
    every = max(1, args.cases // args.failures)
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
              "-p", "no:labgrid", "--junitxml=junit.xml"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "baseline").mkdir()
        (work / "baseline" / "test_baseline.py").write_text(
            BASELINE.format(cases=args.cases, every=every))
        (work / "ours").mkdir()
        (work / "ours" / "results.log").write_text(ktap_log(args.cases, every))
        store = f"--lkft-store={work / 'store.sqlite3'}"
        base = timed([*pytest, "test_baseline.py"], work / "baseline")
        ours = timed([*pytest, "--lkft-results=results.log", store], work / "ours")
    failures = (args.cases + every - 1) // every
    print(f"{args.cases} cases, {failures} failing, --junitxml, seconds")
    print(f"pytest, trivial parametrized tests : {base:7.1f}")
    print(f"pytest --lkft-results (KTAP log)   : {ours:7.1f}")
    print(f"ratio ours/pytest                  : {ours / base:7.3f}   (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
