"""SQUAD's own clients against a real SQUAD 1.98 and `lkft serve` holding the same runs.

The same runs (two builds, two environments, a pass->fail regression, a fix, a skip, an
xfail from a known issue, metrics, logs) go to both servers: ours through the plugin's
SQUAD client, one through squad-client's own `submit`; known issues reach SQUAD through
its REST API (`push_known_issues`) and `lkft serve` through `--known-issues`. Then
squad-client 0.45 (`download-results`, its Python API, `create-or-update-project`) and
squad-report 1.9.0, installed from PyPI into their own venv, read both, and what they
print is compared field by field with ids, URLs and times left aside.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from squad_server import SquadServer, install_clients

from pytest_lkft.parsers.model import Case, Metric, Result
from pytest_lkft.reporting import knownissues
from pytest_lkft.reporting.squad import SquadClient, push_known_issues, submission_from
from pytest_lkft.reporting.store import RunRecord

GROUP, PROJECT = "clients", "linux"
DATA = Path(__file__).parent / "data" / "squad"
KNOWN_ISSUES = """known_issues:
  - test: "ltp-syscalls/known*"
    reason: "hangs under TCG, https://bugs.example.org/1"
"""
ENVIRONMENTS = ("qemu-arm64", "qemu-x86_64")
TIMES = re.compile(r"^(created_at|datetime|last_updated)$")


def cases(build: int) -> list[Case]:
    """Build 1 passes abort01 and fails brk01; build 2 the other way round."""
    second = build == 2
    return [
        Case("ltp-syscalls", "abort01", Result.FAIL if second else Result.PASS,
             log=["abort01.c:12: TFAIL: aborted"] if second else []),
        Case("ltp-syscalls", "brk01", Result.PASS if second else Result.FAIL,
             log=[] if second else ["brk01.c:3: TFAIL: brk"]),
        Case("ltp-syscalls", "dup01", Result.SKIP),
        Case("ltp-syscalls", "known01", Result.FAIL, log=["hang"]),
        Case("boot", "boot", Result.PASS),
        Case("kunit/list", "list_test_add", Result.PASS),
    ]


def record(build: int, environment: str, tag: str) -> RunRecord:
    """One device's run of a build, with the metadata squad-report prints."""
    metadata = {"kernel_version": f"6.1.{build}", "git_repo": "https://git.example.org/linux",
                "git_ref": "master", "git_sha": f"abc{build}", "device": environment}
    return RunRecord(GROUP, PROJECT, f"v6.1.{build}", environment, cases(build),
                     metrics={"boot/boot-time": Metric(2.0 + build, "s")}, metadata=metadata,
                     job_id=f"{tag}-{build}-{environment}")


