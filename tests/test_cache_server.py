"""`lkft cache serve` as a real subprocess between clients and a misbehaving origin."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from origin_server import Origin

from pytest_lkft import cli
from pytest_lkft.artifacts.cache import ArtifactCache
from pytest_lkft.artifacts.server import HostPolicy, parse_range
from pytest_lkft.errors import UserError


class Server:
    """`lkft cache serve` in a subprocess; `prefix` is its KissCache URL prefix."""

    def __init__(self, root: Path, *allow: str) -> None:
        command = [sys.executable, "-m", "pytest_lkft.cli", "cache", "serve",
                   "--cache-dir", str(root), "--bind", "127.0.0.1:0"]
        command += [f"--allow={host}" for host in allow]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                        stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.prefix = line.split(" on ")[1].strip()
        self.base = self.prefix.split("/api/")[0]

    def url(self, upstream: str) -> str:
        return self.prefix % urllib.parse.quote(upstream, safe="")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    (tmp_path / "origin").mkdir()
    server = Origin(tmp_path / "origin")
    yield server
    server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "server", "127.0.0.1")
    yield running
    running.stop()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_through(root: str, prefix: str, url: str, results: multiprocessing.Queue[str]) -> None:
    """A client process with its own cache that goes through the lab cache."""
    with ArtifactCache(Path(root), cache_url=prefix) as cache:
        results.put(sha(cache.fetch(url).read_bytes()))


def test_sixteen_processes_through_the_server(
    tmp_path: Path, origin: Origin, server: Server
) -> None:
    data = origin.add("big", os.urandom(2_000_000))
    url = origin.url("big", "slow16")
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [
        context.Process(target=fetch_through,
                        args=(str(tmp_path / f"client{i}"), server.prefix, url, results))
        for i in range(16)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 16
    assert sorted(results.get() for _ in range(16)) == [sha(data)] * 16
    assert origin.stats()["requests"] == {"/slow16/big": 1}
    assert origin.stats()["total_bytes"] == len(data)
    deadline = time.monotonic() + 10  # the handlers count after the last byte is sent
    while time.monotonic() < deadline:
        status = requests.get(f"{server.base}/api/v1/status/", timeout=10).json()
        if status["served_bytes"] >= 16 * len(data):
            break
        time.sleep(0.1)
    assert (status["upstream_bytes"], status["served_bytes"]) == (len(data), 16 * len(data))


def test_streams_while_downloading_and_resumes_a_cut_body(
    origin: Origin, server: Server
) -> None:
    data = origin.add("big", os.urandom(1_000_000))
    url = server.url(origin.url("big", "cut300000,slow16"))
    head = requests.head(url, timeout=30)  # LAVA asks for the size first
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(data)))
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: requests.get(url, timeout=30).content, range(4)))
    assert [sha(body) for body in bodies] == [sha(data)] * 4
    assert origin.stats()["statuses"]["/cut300000,slow16/big"] == [200, 206]
    assert origin.stats()["total_bytes"] == len(data)


def test_streams_through_a_restart_with_the_same_bytes(origin: Origin, server: Server) -> None:
    data = origin.add("big", os.urandom(1_000_000))
    url = server.url(origin.url("big", "cut300000,norange,slow16"))
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: requests.get(url, timeout=30).content, range(4)))
    assert [sha(body) for body in bodies] == [sha(data)] * 4
    assert origin.stats()["statuses"]["/cut300000,norange,slow16/big"] == [200, 200]


def test_streams_are_cut_when_a_restart_brings_other_bytes(
    origin: Origin, server: Server
) -> None:
    data = origin.add("big", os.urandom(1_000_000))
    url = server.url(origin.url("big", "cut300000,norange,flip,slow16"))

    def get(_: int) -> str:
        try:
            return sha(requests.get(url, timeout=30).content)
        except requests.exceptions.ChunkedEncodingError:
            return "cut"

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(get, range(4))) == ["cut"] * 4
    flipped = bytes(b ^ 0xFF for b in data)
    assert requests.get(url, timeout=30).content == flipped  # the new content, whole


def test_range_head_and_conditional_on_cached_files(origin: Origin, server: Server) -> None:
    data = origin.add("blob", os.urandom(100_000))
    url = server.url(origin.url("blob"))
    assert requests.get(url, timeout=10).content == data
    head = requests.head(url, timeout=10)
    assert (head.status_code, head.headers["Content-Length"]) == (200, "100000")
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert (part.status_code, part.content) == (206, data[10:20])
    assert part.headers["Content-Range"] == "bytes 10-19/100000"
    tail = requests.get(url, headers={"Range": "bytes=-5"}, timeout=10)
    assert tail.content == data[-5:]
    assert requests.get(url, headers={"Range": "bytes=200000-"}, timeout=10).status_code == 416
    etag = head.headers["ETag"]
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=10).status_code == 304
    named = server.url(origin.url("blob")).replace("/fetch/?", "/fetch/blob.bin?")
    assert requests.get(named, timeout=10).content == data
    lava = server.url(origin.url("blob")).replace("/fetch/?", "/fetch?")  # LAVA's docs form
    assert requests.get(lava, timeout=10).content == data
    assert origin.stats()["requests"] == {"/plain/blob": 1}


def test_errors_and_health(origin: Origin, server: Server) -> None:
    assert requests.get(f"{server.base}/api/v1/health/", timeout=10).text == "ok\n"
    missing = requests.get(server.url(origin.url("missing")), timeout=30)
    assert missing.status_code == 502
    assert missing.text.startswith(f"cannot fetch {origin.url('missing')}: HTTP 404")
    refused = requests.get(server.url(origin.url("x").replace("127.0.0.1", "localhost")),
                           timeout=10)
    assert refused.status_code == 403
    assert "start the server with --allow localhost" in refused.text
    assert requests.get(f"{server.base}/api/v1/fetch/", timeout=10).status_code == 400


def test_not_an_open_proxy() -> None:
    anything = HostPolicy(["*"])
    for url in ("http://127.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/latest",
                "http://0.0.0.0/x", "http://localhost/x"):
        with pytest.raises(UserError, match="loopback or link-local"):
            anything(url)
    with pytest.raises(UserError, match="only http"):
        anything("ftp://example.org/x")
    listed = HostPolicy(["*.example.org", "127.0.0.1"])
    listed("https://mirror.example.org/x")
    listed("http://127.0.0.1:8000/x")
    with pytest.raises(UserError, match="example.com is not allowed; start the server with"):
        listed("http://example.com/x")
    with pytest.raises(UserError, match="not allowed"):
        HostPolicy([])("http://example.org/x")


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=0-1000", 100) == (0, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None
    with pytest.raises(ValueError):
        parse_range("bytes=100-", 100)


def test_cli_fetch_stats_prune(
    tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    data = origin.add("blob", os.urandom(1000))
    root = str(tmp_path / "cli")
    assert cli.main(["cache", "fetch", "--cache-dir", root, origin.url("blob"),
                     "--sha256", sha(data)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.read_bytes() == data
    assert cli.main(["cache", "stats", "--cache-dir", root]) == 0
    assert "fetched upstream: 0.0 MB" in capsys.readouterr().out
    assert cli.main(["cache", "prune", "--cache-dir", root]) == 0
    assert capsys.readouterr().out.startswith(f"removed {origin.url('blob')}\n")
    assert not path.exists()
    assert cli.main(["cache", "fetch", "--cache-dir", root, str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"lkft cache: error: no such file: {tmp_path}/nope\n"
