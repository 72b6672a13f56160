"""Build overhead: the harness's kernel build against the same make commands run by hand.

Both sides build the same tree, config and fragment from an empty object directory,
through the same warm ccache (so each round compiles nothing new and the comparison is
about what wraps make). The harness: `KernelBuild(reuse=False).run()` (make always runs;
the source-hash memo of the build cache is warm, as after a machine's first build). By
hand: the `reproducer.sh` that build wrote (the same commands, in order, run by sh).
Rounds alternate and medians are compared, as the machine is shared. Then an identical
second build is asked for: it must come from the build cache.

    python bench/bench_build.py [--tree DIR] [--rounds 3]

Targets (issue 4): harness / by hand <= 1.02; a cached build < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pytest_lkft.build.kernel import KernelBuild

REPO = Path(__file__).resolve().parents[1]
SHARED = Path.home() / ".cache" / "lkft-test"
FRAGMENT = REPO / "pytest_lkft" / "data" / "kconfig" / "qemu-virt-kunit.config"


def harness_build(tree: Path, out: Path | None, cache: Path, reuse: bool = True) -> KernelBuild:
    """The KernelBuild both sides run: arm64 tinyconfig plus the qemu-virt KUnit fragment."""
    return KernelBuild(tree=tree, target_arch="arm64", kconfig="tinyconfig",
                       kconfig_add=(str(FRAGMENT),), targets=("config", "kernel"),
                       build_dir=out, cache_dir=cache, reuse=reuse)


def time_harness(tree: Path, work: Path, index: int, cache: Path) -> float:
    """Seconds for a harness build (reuse=False: make runs) into a fresh output directory."""
    out = work / f"harness-{index}"
    started = time.monotonic()
    result = harness_build(tree, out, cache, reuse=False).run()
    elapsed = time.monotonic() - started
    assert result.passed and not result.cached, result.first_errors
    shutil.rmtree(out / "build")
    return elapsed


def time_by_hand(reproducer: Path) -> float:
    """Seconds for reproducer.sh from an empty object directory."""
    shutil.rmtree(reproducer.parent / "build", ignore_errors=True)
    started = time.monotonic()
    subprocess.run(["sh", str(reproducer)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def time_cached(tree: Path, cache: Path, rounds: int = 5) -> float:
    """Median seconds for the identical build again, served by the build cache."""
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        result = harness_build(tree, None, cache).run()
        times.append(time.monotonic() - started)
        assert result.cached
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=SHARED / "linux-source-6.1")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("CCACHE_DIR", str(SHARED / "ccache"))
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        baseline_out, baseline_cache = work / "baseline", work / "baseline-cache"
        warm = harness_build(args.tree, baseline_out, baseline_cache).run()  # warms ccache
        assert warm.passed, warm.first_errors
        reproducer = baseline_out / "reproducer.sh"
        harness, by_hand = [], []
        for index in range(args.rounds):
            by_hand.append(time_by_hand(reproducer))
            harness.append(time_harness(args.tree, work, index, baseline_cache))
        cached = time_cached(args.tree, baseline_cache)
    ratio = statistics.median(harness) / statistics.median(by_hand)
    pairs = statistics.median(h / b for h, b in zip(harness, by_hand, strict=True))
    print(f"ccache: warm, both sides ({os.environ['CCACHE_DIR']}); rounds: {args.rounds}")
    print(f"by hand (reproducer.sh): median {statistics.median(by_hand):.1f}s "
          f"{[round(t, 1) for t in by_hand]}")
    print(f"harness (KernelBuild):   median {statistics.median(harness):.1f}s "
          f"{[round(t, 1) for t in harness]}")
    print(f"harness / by hand: {ratio:.3f} of medians, {pairs:.3f} median of rounds "
          "(target <= 1.02)")
    print(f"identical build from the cache: median {cached * 1000:.0f} ms (target < 1000 ms)")
    return 0 if ratio <= 1.02 and cached < 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
