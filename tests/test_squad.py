"""Submitting to SQUAD: a real SQUAD 1.98 server, the reporter, spooling and `lkft push`."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from squad_server import SquadServer
from test_reporter import ITEMS, WIRING, lkft_args

from pytest_lkft.cli import main
from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.reporting import squad
from pytest_lkft.reporting.squad import SquadClient, SubmitError, clean_name, submission_from
from pytest_lkft.reporting.store import RunRecord

pytest_plugins = ["pytester"]

GROUP, PROJECT = "lkft", "linux-6.1"
TOKEN_ENV = "LKFT_SQUAD_TOKEN"


@pytest.fixture(scope="session")
def token(squad_server: SquadServer) -> str:
    """A submit token for lkft/linux-6.1 (creates the group and project)."""
    return squad_server.token(f"{GROUP}/{PROJECT}")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep HOME and the caches inside the test's tmp_path; return the cache dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LKFT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("LKFT_STORE", "LKFT_SQUAD_URL", TOKEN_ENV, "CI_JOB_URL", "BUILD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(squad, "RETRY_DELAYS", (0.01, 0.01))
    return tmp_path / "cache"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """The reporter tests' LTP-like items, plus a console log they point at."""
    pytester.makeconftest(WIRING)
    items = ITEMS.replace(
        'record_property("lkft.metric.boot-time", "2.5 s")',
        'record_property("lkft.metric.boot-time", "2.5 s")\n'
        '    record_property("lkft.console_log", os.path.abspath("console.log"))',
    )
    pytester.makepyfile(test_ltp=items)
    pytester.makefile(".log", console="Booting Linux on physical CPU 0x0\nlogin:\n")
    return pytester


def squad_args(url: str, build: str, *more: str) -> list[str]:
    """pytest arguments that submit to SQUAD as lkft/linux-6.1 BUILD."""
    return lkft_args("--lkft-squad-url", url, "--lkft-squad-group", GROUP,
                     "--lkft-squad-project", PROJECT, "--lkft-squad-build", build, *more)


def build_id(server: SquadServer, version: str) -> int:
    """SQUAD's id for a build of lkft/linux-6.1."""
    builds = server.get_all("/api/builds/", version=version, project__slug=PROJECT)
    assert len(builds) == 1, builds
    return int(str(builds[0]["id"]))


def test_clean_name() -> None:
    assert clean_name("v6.1.99-rc1+") == "v6.1.99-rc1-"
    assert clean_name("qemu arm64/virt") == "qemu-arm64-virt"
    assert clean_name("_x") == "x"
    assert clean_name("///") == "unnamed"


def test_reporter_submits_and_squad_sees_regression(
    project: pytest.Pytester, squad_server: SquadServer, token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, token)
    monkeypatch.setenv("FAIL", "brk01")
    first = project.runpytest(*squad_args(squad_server.url, "v6.1.1", "--junitxml", "a.xml"))
    first.stdout.fnmatch_lines([f"squad: {GROUP}/{PROJECT}/v6.1.1/qemu-arm64 submitted to *"])
    squad_server.analyze()
    v1 = build_id(squad_server, "v6.1.1")
    tests = {t["name"]: t["status"] for t in squad_server.get_all(f"/api/builds/{v1}/tests/")}
    assert tests == {
        "ltp-syscalls/abort01": "pass", "ltp-syscalls/brk01": "fail",
        "ltp-syscalls/chdir01": "pass", "ltp-syscalls/dup01": "pass",
        "ltp-syscalls/ebadf01": "skip", "ltp-syscalls/fork01": "fail",
    }
    metrics = squad_server.get_all(f"/api/builds/{v1}/metrics/")
    assert [(m["name"], m["result"], m["unit"]) for m in metrics] == [
        ("ltp-syscalls/boot-time", 2.5, "s")]
    run = squad_server.get_all(f"/api/builds/{v1}/testruns/")[0]
    assert str(run["job_id"]).startswith("lkft-")
    assert [a["filename"] for a in run["attachments"]] == ["console.log"]  # type: ignore[attr-defined]
    metadata = squad_server.get(f"/api/testruns/{run['id']}/metadata_file/")
    assert metadata["kernel_version"] == "6.1.1" and metadata["device"] == "qemu-arm64"
    assert token not in first.stdout.str() + (project.path / "a.xml").read_text()
    assert token not in str(metadata)

    monkeypatch.setenv("FAIL", "abort01")
    project.runpytest(*squad_args(squad_server.url, "v6.1.2", "-n", "2")).stdout.fnmatch_lines(
        ["  REGRESSION qemu-arm64: ltp-syscalls/abort01 (pass -> fail)",
         f"squad: {GROUP}/{PROJECT}/v6.1.2/qemu-arm64 submitted to *"])
    v2 = build_id(squad_server, "v6.1.2")
    project_id = str(squad_server.get_all("/api/projects/", slug=PROJECT)[0]["id"])
    compared = squad_server.get(f"/api/projects/{project_id}/compare_builds/",
                                baseline=v1, to_compare=v2, force="true")
    assert compared["regressions"] == {"qemu-arm64": {"ltp-syscalls": ["abort01"]}}
    assert compared["fixes"] == {"qemu-arm64": {"ltp-syscalls": ["brk01"]}}


