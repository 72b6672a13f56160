"""Benchmark the artifact cache: 16 concurrent clients of one artifact, and the speed of a hit.

    python bench/bench_cache.py [--size-mb 200] [--clients 16]

Prints, all measured in the same run on this machine:
- upstream bytes for 16 concurrent library clients (one shared cache) and for 16 concurrent
  HTTP clients of `lkft cache serve`: both must equal one copy;
- a library hit (`fetch` then `cat` of the returned path) against `cat` of the file: >= 0.8x;
- an HTTP hit through `lkft cache serve` against `cat`, and against a bare loopback socket
  sending the same file with sendfile (the ceiling any HTTP cache can reach here).
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from origin_server import Origin  # noqa: E402

from pytest_lkft.artifacts.cache import ArtifactCache  # noqa: E402

TARGET = 0.8
RUNS = 11  # alternated, medians compared: the machine may be busy


def compare(runs: int, first: Callable[[], object], second: Callable[[], object]
            ) -> tuple[float, float]:
    """Time two actions in alternation; return their median wall times (load-fair)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for action, spent in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            action()
            spent.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def cat(path: Path) -> None:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


def http_get(url: str, digest: bool = False) -> tuple[int, str]:
    """GET with a raw socket and a 1 MiB buffer; return body bytes (headers included) and sha."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    with socket.create_connection((parts.hostname or "", parts.port or 80)) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        buffer, received, hasher, head = bytearray(1 << 20), 0, hashlib.sha256(), b""
        view = memoryview(buffer)
        while count := sock.recv_into(buffer):
            received += count
            if digest:
                if b"\r\n\r\n" not in head:
                    head += bytes(view[:count])
                    if b"\r\n\r\n" in head:
                        hasher.update(head.split(b"\r\n\r\n", 1)[1])
                else:
                    hasher.update(view[:count])
    return received, hasher.hexdigest()


def library_client(root: str, url: str, results: multiprocessing.Queue[str]) -> None:
    with ArtifactCache(Path(root)) as cache:
        with cache.fetch(url).open("rb") as stream:
            results.put(hashlib.file_digest(stream, "sha256").hexdigest())


def http_client(url: str, results: multiprocessing.Queue[str]) -> None:
    results.put(http_get(url, digest=True)[1])


def run_clients(count: int, target: Callable[..., None], *args: object) -> tuple[float, list[str]]:
    """Run `count` processes at once; return the wall time and the digests they report."""
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [context.Process(target=target, args=(*args, results)) for _ in range(count)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    digests = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, digests


def start_server(root: Path) -> tuple[subprocess.Popen[str], str]:
    """Start `lkft cache serve`; return the process and its URL prefix."""
    command = [sys.executable, "-m", "pytest_lkft.cli", "cache", "serve", "--cache-dir",
               str(root), "--bind", "127.0.0.1:0", "--allow", "127.0.0.1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().split(" on ")[1].strip()


BARE_SERVER = """
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    connection, _ = listener.accept()
    with connection, open(sys.argv[1], "rb") as stream:
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\\r\\nConnection: close\\r\\n\\r\\n")
        connection.sendfile(stream)
"""


def sendfile_server(path: Path) -> tuple[subprocess.Popen[str], str]:
    """A bare loopback server process answering every connection with the file (sendfile)."""
    process = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(path)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}/file"


def report(name: str, value: float, ok: bool | None) -> bool:
    """Print one figure with its verdict (None: for information only)."""
    verdict = "info" if ok is None else "ok" if ok else "MISSED"
    print(f"  {name:<60} {value:6.2f}x  {verdict}")
    return ok is not False


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        work = Path(tmp)
        (work / "origin").mkdir()
        origin = Origin(work / "origin")
        (work / "origin" / "artifact").write_bytes(os.urandom(size))
        expected = hashlib.sha256((work / "origin" / "artifact").read_bytes()).hexdigest()
        server, prefix = start_server(work / "server")
        try:
            return measure(args.clients, size, expected, work, origin, prefix)
        finally:
            server.terminate()
            server.wait()
            origin.stop()


def measure(clients: int, size: int, expected: str, work: Path, origin: Origin,
            prefix: str) -> int:
    """Measure everything the module docstring lists."""
    ok = True
    print(f"artifact: {size / 1e6:.0f} MB, {clients} concurrent clients, {os.cpu_count()} cpus")
    url = origin.url("artifact")
    seconds, digests = run_clients(clients, library_client, str(work / "lib"), url)
    upstream = origin.stats()["total_bytes"]
    ok &= report(f"library, {clients} processes: upstream copies ({seconds:.1f} s)",
                 upstream / size, upstream == size and digests == [expected] * clients)
    proxied = prefix % urllib.parse.quote(origin.url("artifact", "plain"), safe="")
    seconds, digests = run_clients(clients, http_client, proxied)
    upstream = origin.stats()["total_bytes"] - upstream
    ok &= report(f"lkft cache serve, {clients} HTTP clients: upstream copies ({seconds:.1f} s)",
                 upstream / size, upstream == size and digests == [expected] * clients)
    cache = ArtifactCache(work / "lib")
    path = cache.fetch(url)
    cat_time, hit_time = compare(RUNS, lambda: cat(path), lambda: cat(cache.fetch(url)))
    bare_server, bare = sendfile_server(path)
    try:
        bare_time, http_time = compare(RUNS, lambda: http_get(bare), lambda: http_get(proxied))
    finally:
        bare_server.terminate()
        bare_server.wait()
    print(f"  cat: {size / cat_time / 1e9:.2f} GB/s, library hit: {size / hit_time / 1e9:.2f} "
          f"GB/s, HTTP hit: {size / http_time / 1e9:.2f} GB/s, bare loopback sendfile: "
          f"{size / bare_time / 1e9:.2f} GB/s")
    ok &= report("library hit (fetch + cat of the path) / cat", cat_time / hit_time,
                 cat_time / hit_time >= TARGET)
    report("HTTP hit through lkft cache serve / cat (loopback TCP)", cat_time / http_time, None)
    ok &= report("HTTP hit through lkft cache serve / bare loopback sendfile",
                 bare_time / http_time, bare_time / http_time >= TARGET)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