@pytest.fixture(scope="module")
def token() -> str:
    """One token both servers take (a SQUAD superuser's, for known issues)."""
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def clients() -> Path:
    """The venv with squad-client and squad-report (installed once per machine)."""
    return install_clients()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, token: str) -> Iterator[str]:
    """`lkft serve` with the same known issues as SQUAD; stopped by PID."""
    root = tmp_path_factory.mktemp("serve")
    issues = root / "known-issues.yaml"
    issues.write_text(KNOWN_ISSUES)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_lkft.cli", "serve", "--store", str(root / "s.sqlite3"),
         "--port", "0", "--known-issues", str(issues)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "LKFT_SQUAD_TOKEN": token})
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        yield line.split(" on ")[1].strip().rstrip("/")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(squad_server: SquadServer, serve: str, token: str, clients: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Both servers holding the same submissions: name -> URL."""
    squad_server.token(f"{GROUP}/{PROJECT}")  # SQUAD submits only to an existing project
    squad_server.superuser_token(f"clients-admin-{token[:8]}", token)
    work = tmp_path_factory.mktemp("submit")
    urls = {"squad": squad_server.url, "lkft": serve}
    old = os.environ.get("LKFT_SQUAD_TOKEN")
    os.environ["LKFT_SQUAD_TOKEN"] = token
    try:
        for name, url in urls.items():
            client = SquadClient(url, delays=())
            if name == "squad":
                issues = knownissues.load(write(work / "ki.yaml", KNOWN_ISSUES))
                # an issue for every environment: all those the runs go to
                assert "1 known issues pushed" in push_known_issues(
                    client, GROUP, PROJECT, issues, (*ENVIRONMENTS, "qemu-riscv64"))
            for build in (1, 2):
                for env in ENVIRONMENTS:
                    assert client.submit(submission_from(record(build, env, name))) == "submitted"
            squad_client_submit(clients, url, token, work, name)
    finally:
        if old is None:
            os.environ.pop("LKFT_SQUAD_TOKEN")
        else:
            os.environ["LKFT_SQUAD_TOKEN"] = old
    squad_server.analyze()
    return urls


def write(path: Path, text: str) -> Path:
    """Write a file and return its path."""
    path.write_text(text)
    return path


def squad_client_submit(clients: Path, url: str, token: str, work: Path, name: str) -> None:
    """A third environment for build 2, sent by squad-client's own `submit`."""
    results = write(work / "riscv.json", json.dumps({"boot/boot": "pass", "smoke/uname": "fail"}))
    metadata = write(work / f"riscv-{name}.json", json.dumps(
        {"job_id": f"{name}-riscv", "kernel_version": "6.1.2", "git_repo":
         "https://git.example.org/linux", "git_ref": "master", "git_sha": "abc2"}))
    write(work / "riscv-console.log", "OpenSBI v1.2\nLinux version 6.1.2\nlogin:\n")
    done = run(clients, "squad-client", "--squad-host", url, "--squad-token", token, "submit",
               "--group", GROUP, "--project", PROJECT, "--build", "v6.1.2",
               "--environment", "qemu-riscv64", "--results", str(results),
               "--metadata", str(metadata), "--attachments", "riscv-console.log", cwd=work)
    assert "TESTRUN_ID" in done.stderr + done.stdout, done.stderr


def run(clients: Path, tool: str, *args: str, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run a tool of the clients' venv; fail with its output if it fails."""
    done = subprocess.run([str(clients / "bin" / tool), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert done.returncode == 0, f"{tool} {args}: {done.stdout}\n{done.stderr}"
    return done


def neutral(value: object, urls: tuple[str, ...]) -> object:
    """Leave ids, URLs and times aside; sort lists of names SQUAD keeps in set order."""
    if isinstance(value, dict):
        return {k: "<time>" if TIMES.match(k) else "<id>" if k == "id" else neutral(v, urls)
                for k, v in value.items() if k != "url"}
    if isinstance(value, list):
        items = [neutral(v, urls) for v in value]
        return sorted(items, key=json.dumps) if all(isinstance(i, str) for i in items) else items
    if isinstance(value, str):
        for url in urls:
            value = value.replace(url, "<server>")
        if value.startswith("{") and "regressions" not in value:
            try:
                return neutral(json.loads(value), urls)  # status' regressions, fixes
            except ValueError:
                return value
        return re.sub(r"<server>/api/\w+/\d+/", "<object>", value)
    return value


def by_name(objects: list[dict[str, object]], envs: dict[str, str]) -> list[dict[str, object]]:
    """Tests or metrics in one order for both servers: environment, then name."""
    return sorted(objects, key=lambda o: (envs[str(o["environment"])], str(o["name"])))


def api_dump(clients: Path, url: str, token: str) -> dict[str, object]:
    """What squad-client's Python API reads from a server, ready to compare."""
    done = run(clients, "python", str(DATA / "api_dump.py"), url, token, GROUP, PROJECT)
    data: dict[str, object] = json.loads(done.stdout)
    envs = {str(e["url"]): str(e["slug"]) for e in data["environments"]}  # type: ignore[attr-defined]
    for build in data["builds"]:  # type: ignore[attr-defined]
        for key in ("tests", "metrics"):
            build[key] = by_name(build[key], envs)
        build["testruns"] = sorted(build["testruns"], key=lambda t: envs[str(t["environment"])])
        for test in build["tests"] + build["metrics"] + build["testruns"]:
            test["environment"] = envs[str(test["environment"])]
            test.pop("job_id", None)  # each server got its own job ids
            test.get("metadata", {}).pop("job_id", None) if isinstance(
                test.get("metadata"), dict) else None
            test.pop("metadata", None) if not isinstance(test.get("metadata"), dict) else None
            for attachment in test.get("attachments") or []:
                attachment.pop("download_url")
        build["metadata"].pop("job_id", None)
    return data


def test_python_api_reads_the_same(servers: dict[str, str], clients: Path, token: str) -> None:
    urls = tuple(servers.values())
    squad, lkft = (api_dump(clients, servers[n], token) for n in ("squad", "lkft"))
    assert neutral(lkft, urls) == neutral(squad, urls)
    second = lkft["builds"][1]  # type: ignore[index]
    assert second["build"]["version"] == "v6.1.2"
    regressions = json.loads(second["status"]["regressions"])
    assert regressions == {env: ["ltp-syscalls/abort01"] for env in ENVIRONMENTS}
    statuses = {(t["environment"], t["name"]): t["status"] for t in second["tests"]}
    assert statuses[("qemu-arm64", "ltp-syscalls/known01")] == "xfail"
    assert statuses[("qemu-riscv64", "smoke/uname")] == "fail"
    assert lkft["compare"]["regressions"] == {  # type: ignore[index]
        env: {"ltp-syscalls": ["abort01"]} for env in ENVIRONMENTS}


def test_download_results_is_the_same(servers: dict[str, str], clients: Path, token: str,
                                      tmp_path: Path) -> None:
    outputs = {}
    for name, url in servers.items():
        out = tmp_path / f"{name}.txt"
        run(clients, "squad-client", "--squad-host", url, "--squad-token", token,
            "download-results", "--group", GROUP, "--project", PROJECT, "--build", "latest",
            "--filename", str(out), "--format",
            "{test.environment.slug}/{test.name} {test.status} {test.log}")
        outputs[name] = out.read_text()
    assert outputs["lkft"] == outputs["squad"]
    assert "qemu-arm64/ltp-syscalls/abort01 fail abort01.c:12: TFAIL: aborted" in outputs["lkft"]
    assert "qemu-x86_64/ltp-syscalls/known01 xfail hang" in outputs["lkft"]
    assert len(outputs["lkft"].splitlines()) == 14


def test_squad_report_is_the_same(servers: dict[str, str], clients: Path, token: str,
                                  tmp_path: Path) -> None:
    reports = {}
    for name, url in servers.items():
        done = run(clients, "squad-report", "--url", url, "--token", token, "--group", GROUP,
                   "--project", PROJECT, "--build", "v6.1.2", cwd=tmp_path)
        reports[name] = done.stdout.replace(url, "<server>")
    assert reports["lkft"] == reports["squad"]
    report = reports["lkft"]
    assert "## Test Regressions (compared to v6.1.1)" in report
    assert "* qemu-arm64, ltp-syscalls\n  - abort01" in report
    assert "* qemu-x86_64, ltp-syscalls\n  - brk01" in report.split("## Test Fixes")[1]
    assert "* kernel: 6.1.2" in report


def test_private_project_needs_the_token(servers: dict[str, str], clients: Path,
                                         token: str) -> None:
    for name, url in servers.items():
        done = run(clients, "squad-client", "--squad-host", url, "--squad-token", token,
                   "create-or-update-project", "--group", GROUP, "--slug", "private-one",
                   "--is-private", "--description", "not for everyone")
        assert done.stdout.startswith(f"Project saved: {url}/api/projects/"), (name, done)
        anonymous = requests.get(f"{url}/api/projects/", params={"slug": "private-one"},
                                 timeout=60).json()
        with_token = requests.get(f"{url}/api/projects/", params={"slug": "private-one"},
                                  headers={"Authorization": f"token {token}"}, timeout=60).json()
        assert (name, anonymous["count"], with_token["count"]) == (name, 0, 1)
        assert with_token["results"][0]["is_public"] is False
        assert with_token["results"][0]["description"] == "not for everyone"


def test_download_attachments_is_the_same(servers: dict[str, str], clients: Path, token: str,
                                          tmp_path: Path) -> None:
    for name, url in servers.items():
        runs = requests.get(f"{url}/api/testruns/", params={"job_id": f"{name}-riscv"},
                            timeout=60).json()["results"]
        assert [a["filename"] for a in runs[0]["attachments"]] == ["riscv-console.log"]
        (tmp_path / name).mkdir()
        run(clients, "squad-client", "--squad-host", url, "--squad-token", token,
            "download-attachments", "--testrun", str(runs[0]["id"]), cwd=tmp_path / name)
        got = (tmp_path / name / "riscv-console.log").read_text()
        assert got == "OpenSBI v1.2\nLinux version 6.1.2\nlogin:\n", name


def test_version_and_lowercase_token(servers: dict[str, str], token: str) -> None:
    for url in servers.values():
        assert requests.get(f"{url}/api/version/", timeout=60).text.strip('"') == "1.98"
    response = requests.post(f"{servers['lkft']}/api/submit/{GROUP}/scratch/v9/qemu-arm64",
                             files={"tests": ("t.json", b'{"boot/boot": "pass"}')},
                             headers={"Authorization": f"token {token}"}, timeout=60)
    assert response.status_code == 201, response.text