def test_unreachable_squad_spools_and_push_sends_once(
    project: pytest.Pytester, squad_server: SquadServer, token: str,
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(TOKEN_ENV, token)
    dead = f"http://127.0.0.1:{squad_server.port + 1}"  # nothing listens there
    monkeypatch.setattr(squad, "RETRY_DELAYS", (5.0, 5.0))  # a refusal must not wait for them
    started = time.monotonic()
    result = project.runpytest(*squad_args(dead, "v6.1.3"))
    assert time.monotonic() - started < 5
    result.stdout.fnmatch_lines([
        f"squad: {GROUP}/{PROJECT}/v6.1.3/qemu-arm64 NOT submitted ({dead} refused the"
        " connection);"
        f" spooled to {isolated_home}/squad-spool/lkft-*, send it later with `lkft push`"])
    spool = isolated_home / "squad-spool"
    (spooled,) = squad.spooled(spool)
    backup = shutil.copytree(spooled, isolated_home / "backup")

    assert main(["push", "--url", squad_server.url]) == 0
    assert "v6.1.3/qemu-arm64: submitted to" in capsys.readouterr().out
    assert squad.spooled(spool) == []
    shutil.copytree(backup, spooled)  # as if push died after SQUAD took it
    assert main(["push", "--url", squad_server.url]) == 0
    assert "v6.1.3/qemu-arm64: already submitted to" in capsys.readouterr().out
    assert len(squad_server.get_all(
        f"/api/builds/{build_id(squad_server, 'v6.1.3')}/testruns/")) == 1
    assert main(["push"]) == 0
    assert "nothing spooled in" in capsys.readouterr().out


class Flaky(BaseHTTPRequestHandler):
    """Answers 502 to the first `failures` POSTs, then 201."""

    failures = 2
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.headers.get("Authorization", ""))
        code = 502 if len(self.seen) <= self.failures else 201
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"1")

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def flaky_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that fails twice with 502, then accepts."""
    Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def record() -> RunRecord:
    """A one-case run with a job_id."""
    return RunRecord("lkft", "linux", "v1", "qemu-arm64",
                     [Case("boot", "boot", Result.PASS)], job_id="lkft-1")


def test_retries_5xx_with_backoff(flaky_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "secret-token")
    slept: list[float] = []
    client = SquadClient(flaky_server, delays=(1.0, 2.0, 4.0), sleep=slept.append)
    assert client.submit(submission_from(record())) == "submitted"
    assert Flaky.seen == ["Token secret-token"] * 3
    assert slept == [1.0, 2.5]


def test_gives_up_after_last_retry(flaky_server: str) -> None:
    client = SquadClient(flaky_server, delays=(0.0,), sleep=lambda _: None)
    with pytest.raises(SubmitError, match=r"answered 502"):
        client.submit(submission_from(record()))
    assert len(Flaky.seen) == 2


class Orphaned(BaseHTTPRequestHandler):
    """SQUAD after a 500 half way: the job_id is taken by a test run never processed."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(400, b"There is already a test run with job_id lkft-1")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        run = {"url": "http://squad/api/testruns/7/", "job_id": "lkft-1", "data_processed": False}
        self.reply(200, json.dumps({"results": [run]}).encode())

    def reply(self, code: int, body: bytes) -> None:
        """Send a complete response."""
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


