"""`lkft serve`: SQUAD's submit endpoint over the store, and its pages in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pytest_lkft.parsers.model import Case, Metric, Result
from pytest_lkft.reporting.squad import SquadClient, SubmitError, submission_from
from pytest_lkft.reporting.store import Change, RunRecord, Store, join_logs

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
    assert ("qemu-arm64: <a href='../../test/?name=ltp-syscalls/abort01'>ltp-syscalls/abort01"
            "</a> (pass &rarr; fail)") in build
    assert "tst_test.c:1: TFAIL: abort" in build
    missing = requests.get(url + "/lkft/linux/build/v9/", timeout=30)
    assert missing.status_code == 404 and "no build 'v9'" in missing.text
    unknown = requests.get(url + "/lkft/linux/test/?name=ltp-syscalls/nope", timeout=30)
    assert unknown.status_code == 404 and "no test 'ltp-syscalls/nope'" in unknown.text


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (Debian package `chromium`); page rendering "
                    "not checked")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def dashboard_runs(url: str, tmp_path: Path) -> None:
    """Three builds on two devices as the plugin sends them: console logs per suite."""
    for number, (build, abort01) in enumerate((("v1", Result.PASS), ("v2", Result.FAIL),
                                                ("v3", Result.FAIL)), 1):
        for device in ("qemu-arm64", "qemu-x86_64"):
            run = run_of(build, abort01, f"job-{build}-{device}")
            run.environment = device
            run.metadata = {"kernel_version": f"6.1.{number}", "rootfs": "busybox:1.35",
                            "qemu_version": "7.2.19", "toolchain": "gcc-12", "arch": device[5:]}
            run.cases.append(Case("boot", "boot", Result.PASS))
            run.duration = 61.5
            if build != "v3":
                run.cases.append(Case("ltp-syscalls", "gone01", Result.PASS))
            logs = []
            for suite in ("boot", "ltp-syscalls"):
                log = tmp_path / build / device / suite / "console.log"
                log.parent.mkdir(parents=True)
                log.write_text(f"{suite} console of {device} {build}\nlogin:\n")
                logs.append(str(log))
            run.log = join_logs((s, Path(p).read_text()) for s, p in
                                zip(("boot", "ltp-syscalls"), logs, strict=True))
            with Store(tmp_path / "dash.sqlite3") as store:
                store.record(run)


def test_pages_render_in_chromium(tmp_path: Path) -> None:
    dashboard_runs("", tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_lkft.cli", "serve", "--store",
         str(tmp_path / "dash.sqlite3"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().split(" on ")[1].strip().rstrip("/")
    try:
        dom = chromium(tmp_path, "--dump-dom", url + "/lkft/linux/").stdout
        assert dom.count('<tr class="build">') == 3
        row = dom[dom.index('<a href="build/v2/">v2</a>'):].split("</tr>")[0]
        assert re.findall(r"<td[^>]*>([^<]*)</td>", row)[1:] == [
            "2", "10", "0", "6", "2", "2", "2m 03s"]  # envs, tests, xfail, pass, skip, fail
        dom = chromium(tmp_path, "--dump-dom", url + "/lkft/linux/build/v3/").stdout
        assert '<ul id="regressions"></ul>' in dom  # v2 -> v3: abort01 stayed failing
        assert "<h3>Missing tests (2)</h3>" in dom and "ltp-syscalls/gone01</a></li>" in dom
        assert '<th>kernel_version</th><td>6.1.3</td>' in dom
        assert '<th>qemu_version</th><td>7.2.19</td>' in dom
        matrix = dom[dom.index('<table id="matrix">'):].split("</table>")[0]
        assert "<th>qemu-arm64</th><th>qemu-x86_64</th>" in matrix
        assert matrix.count('<td class="fail"><span class="pass">pass 1</span> <span '
                            'class="fail">fail 1</span> <span class="skip">skip 1</span>') == 2
        log = re.search(r'href="(log/\d+/ltp-syscalls/)"', matrix)
        assert log is not None
        text = requests.get(f"{url}/lkft/linux/build/v3/{log[1]}", timeout=30).text
        assert text == "ltp-syscalls console of qemu-arm64 v3\nlogin:\n"
        dom = chromium(tmp_path, "--dump-dom",
                       url + "/lkft/linux/test/?name=ltp-syscalls/abort01").stdout
        assert 'First failed in <a href="../build/v2/">v2</a>' in dom
        history = dom[dom.index('<table id="history">'):].split("</table>")[0]
        assert history.count('<td class="fail">fail</td>') == 4
        assert history.count('<td class="pass">pass</td>') == 2
        for name, path in (("project", "/lkft/linux/"), ("build", "/lkft/linux/build/v3/"),
                           ("test", "/lkft/linux/test/?name=ltp-syscalls/abort01")):
            shot = tmp_path / f"{name}.png"
            chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", url + path)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
            if os.environ.get("LKFT_SCREENSHOTS"):  # to look at them
                shutil.copyfile(shot, Path(os.environ["LKFT_SCREENSHOTS"]) / shot.name)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_content_length_is_a_400(served: tuple[str, Path]) -> None:
    import socket

    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/submit/lkft/linux/v1/qemu-arm64 HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Token " + TOKEN.encode() + b"\r\nContent-Length: ten\r\n\r\n")
        answer = sock.makefile("rb").read().decode()
    assert answer.startswith("HTTP/1.0 400 ")
    assert "bad Content-Length 'ten'; send the body's size in bytes" in answer


def test_api_pages_tests_by_cursor_and_builds_by_offset(served: tuple[str, Path]) -> None:
    url, _ = served
    cases = {f"ltp-many/t{i:03d}": "pass" if i % 7 else "fail" for i in range(120)}
    for build in ("v1", "v2", "v3"):
        response = requests.post(f"{url}/api/submit/lkft/linux/{build}/qemu-arm64",
                                 files={"tests": ("t.json", json.dumps(cases).encode())},
                                 headers={"Authorization": f"TOKEN {TOKEN}"}, timeout=30)
        assert response.status_code == 201, response.text
    builds = requests.get(f"{url}/api/builds/", params={"limit": 2}, timeout=30).json()
    assert builds["count"] == 3 and [b["version"] for b in builds["results"]] == ["v3", "v2"]
    assert builds["next"] == f"{url}/api/builds/?limit=2&offset=2"
    last = requests.get(builds["next"], timeout=30).json()
    assert [b["version"] for b in last["results"]] == ["v1"] and last["next"] is None
    assert last["previous"] == f"{url}/api/builds/?limit=2"
    page: dict[str, object] = requests.get(
        f"{url}/api/builds/{builds['results'][0]['id']}/tests/", params={"limit": 50},
        timeout=30).json()
    seen: list[int] = []
    pages = 0
    while True:
        pages += 1
        seen += [int(t["id"]) for t in page["results"]]  # type: ignore[attr-defined]
        if not page["next"]:
            break
        page = requests.get(str(page["next"]), timeout=30).json()
    assert pages == 3 and len(set(seen)) == 120 and seen == sorted(seen, reverse=True)
    back = requests.get(str(page["previous"]), timeout=30).json()
    assert [t["id"] for t in back["results"]] == seen[50:100]
    failing = requests.get(f"{url}/api/tests/", params={"build__version": "v3", "result": "false",
                                                        "limit": 1000}, timeout=30).json()
    assert len(failing["results"]) == 18
    status = requests.get(f"{url}/api/builds/{builds['results'][0]['id']}/status/",
                          timeout=30).json()
    assert (status["tests_pass"], status["tests_fail"], status["regressions"]) == (102, 18, None)


def test_private_project_is_hidden_without_the_token(served: tuple[str, Path]) -> None:
    url, store_path = served
    submit_two_builds(url)
    with Store(store_path) as store:
        store.db.execute("UPDATE project SET is_public = 0")
    anonymous = requests.get(f"{url}/api/builds/", timeout=30).json()
    assert anonymous["count"] == 0
    assert requests.get(f"{url}/api/builds/1/", timeout=30).status_code == 404
    token = {"Authorization": f"token {TOKEN}"}
    assert requests.get(f"{url}/api/builds/", headers=token, timeout=30).json()["count"] == 2
    assert requests.get(f"{url}/lkft/linux/", timeout=30).status_code == 404
