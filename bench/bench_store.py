"""Benchmark: recording and submitting 168,000 results, each against a baseline run here.

1. The embedded store's `Store.record()` against plain `sqlite3` `executemany` of the same
   rows into a table of the same shape and index, both in one transaction (target: <= 1.5x).
2. Our SQUAD client submitting one run in one request against `curl -F` posting the same
   files to the same real SQUAD 1.98 (tests/squad_server.py; target: <= 1.1x).

Usage: python bench/bench_store.py [--results N] [--rounds R] [--squad-rounds R] [--no-squad]

SQUAD's own processing (about 30 s for 168,000 tests on 2 cores) dominates the second
figure and varies with machine load, so the rounds alternate who goes first and the
medians are compared; the client cost alone is also measured against a sink server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pytest_lkft.parsers.model import Case, Metric, Result  # noqa: E402
from pytest_lkft.reporting.squad import SquadClient, Submission, submission_from  # noqa: E402
from pytest_lkft.reporting.store import RunRecord, Store  # noqa: E402

RESULTS = (Result.PASS,) * 17 + (Result.FAIL, Result.SKIP, Result.XFAIL)
BASELINE_SCHEMA = """
CREATE TABLE test (id INTEGER PRIMARY KEY, testrun_id INTEGER NOT NULL, build_id INTEGER NOT NULL,
    environment_id INTEGER NOT NULL, suite_id INTEGER NOT NULL, name TEXT NOT NULL,
    result TEXT NOT NULL, log TEXT NOT NULL DEFAULT '');
