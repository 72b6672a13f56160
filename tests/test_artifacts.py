"""ArtifactCache against a real, misbehaving origin server running as a subprocess."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from origin_server import Origin

from pytest_lkft.artifacts.cache import (
    ArtifactCache,
    ChecksumError,
    Entry,
    Progress,
    StaleArtifactWarning,
    default_cache_dir,
)
from pytest_lkft.errors import DownloadError, UserError

SIZE = 300_000
# Plugins that cannot run twice in one process (labgrid's StepLogger) or only add noise.
INLINE = ("-p", "no:labgrid", "-p", "no:benchmark")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("LKFT_CACHE_DIR", raising=False)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    """A test origin server process serving tmp_path/origin."""
    (tmp_path / "origin").mkdir()
    server = Origin(tmp_path / "origin")
    yield server
    server.stop()


@pytest.fixture
def blob(origin: Origin) -> bytes:
    """A 300 kB file on the origin, named blob."""
    return origin.add("blob", os.urandom(SIZE))


def new_cache(tmp_path: Path, **kwargs: object) -> ArtifactCache:
    """A cache in tmp_path/cache with quick retries."""
    return ArtifactCache(tmp_path / "cache", backoff=0.1, **kwargs)  # type: ignore[arg-type]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_in_process(root: str, url: str, results: multiprocessing.Queue[str]) -> None:
    """Fetch in a child process and report the sha256 of the file it got."""
    with ArtifactCache(Path(root)) as cache:
        results.put(sha(cache.fetch(url).read_bytes()))


def test_local_paths_come_back_as_they_are(tmp_path: Path) -> None:
    cache = new_cache(tmp_path)
    local = tmp_path / "vmlinux"
    local.write_bytes(b"kernel")
    assert cache.fetch(str(local)) == local
    assert cache.fetch(local.as_uri()) == local
    with pytest.raises(UserError, match=r"^no such file: .*/missing$"):
        cache.fetch(str(tmp_path / "missing"))


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "lkft"
    monkeypatch.setenv("XDG_CACHE_HOME", "/x")
    assert default_cache_dir() == Path("/x/lkft")
    monkeypatch.setenv("LKFT_CACHE_DIR", "/y")
    assert default_cache_dir() == Path("/y")


def test_fetch_then_hit(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    cache = new_cache(tmp_path)
    url = origin.url("blob")
    path = cache.fetch(url, sha(blob))
    assert path.read_bytes() == blob
    assert cache.fetch(url) == path
    meta = json.loads((path.parent / "meta.json").read_text())
    assert {k: meta[k] for k in ("url", "size", "sha256")} == {
        "url": url, "size": SIZE, "sha256": sha(blob)
    }
    assert meta["etag"] and meta["last_modified"] and meta["last_use"]
    assert origin.stats()["requests"] == {"/plain/blob": 1}
    assert cache.stats() == {
        "upstream_bytes": SIZE, "served_bytes": 2 * SIZE, "hits": 1, "misses": 1
    }
    assert new_cache(tmp_path).stats()["served_bytes"] == 2 * SIZE  # persisted


@pytest.mark.parametrize(("modes", "statuses"), [
    ("slow16", [200]),                 # about 1.2 s, so that all 16 overlap
    ("cut700000,slow16", [200, 206]),  # the body is cut once: one Range resume
])
def test_sixteen_processes_download_once(
    tmp_path: Path, origin: Origin, modes: str, statuses: list[int]
) -> None:
    data = origin.add("big", os.urandom(2_000_000))
    url = origin.url("big", modes)
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [
        context.Process(target=fetch_in_process, args=(str(tmp_path / "cache"), url, results))
        for _ in range(16)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 16
    assert sorted(results.get() for _ in range(16)) == [sha(data)] * 16
    stats = origin.stats()
    assert stats["statuses"] == {f"/{modes}/big": statuses}
    assert stats["total_bytes"] == len(data)
    counters = new_cache(tmp_path).stats()
    assert (counters["misses"], counters["hits"], counters["upstream_bytes"]) == (1, 15, len(data))


def test_corrupt_entry_is_fetched_again(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    url = origin.url("blob")
    path = new_cache(tmp_path).fetch(url)
    with path.open("r+b") as stream:  # flip one byte, mtime changes
        stream.seek(1000)
        stream.write(bytes([blob[1000] ^ 1]))
    assert new_cache(tmp_path).fetch(url).read_bytes() == blob
    truncated = new_cache(tmp_path).fetch(url)
    os.truncate(truncated, 100)
    assert new_cache(tmp_path).fetch(url).read_bytes() == blob
    assert origin.stats()["requests"]["/plain/blob"] == 3


def test_silent_corruption_is_caught_by_sha256(
    tmp_path: Path, origin: Origin, blob: bytes
) -> None:
    url = origin.url("blob")
    path = new_cache(tmp_path).fetch(url)
    stat = path.stat()
    path.write_bytes(bytes(SIZE))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot keeps the mtime
    assert new_cache(tmp_path).fetch(url, sha(blob)).read_bytes() == blob
    assert origin.stats()["requests"]["/plain/blob"] == 2


def test_wrong_sha256_caches_nothing(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    cache = new_cache(tmp_path)
    message = r"^cannot fetch http://\S+: its sha256 is \w+, not 0+;"
    with pytest.raises(ChecksumError, match=message):
        cache.fetch(origin.url("blob"), "0" * 64)
    with pytest.raises(DownloadError, match="check the checksum"):
        cache.fetch(origin.url("blob", "wrong"), sha(blob))
    entries = list((tmp_path / "cache" / "entries").glob("*/data*"))
    assert entries == []


def test_503_with_retry_after_is_retried(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    started = time.monotonic()
    path = new_cache(tmp_path).fetch(origin.url("blob", "503x2"))  # backoff is 0.1 s
    assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice
    assert path.read_bytes() == blob
    assert origin.stats()["statuses"]["/503x2/blob"] == [503, 503, 200]


def test_retries_give_up_with_one_line(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    cache = new_cache(tmp_path, retries=1)
    with pytest.raises(DownloadError) as error:
        cache.fetch(origin.url("blob", "503x9"))
    assert str(error.value).startswith(f"cannot fetch {origin.url('blob', '503x9')}: HTTP 503")
    assert "\n" not in str(error.value)
    with pytest.raises(DownloadError, match="HTTP 404"):
        cache.fetch(origin.url("missing"))


def test_connection_refused(tmp_path: Path) -> None:
    message = (
        "cannot fetch http://127.0.0.1:9/x: connection refused; check the URL or pass a local file"
    )
    with pytest.raises(DownloadError, match=f"^{message}$"):
        new_cache(tmp_path, retries=0).fetch("http://127.0.0.1:9/x")


def test_cut_body_resumes_with_range(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    cache = new_cache(tmp_path)
    assert cache.fetch(origin.url("blob", "cut100000"), sha(blob)).read_bytes() == blob
    stats = origin.stats()
    assert stats["statuses"]["/cut100000/blob"] == [200, 206]
    assert stats["total_bytes"] == SIZE
    assert cache.stats()["upstream_bytes"] == SIZE


def test_ignored_range_restarts_cleanly(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    cache = new_cache(tmp_path)
    path = cache.fetch(origin.url("blob", "cut100000,norange"), sha(blob))
    assert path.read_bytes() == blob
    assert origin.stats()["statuses"]["/cut100000,norange/blob"] == [200, 200]
    assert cache.stats()["upstream_bytes"] == 100_000 + SIZE


def test_revalidation_and_origin_down(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    url = origin.url("blob")
    cache = new_cache(tmp_path, max_age=0, retries=0)
    path = cache.fetch(url)
    assert cache.fetch(url) == path
    assert origin.stats()["statuses"]["/plain/blob"] == [200, 304]
    origin.add("blob", b"new content")
    assert cache.fetch(url).read_bytes() == b"new content"
    origin.stop()
    with pytest.warns(StaleArtifactWarning, match=f"cannot revalidate {url}, using the copy"):
        assert cache.fetch(url).read_bytes() == b"new content"


def test_eviction_keeps_entries_in_use(tmp_path: Path, origin: Origin) -> None:
    for i in range(4):
        origin.add(f"f{i}", os.urandom(SIZE))
    urls = [origin.url(f"f{i}") for i in range(4)]
    with new_cache(tmp_path) as first:
        first.fetch(urls[0])
    user = new_cache(tmp_path)
    user.fetch(urls[1])  # still in use: user is not closed
    with new_cache(tmp_path, max_size=2 * SIZE + 1000) as cache:
        cache.fetch(urls[2])
        cache.fetch(urls[3])
        kept = sorted(entry.url for entry, _ in cache.entries())
    assert kept == sorted(urls[1:])  # f0 was least recently used; f1 is in use
    user.close()
    assert new_cache(tmp_path).evict(SIZE) == [urls[1], urls[2]]


def test_lab_cache_down_falls_back_to_origin(
    tmp_path: Path, origin: Origin, blob: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = new_cache(tmp_path, cache_url="http://127.0.0.1:9/api/v1/fetch/?url=%s")
    assert cache.fetch(origin.url("blob")).read_bytes() == blob
    assert "lab cache failed" in caplog.text
    with pytest.raises(UserError, match="has no %s"):
        new_cache(tmp_path, cache_url="http://127.0.0.1:9/")


def test_progress_is_reported_for_slow_downloads(tmp_path: Path, origin: Origin) -> None:
    data = origin.add("big", os.urandom(1_000_000))
    reports: list[Progress] = []
    url = origin.url("big", "slow8")  # about 1.2 s
    new_cache(tmp_path, progress=reports.append).fetch(url)
    assert reports and reports[-1].finished and reports[-1].done == len(data)
    assert reports[-1].format().startswith(f"fetched {url}: 1.0 MB of 1.0 MB at ")


def test_progress_while_another_downloads(tmp_path: Path, origin: Origin) -> None:
    origin.add("big", os.urandom(1_500_000))
    url = origin.url("big", "slow8")  # about 1.8 s
    downloader = threading.Thread(target=new_cache(tmp_path).fetch, args=(url,))
    downloader.start()
    time.sleep(0.2)
    reports: list[Progress] = []
    new_cache(tmp_path, progress=reports.append).fetch(url)
    downloader.join()
    assert reports and reports[-1].total == 1_500_000 and not reports[-1].finished
    assert origin.stats()["requests"] == {"/slow8/big": 1}


def test_part_left_by_a_crash_is_resumed(tmp_path: Path, origin: Origin, blob: bytes) -> None:
    url = origin.url("blob")
    cache = new_cache(tmp_path)
    entry = Entry.for_url(cache.root, url)
    with warnings.catch_warnings():
        cache.fetch(url)
    etag = json.loads(entry.meta_path.read_text())["etag"]
    entry.remove()
    entry.part.write_bytes(blob[:1000])
    entry.part_meta_path.write_text(json.dumps({"url": url, "total": SIZE, "etag": etag}))
    assert new_cache(tmp_path).fetch(url, sha(blob)).read_bytes() == blob
    assert origin.stats()["statuses"]["/plain/blob"] == [200, 206]


PLUGIN_CONFTEST = """
import pytest
from pytest_lkft.pytestplugin.cache import (add_options, cache_from_config, lkft_artifact,
                                           summary_line)