def test_unprocessed_run_is_not_taken_as_submitted() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Orphaned)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        client = SquadClient(f"http://127.0.0.1:{server.server_address[1]}", delays=())
        with pytest.raises(SubmitError, match=r"unprocessed test run for job_id lkft-1 \(http"
                           r"://squad/api/testruns/7/\), maybe left by an earlier 500"):
            client.submit(submission_from(record()))
    finally:
        server.shutdown()
        server.server_close()


def test_every_suite_run_console_log_is_attached(tmp_path: Path) -> None:
    from pytest_lkft.reporting.squad import attachments

    logs = []
    for suite in ("boot", "smoke"):
        (tmp_path / suite).mkdir()
        log = tmp_path / suite / "console.log"
        log.write_text(f"{suite} console\n")
        logs.append(str(log))
    assert attachments(logs) == {"boot-console.log": logs[0], "smoke-console.log": logs[1]}
    assert attachments(logs[0]) == {"console.log": logs[0]}
    assert attachments([str(tmp_path / "missing.log")]) == {}


def test_known_issues_reach_squad_as_xfail(
    project: pytest.Pytester, squad_server: SquadServer, token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = squad_server.superuser_token("reporter-admin", "reporter-admin-token")
    monkeypatch.setenv(TOKEN_ENV, admin)
    monkeypatch.setenv("FAIL", "brk01")
    project.makefile(".yaml", issues='known_issues:\n  - test: "ltp-syscalls/brk*"\n'
                                     '    reason: "fails under TCG https://bugs.example.org/7"\n')
    result = project.runpytest(*squad_args(squad_server.url, "v6.1.9", "--lkft-known-issues",
                                           "issues.yaml"))
    result.stdout.fnmatch_lines([
        f"squad: 1 known issues pushed to {squad_server.url} for {GROUP}/{PROJECT}",
        f"squad: {GROUP}/{PROJECT}/v6.1.9/qemu-arm64 submitted to *"])
    tests = {t["name"]: t["status"] for t in squad_server.get_all(
        f"/api/builds/{build_id(squad_server, 'v6.1.9')}/tests/")}
    assert tests["ltp-syscalls/brk01"] == "xfail" and tests["ltp-syscalls/fork01"] == "fail"
    issue = squad_server.get_all("/api/knownissues/", test_name="ltp-syscalls/brk*")
    assert [(i["notes"], i["url"]) for i in issue] == [
        ("fails under TCG https://bugs.example.org/7", "https://bugs.example.org/7")]
    project.runpytest(*squad_args(squad_server.url, "v6.1.10", "--lkft-known-issues",
                                  "issues.yaml"))  # pushed again: updated, not duplicated
    assert len(squad_server.get_all("/api/knownissues/", test_name="ltp-syscalls/brk*")) == 1


def test_no_token_is_said_before_any_attempt(
    project: pytest.Pytester, squad_server: SquadServer, isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = project.runpytest(*squad_args(squad_server.url, "v6.1.11"))
    result.stdout.fnmatch_lines([
        f"lkft: store=* squad={squad_server.url} (LKFT_SQUAD_TOKEN is empty: runs will be"
        " spooled, not submitted) known-issues=0",
        f"squad: {GROUP}/{PROJECT}/v6.1.11/qemu-arm64 NOT submitted (LKFT_SQUAD_TOKEN is empty"
        " and SQUAD refuses submissions without a token); spooled to *"])
    assert squad_server.get_all("/api/builds/", version="v6.1.11") == []
    assert len(squad.spooled(isolated_home / "squad-spool")) == 1
    assert main(["push"]) != 0
    assert "LKFT_SQUAD_TOKEN is empty: set it to the SQUAD token, then `lkft push` (1 spooled" \
        in capsys.readouterr().err
    assert squad.spooled(isolated_home / "squad-spool") != []
