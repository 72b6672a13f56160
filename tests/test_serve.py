"""`lkft serve`: SQUAD's submit endpoint over the store, and its pages in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pytest_lkft.parsers.model import Case, Metric, Result
from pytest_lkft.reporting.squad import SquadClient, SubmitError, submission_from
from pytest_lkft.reporting.store import Change, RunRecord, Store

TOKEN = "serve-test-token"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HOME and the caches inside the test's tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LKFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LKFT_SQUAD_TOKEN", TOKEN)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`lkft serve` on 127.0.0.1, any port; yields its URL and store, stopped by PID."""
    store = tmp_path / "served.sqlite3"
    env = {**os.environ, "LKFT_SQUAD_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_lkft.cli", "serve", "--store", str(store), "--port", "0"],
        stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith(f"serving {store} on http://127.0.0.1:"), line
    try:
        yield line.split(" on ")[1].strip().rstrip("/"), store
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_of(build: str, abort01: Result, job_id: str) -> RunRecord:
    """A qemu-arm64 run of lkft/linux with abort01's result chosen."""
    cases = [Case("ltp-syscalls", "abort01", abort01, log=["tst_test.c:1: TFAIL: abort"]),
             Case("ltp-syscalls", "brk01", Result.PASS), Case("ltp-syscalls", "dup01", Result.SKIP)]
    return RunRecord("lkft", "linux", build, "qemu-arm64", cases,
                     metrics={"boot/boot-time": Metric(2.5, "s")},
                     metadata={"kernel": "6.1.1"}, job_id=job_id)


def submit_two_builds(url: str) -> None:
    """v1 all passing, v2 with abort01 failing, through our SQUAD client."""
    client = SquadClient(url, delays=())
    assert client.submit(submission_from(run_of("v1", Result.PASS, "job-1"))) == "submitted"
    assert client.submit(submission_from(run_of("v2", Result.FAIL, "job-2"))) == "submitted"


def test_submit_endpoint_stores_like_squad(served: tuple[str, Path]) -> None:
    url, store_path = served
    submit_two_builds(url)
    again = SquadClient(url, delays=()).submit(submission_from(run_of("v2", Result.FAIL, "job-2")))
    assert again == "already submitted"
    with Store(store_path) as store:
        assert store.compare("lkft", "linux", "v1", "v2").regressions == [
            Change("qemu-arm64", "ltp-syscalls/abort01", "pass", "fail")]
        assert store.counts("lkft", "linux", "v2").skipped == 1
        assert list(store.metrics("lkft", "linux", "v1").values()) == [Metric(2.5, "s")]


def test_submit_plain_fields_as_curl_does(served: tuple[str, Path]) -> None:
    url, store_path = served
    fields = {"tests": json.dumps({"kunit/list_test": "pass", "kunit/bad": "fail"}),
              "metrics": json.dumps({"kunit/time": [1.0, 3.0]}), "job_id": "curl-1"}
    response = requests.post(f"{url}/api/submit/lkft/linux/v3/qemu-x86_64",
                             files={k: (None, v) for k, v in fields.items()},
                             headers={"Auth-Token": TOKEN}, timeout=30)
    assert response.status_code == 201, response.text
    with Store(store_path) as store:
        assert store.counts("lkft", "linux", "v3").failed == 1
        assert list(store.metrics("lkft", "linux", "v3").values()) == [Metric(2.0, "")]


def test_submit_urlencoded_as_curl_data_does(served: tuple[str, Path]) -> None:
    url, store_path = served
    response = requests.post(f"{url}/api/submit/lkft/linux/v4/qemu-arm64", timeout=30,
                             data={"tests": json.dumps({"boot/boot": "pass"}), "job_id": "d-1"},
                             headers={"Authorization": f"Token {TOKEN}"})
    assert response.status_code == 201, response.text
    with Store(store_path) as store:
        assert store.counts("lkft", "linux", "v4").passed == 1
        assert store.has_job("d-1")


def test_submit_refusals_say_why(served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = served
    monkeypatch.setenv("LKFT_SQUAD_TOKEN", "wrong")
    with pytest.raises(SubmitError, match="answered 401: missing or wrong token"):
        SquadClient(url, delays=()).submit(submission_from(run_of("v1", Result.PASS, "j")))
    bad = requests.post(f"{url}/api/submit/lkft/linux/v1/qemu arm64", timeout=30)
    assert bad.status_code == 404 and "submit to /api/submit/G/P/BUILD/ENV" in bad.text


def test_pages_over_http(served: tuple[str, Path]) -> None:
    url, _ = served
    submit_two_builds(url)
    index = requests.get(url + "/", timeout=30).text
    assert "<a href='/lkft/linux/'>lkft/linux</a>" in index
    project = requests.get(url + "/lkft/linux/", timeout=30).text
    assert "<a href='build/v2/'>v2</a>" in project
    build = requests.get(url + "/lkft/linux/build/v2/", timeout=30).text
    assert "qemu-arm64: ltp-syscalls/abort01 (pass &rarr; fail)" in build
    assert "tst_test.c:1: TFAIL: abort" in build
    missing = requests.get(url + "/lkft/linux/build/v9/", timeout=30)
    assert missing.status_code == 404 and "no build 'v9'" in missing.text


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (Debian package `chromium`); page rendering "
                    "not checked")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_pages_render_in_chromium(served: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = served
    submit_two_builds(url)
    dom = chromium(tmp_path, "--dump-dom", url + "/lkft/linux/").stdout
    assert dom.count('<tr class="build">') == 2
    assert '<td><a href="build/v2/">v2</a></td>' in dom
    assert "<td>3</td><td>1</td><td>1</td><td>1</td><td>0</td>" in dom  # v2: tests..xfail
    dom = chromium(tmp_path, "--dump-dom", url + "/lkft/linux/build/v2/").stdout
    regression = "<li>qemu-arm64: ltp-syscalls/abort01 (pass → fail)</li>"
    assert f'<ul id="regressions">{regression}</ul>' in dom
    assert '<details class="failure" open="">' in dom and "TFAIL: abort" in dom
    shot = tmp_path / "build.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1024,768", url + "/lkft/linux/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