def pytest_addoption(parser):
    add_options(parser.getgroup("lkft", "Linux kernel functional testing"))

def pytest_configure(config):
    cache_from_config(config)

def pytest_terminal_summary(terminalreporter, config):
    terminalreporter.write_line(summary_line(cache_from_config(config)))
"""


def test_fixture_options_and_summary(
    pytester: pytest.Pytester, origin: Origin, blob: bytes, tmp_path: Path
) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(f"""
        def test_one(lkft_artifact):
            assert lkft_artifact("{origin.url("blob")}").stat().st_size == {SIZE}

        def test_two(lkft_artifact):
            assert lkft_artifact("{origin.url("blob")}", "{sha(blob)}").exists()
    """)
    cache_dir = tmp_path / "fixture-cache"
    result = pytester.runpytest(*INLINE, "-p", "no:lkft", f"--lkft-cache-dir={cache_dir}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["lkft cache: 0.3 MB fetched upstream, 0.6 MB served"])
    assert len(list(cache_dir.glob("entries/*/data"))) == 1
    result = pytester.runpytest(*INLINE, "-p", "no:lkft", "--lkft-cache-max-size=lots")
    result.stderr.fnmatch_lines(["*invalid cache size 'lots' from --lkft-cache-max-size*"])


def test_through_the_installed_plugin(
    pytester: pytest.Pytester, origin: Origin, blob: bytes, tmp_path: Path
) -> None:
    pytester.makepyfile(f"""
        def test_fetch(lkft_artifact):
            assert lkft_artifact("{origin.url("blob")}", "{sha(blob)}").stat().st_size == {SIZE}
    """)
    cache_dir = tmp_path / "plugin-cache"
    pytester.runpytest(*INLINE, f"--lkft-cache-dir={cache_dir}").assert_outcomes(passed=1)
    assert len(list(cache_dir.glob("entries/*/data"))) == 1
    result = pytester.runpytest(*INLINE, "--lkft-cache-url=http://nowhere/")
    result.stderr.fnmatch_lines(["*has no %s*(from --lkft-cache-url)"])


def test_xdist_workers_download_once(
    pytester: pytest.Pytester, origin: Origin, tmp_path: Path
) -> None:
    data = origin.add("big", os.urandom(1_000_000))
    url = origin.url("big", "slow16")
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_fetch(lkft_artifact, n):
            assert lkft_artifact("{url}", "{sha(data)}").stat().st_size == {len(data)}
    """)
    cache_dir = tmp_path / "xdist-cache"
    result = pytester.runpytest(*INLINE, "-n", "2", f"--lkft-cache-dir={cache_dir}")
    result.assert_outcomes(passed=4)
    assert origin.stats()["requests"] == {"/slow16/big": 1}
