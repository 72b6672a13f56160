"""Benchmark: `lkft serve` against a real SQUAD 1.98 reading a build of 168,000 tests.

Both servers get the same builds through the same SQUAD submit (our client, one request
per build): a small warm-up build (SQUAD on SQLite needs statistics before a big one), then
two builds of 168,000 tests, the second with regressions and fixes against the first. Then,
alternating rounds, each answers three reads of the second build, timed from the client:

1. the build page (SQUAD's `/<group>/<project>/build/<version>/`, ours the same path);
2. the build status (`/api/builds/<id>/status/`, SQUAD's own JSON, ours the same shape);
3. a paged walk of `/api/builds/<id>/tests/?limit=1000`, following `next` to the end.

Medians are compared: SQUAD's time / ours (target >= 5x for each). Our first status
request computes the regressions (later ones read the store's cache); SQUAD computed its
status when the build arrived, so the first request of each is printed too.

Usage: python bench/bench_serve.py [--results N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pytest_lkft.parsers.model import Case, Metric, Result  # noqa: E402
from pytest_lkft.reporting.squad import SquadClient, submission_from  # noqa: E402
from pytest_lkft.reporting.store import RunRecord  # noqa: E402

RESULTS = (Result.PASS,) * 17 + (Result.FAIL, Result.SKIP, Result.PASS)
GROUP, PROJECT = "lkft", "bench"


def make_cases(count: int, build: int) -> list[Case]:
    """LTP-like cases over 40 suites; build 2 flips one test in 500 (regressions, fixes)."""
    cases = []
    for i in range(count):
        result = RESULTS[i % len(RESULTS)]
        if build == 2 and i % 500 in (3, 17):
            result = Result.FAIL if result is Result.PASS else Result.PASS
        log = ["TFAIL: x"] if result is Result.FAIL else []
        cases.append(Case(f"ltp-suite{i % 40}", f"test{i:06d}", result, log=log))
    return cases


WARMUP = 5000  # tests of a first, small build: SQUAD on SQLite needs statistics first


def submit_builds(url: str, count: int, analyze: Callable[[], None]) -> None:
    """A small warm-up build, then two builds of `count` tests on qemu-arm64, one request
    each; `analyze` runs after each (SQUAD's SQLite needs statistics, FACTS.md)."""
    for build in (0, 1, 2):
        cases = make_cases(WARMUP if build == 0 else count, build)
        record = RunRecord(GROUP, PROJECT, f"v{build}", "qemu-arm64", cases,
                           metrics={"boot/boot-time": Metric(2.5, "s")},
                           metadata={"kernel_version": f"6.1.{build}"},
                           job_id=f"bench-{build}-{url.rsplit(':', 1)[1]}")
        outcome = SquadClient(url, delays=(), timeout=3600).submit(submission_from(record))
        if outcome != "submitted":
            raise RuntimeError(f"{url}: build v{build} {outcome}")
        analyze()


def build_id(url: str) -> int:
    """The id of build v2 on a server."""
    found = requests.get(f"{url}/api/builds/", params={"version": "v2"}, timeout=600).json()
    return int(found["results"][0]["id"])


def timed(read: Callable[[], int]) -> float:
    """Seconds for one read; the read returns how many bytes it got (checked non-empty)."""
    start = time.perf_counter()
    size = read()
    elapsed = time.perf_counter() - start
    if size <= 0:
        raise RuntimeError("empty answer")
    return elapsed


def reads(url: str, ident: int, count: int) -> dict[str, Callable[[], int]]:
    """The three reads of build v2 on a server."""
    def page() -> int:
        response = requests.get(f"{url}/{GROUP}/{PROJECT}/build/v2/", timeout=1800)
        response.raise_for_status()
        return len(response.content)

    def status() -> int:
        response = requests.get(f"{url}/api/builds/{ident}/status/", timeout=600)
        response.raise_for_status()
        return len(response.content)

    def walk() -> int:
        seen, size = 0, 0
        following: str | None = f"{url}/api/builds/{ident}/tests/?limit=1000"
        while following:
            response = requests.get(following, timeout=600)
            response.raise_for_status()
            size += len(response.content)
            data = response.json()
            seen += len(data["results"])
            following = data["next"]
        if seen != count:
            raise RuntimeError(f"{url}: walked {seen} tests, expected {count}")
        return size

    return {"build page": page, "build status": status, "tests walk": walk}


def start_serve(store: Path, token: str) -> tuple[subprocess.Popen[str], str]:
    """`lkft serve` on 127.0.0.1, any port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_lkft.cli", "serve", "--store", str(store), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "LKFT_SQUAD_TOKEN": token})
    assert process.stdout is not None
    return process, process.stdout.readline().split(" on ")[1].strip().rstrip("/")


def main() -> int:
    """Load both servers, time the reads alternately, print the ratios."""
    from squad_server import SquadServer, install_squad

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=168_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        squad = SquadServer(install_squad(), Path(tmp) / "squad")
        serve = None
        try:
            squad.start()
            os.environ["LKFT_SQUAD_TOKEN"] = token = squad.token(f"{GROUP}/{PROJECT}")
            serve, ours = start_serve(Path(tmp) / "store.sqlite3", token)
            loading = {}
            for name, url in (("lkft serve", ours), ("squad", squad.url)):
                start = time.perf_counter()
                submit_builds(url, args.results, squad.analyze if name == "squad" else lambda: None)
                loading[name] = time.perf_counter() - start
            print(f"loaded 2 builds of {args.results} tests: " + ", ".join(
                f"{n} {t:.1f}s" for n, t in loading.items()), flush=True)
            servers = {"squad": reads(squad.url, build_id(squad.url), args.results),
                       "ours": reads(ours, build_id(ours), args.results)}
            timings: dict[str, dict[str, list[float]]] = {n: {"squad": [], "ours": []}
                                                          for n in servers["ours"]}
            for n in range(args.rounds):
                for who in ("squad", "ours") if n % 2 == 0 else ("ours", "squad"):
                    for name, read in servers[who].items():
                        timings[name][who].append(timed(read))
        finally:
            squad.stop()
            if serve is not None:
                serve.terminate()
                serve.wait(timeout=30)
    return report(timings)


def report(timings: dict[str, dict[str, list[float]]]) -> int:
    """Print one line per read; exit 1 when a ratio misses the 5x target."""
    missed = 0
    for name, by in timings.items():
        squad, ours = statistics.median(by["squad"]), statistics.median(by["ours"])
        ratio = squad / ours
        missed += ratio < 5
        rounds = {k: [round(t, 3) for t in v] for k, v in by.items()}
        print(f"{name}: squad {squad:.3f}s, lkft serve {ours:.3f}s (medians): {ratio:.1f}x"
              f" (target >= 5x); rounds {json.dumps(rounds)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