CREATE INDEX test_build ON test (build_id);
"""


def make_cases(count: int) -> list[Case]:
    """`count` LTP-like cases over 40 suites, 1 in 20 failing with a short log."""
    return [
        Case(f"ltp-suite{i % 40}", f"test{i:06d}", r, log=["TFAIL: x"] if r is Result.FAIL else [])
        for i, r in ((i, RESULTS[i % len(RESULTS)]) for i in range(count))
    ]


def record_of(cases: list[Case], build: str) -> RunRecord:
    """A run of the cases on qemu-arm64 with one metric."""
    return RunRecord("lkft", "bench", build, "qemu-arm64", cases,
                     metrics={"boot/boot-time": Metric(2.5, "s")},
                     metadata={"kernel": "6.1.0", "arch": "arm64"}, job_id=f"bench-{build}")


def time_store(cases: list[Case], workdir: Path, n: int) -> float:
    """Seconds for Store.record() of every case into a fresh store."""
    with Store(workdir / f"store-{n}.sqlite3") as store:
        record = record_of(cases, f"v{n}")
        start = time.perf_counter()
        store.record(record)
        return time.perf_counter() - start


def time_sqlite(cases: list[Case], workdir: Path, n: int) -> float:
    """Seconds for plain sqlite3 executemany of the same rows, prepared beforehand."""
    rows = [(1, 1, 1, int(c.suite[9:]), c.name, c.result.value, "\n".join(c.log)) for c in cases]
    db = sqlite3.connect(workdir / f"plain-{n}.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(BASELINE_SCHEMA)
    start = time.perf_counter()
    db.execute("BEGIN")
    db.executemany("INSERT INTO test (testrun_id, build_id, environment_id, suite_id, name,"
                   " result, log) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def bench_store(cases: list[Case], rounds: int) -> float:
    """Print and return the store/sqlite3 ratio."""
    ours_times, plain_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):  # interleaved, so background load hits both alike
            ours_times.append(time_store(cases, Path(tmp), n))
            plain_times.append(time_sqlite(cases, Path(tmp), n))
    ours, plain = min(ours_times), min(plain_times)
    ratio = ours / plain
    print(f"store: {len(cases)} results: Store.record {ours:.3f}s, sqlite3 executemany"
          f" {plain:.3f}s, ratio {ratio:.2f}x (target <= 1.5x)")
    return ratio


def curl_submit(url: str, token: str, sub: Submission, workdir: Path) -> float:
    """Seconds for curl posting the submission's files."""
    for name in ("tests", "metrics", "metadata"):
        (workdir / f"{name}.json").write_text(getattr(sub, name))
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-K", "-"]
    for name in ("tests", "metrics", "metadata"):
        cmd += ["-F", f"{name}=@{workdir / name}.json"]
    cmd.append(url + sub.path)
    start = time.perf_counter()
    done = subprocess.run(cmd, input=f'header = "Authorization: Token {token}"\n',
                          capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    if done.stdout != "201":
        raise RuntimeError(f"curl submit answered {done.stdout}: {done.stderr}")
    return elapsed


def ours_submit(url: str, cases: list[Case], build: str) -> float:
    """Seconds for our client building and posting one submission."""
    start = time.perf_counter()
    outcome = SquadClient(url, delays=()).submit(submission_from(record_of(cases, build)))
    elapsed = time.perf_counter() - start
    if outcome != "submitted":
        raise RuntimeError(f"submit of {build}: {outcome}")
    return elapsed


class Sink(BaseHTTPRequestHandler):
    """Reads a submission and answers 201: measures the client side alone."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(b"1")

    def log_message(self, *args: object) -> None:
        """Quiet."""


def bench_clients(cases: list[Case], rounds: int) -> float:
    """Our client against curl posting the same files to a sink: client cost alone."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    timings: dict[str, list[float]] = {"ours": [], "curl": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            timings["ours"].append(ours_submit(url, cases, f"ours-{n}"))
            sub = submission_from(record_of(cases, f"curl-{n}"))
            timings["curl"].append(curl_submit(url, "x", sub, Path(tmp)))
    server.shutdown()
    server.server_close()
    ours, curl = min(timings["ours"]), min(timings["curl"])
    print(f"client: {len(cases)} results to a sink server: ours {ours:.3f}s (JSON included),"
          f" curl {curl:.3f}s (files ready), difference {ours - curl:+.3f}s")
    return ours - curl


def bench_squad(cases: list[Case], rounds: int) -> float:
    """Start a real SQUAD, warm it up, then alternate our submits and curl's."""
    from squad_server import SquadServer, install_squad

    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed: apt-get install curl")
    with tempfile.TemporaryDirectory() as tmp:
        server = SquadServer(install_squad(), Path(tmp) / "squad")
        try:
            server.start()
            os.environ["LKFT_SQUAD_TOKEN"] = token = server.token("lkft/bench")
            warmup = submission_from(record_of(cases, "warmup"))
            curl_submit(server.url, token, warmup, Path(tmp))  # full size, then statistics
            server.analyze()
            timings: dict[str, list[float]] = {"ours": [], "curl": []}
            for n in range(rounds):  # alternate who goes first: SQUAD slows as it fills
                for who in ("ours", "curl") if n % 2 == 0 else ("curl", "ours"):
                    if who == "ours":
                        timings[who].append(ours_submit(server.url, cases, f"ours-{n}"))
                    else:
                        sub = submission_from(record_of(cases, f"curl-{n}"))
                        timings[who].append(curl_submit(server.url, token, sub, Path(tmp)))
        finally:
            server.stop()
    ours, curl = statistics.median(timings["ours"]), statistics.median(timings["curl"])
    rounded = {k: [round(t, 2) for t in v] for k, v in timings.items()}
    print(f"squad: {len(cases)} results in one request: ours {ours:.2f}s, curl {curl:.2f}s"
          f" (medians), ratio {ours / curl:.2f}x (target <= 1.1x); rounds {json.dumps(rounded)}")
    return ours / curl


def main() -> int:
    """Run both benchmarks and print their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=168_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--squad-rounds", type=int, default=4)
    parser.add_argument("--no-squad", action="store_true", help="Skip the SQUAD benchmark")
    args = parser.parse_args()
    cases = make_cases(args.results)
    bench_store(cases, args.rounds)
    bench_clients(cases, args.rounds)
    if not args.no_squad:
        bench_squad(cases, args.squad_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
