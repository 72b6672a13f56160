"""LAVA devices for real: a LAVA 2023.01 from Debian's packages on 127.0.0.1.

One lab for the whole session (tests/lava_lab.py: PostgreSQL, LAVA's web app, scheduler,
publisher and worker, two QEMU devices), installed first when missing. The devices boot
Debian's arm64 kernel with the busybox initramfs, as local QEMU runs do. These tests are
skipped only where Debian's LAVA packages cannot be installed, saying why (and fail
instead under CI).
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from lava_lab import (
    FlakyProxy,
    LavaLab,
    free_port,
    job_qemu_pids,
    lava_lab,
    wait_for,
    why_not_installable,
)
from test_ltp_suite import SMOKE_RESULTS, SMOKETEST, ltp_tarball

from conftest import REPO, SHARED_CACHE, TESTSUITES, junit_name, need_qemu
from pytest_lkft.devices.lava.client import LavaClient

pytestmark = pytest.mark.qemu

SMOKE = ["uname", "pwd", "cpuinfo", "meminfo", "cmdline", "mounts", "interrupts", "processes",
         "network-interfaces", "block-devices", "kernel-log", "sysfs-cpus", "tmp-write"]
# A suite of one command that runs as long as a test needs (a LAVA job to interrupt).
SLEEPY = '''
import pytest
from pytest_lkft.suites import run_case, test_crash  # noqa: F401
pytestmark = pytest.mark.lkft_suite("sleepy")
COMMAND = "echo sleeping; sleep {seconds}"

@pytest.mark.lkft_commands(lambda params: [COMMAND])
def test_sleep(device, request):
    run_case(device, COMMAND, request.node)
'''


@pytest.fixture(scope="session")
def lava(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LavaLab]:
    """The session's LAVA lab on 127.0.0.1."""
    need_qemu("qemu-system-aarch64")
    why = why_not_installable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with lava_lab(tmp_path_factory.mktemp("lava")) as running:
        yield running


@pytest.fixture
def lab(lava: LavaLab, monkeypatch: pytest.MonkeyPatch) -> Iterator[LavaLab]:
    """The lab with this test's token in LKFT_LAVA_TOKEN; idle again afterwards."""
    monkeypatch.setenv("LKFT_LAVA_TOKEN", lava.token)
    yield lava
    lava.cancel_unfinished()


def run(pytester: pytest.Pytester, cache: Path, url: str, *args: str) -> pytest.RunResult:
    """pytest-lkft in a subprocess against the lab."""
    return pytester.runpytest_subprocess(f"--lkft-cache-dir={cache}", "-p", "no:cacheprovider",
                                         "-p", "no:labgrid", f"--lkft-lava-url={url}", *args,
                                         timeout=600)


def by_device(junit: Path, only: str = "") -> dict[str, dict[str, str]]:
    """device -> `suite/case` -> result, from the JUnit file: the device is each case's
    `lkft.device` property (its name ends in ` [device]` too); `only` for a case without."""
    found: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        device = {p.get("name"): p.get("value") for p in case.iter("property")}.get(
            "lkft.device") or only
        tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        name = f"{case.get('classname')}/{junit_name(case)}"
        found.setdefault(device, {})[name] = tags[0] if tags else "pass"
    return found


def properties(junit: Path, device: str) -> dict[str, dict[str, str]]:
    """`suite/case` -> the JUnit properties of the cases run on `device`."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}/{case.get('name')}"
        if name.endswith(f"[{device}]"):
            found[name.rpartition(" [")[0]] = {p.get("name", ""): p.get("value", "")
                                               for p in case.iter("property")}
    return found


def job_of(results: Path, device: str, suite: str) -> dict[str, object]:
    """The suite run's lava-job.json."""
    return dict(json.loads((results / device / suite / "lava-job.json").read_text()))


def test_suites_on_lava_match_local_qemu(pytester: pytest.Pytester, private_cache: Path,
                                         lab: LavaLab) -> None:
    """Boot, smoke and a parsed suite (LTP) on lava:qemu and on local QEMU, in one run under
    -n 2 with three LAVA jobs in flight: every case has the same result on both."""
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"smoketest": SMOKETEST})
    skipfile = pytester.path / "skipfile"
    skipfile.write_text("skipme01\n")
    junit = pytester.path / "results.xml"
    result = run(pytester, private_cache, lab.url, str(TESTSUITES / "test_boot.py"),
                 str(TESTSUITES / "test_smoke.py"), str(TESTSUITES / "test_ltp.py"),
                 "--lkft-device=lava:qemu", "--lkft-device=qemu-arm64", "-n", "2",
                 f"--lkft-ltp={tarball}", f"--lkft-ltp-skipfile={skipfile}",
                 "--lkft-lava-jobs=3", f"--junitxml={junit}")
    found = by_device(junit)
    expected = {"boot/boot": "pass", "boot/crash": "pass", "smoke/crash": "pass",
                **{f"smoke/{case}": "pass" for case in SMOKE}, **SMOKE_RESULTS}
    assert found["qemu-arm64"] == expected, result.stdout.str()[-3000:]
    assert found["lava:qemu"] == found["qemu-arm64"]
    result.stdout.fnmatch_lines([f"lkft: lava={lab.url} user=lkft jobs=3 queue-timeout=3600 *"])
    results = pytester.path / "lkft-results"
    jobs = {suite: job_of(results, "lava:qemu", suite) for suite in ("boot", "smoke", "ltp")}
    assert {suite: job["health"] for suite, job in jobs.items()} == \
        {"boot": "Complete", "smoke": "Complete", "ltp": "Complete"}
    props = properties(junit, "lava:qemu")
    assert props["smoke/uname"]["lkft.meta.lava_job"] == jobs["smoke"]["url"]
    assert props["boot/boot"]["lkft.metric.boot-time"].endswith(" s")
    # the smoke cases came back through LAVA's API too, with the suite's names
    tests = LavaClient(lab.url, lab.token).tests(int(str(jobs["smoke"]["id"])))
    assert {t["name"]: t["result"] for t in tests if t.get("unit") == "rc"} == \
        dict.fromkeys(SMOKE, "pass")
    # the three jobs were in flight together: LAVA ran two at once, one per device
    records = [lab.job(int(str(job["id"]))) for job in jobs.values()]
    spans = sorted((r["start_time"], r["end_time"]) for r in records)
    assert any(start < spans[0][1] for start, _ in spans[1:]), spans
    assert len({r["actual_device"] for r in records}) == 2
    assert_token_nowhere(lab.token, pytester.path, result)


def assert_token_nowhere(token: str, root: Path, result: pytest.RunResult) -> None:
    """The token is in no output, no result file, no report, no store."""
    assert token not in result.stdout.str() + result.stderr.str()
    for path in root.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_a_job_that_does_not_boot(pytester: pytest.Pytester, private_cache: Path,
                                  lab: LavaLab) -> None:
    """No root filesystem to mount: LAVA's job is Incomplete; boot fails with LAVA's message,
    a link to the job and the panic; the device's other tests are skipped as consequences
    (one error per device, as on local QEMU)."""
    junit = pytester.path / "results.xml"
    run(pytester, private_cache, lab.url, str(TESTSUITES / "test_boot.py"),
        str(TESTSUITES / "test_smoke.py"), "--lkft-device=lava:qemu", "-k", "boot or uname",
        "--lkft-boot-args=rdinit=/nonexistent", f"--junitxml={junit}")
    job = job_of(pytester.path / "lkft-results", "lava:qemu", "boot")
    assert job["health"] == "Incomplete"
    found = by_device(junit, "lava:qemu")["lava:qemu"]
    assert found == {"boot/boot": "failure", "boot/crash": "skipped", "smoke/uname": "skipped"}
    messages = failure_messages(junit, ("failure", "error", "skipped"))
    assert messages["boot/boot"].startswith(
        f"Failed: boot failed: LAVA job {job['id']} Incomplete: Infrastructure error: "
        f"Connection closed; see {job['url']}; the kernel crashed while booting: kernel-panic")
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in messages["boot/boot"]
    for consequence in ("boot/crash", "smoke/uname"):
        assert "not run: lava:qemu failed earlier in this run (see " in messages[consequence]


def test_a_quiet_boot_passes(pytester: pytest.Pytester, private_cache: Path,
                             lab: LavaLab) -> None:
    """--lkft-boot-args=quiet hides the kernel's `Linux version` banner, which LAVA's qemu
    device type waits for by default: the job sets LAVA's kernel-start-message to "" (the
    prompt alone, as local runs take it) and the boot passes, its time from LAVA's boot
    action."""
    junit = pytester.path / "results.xml"
    result = run(pytester, private_cache, lab.url, str(TESTSUITES / "test_boot.py"),
                 "--lkft-device=lava:qemu", "--lkft-boot-args=quiet", f"--junitxml={junit}")
    result.assert_outcomes(passed=2)
    run_dir = pytester.path / "lkft-results" / "lava:qemu" / "boot"
    job = yaml.safe_load((run_dir / "job.yaml").read_text())
    boot = next(action["boot"] for action in job["actions"] if "boot" in action)
    assert boot["parameters"] == {"kernel-start-message": ""}
    assert "quiet" in job["actions"][0]["deploy"]["images"]["kernel"]["image_arg"]
    assert "Linux version" not in (run_dir / "console.log").read_text()
    assert job_of(pytester.path / "lkft-results", "lava:qemu", "boot")["health"] == "Complete"
    boot_properties = properties(junit, "lava:qemu")["boot/boot"]
    assert boot_properties["lkft.metric.boot-time"].endswith(" s")
    # the release from the kernel image, since the log has no banner
    assert re.fullmatch(r"\d+\.\d+\.\d+-\d+-cloud-arm64",
                        boot_properties["lkft.meta.kernel_version"])


def failure_messages(junit: Path, tags: tuple[str, ...] = ("failure", "error")
                     ) -> dict[str, str]:
    """`suite/case` -> the message of its failure or error (or another of `tags`)."""
    return {f"{c.get('classname')}/{junit_name(c)}": child.get("message", "")
            for c in ET.parse(junit).getroot().iter("testcase")
            for child in c if child.tag in tags}


def sleepy_run(pytester: pytest.Pytester, cache: Path, lab: LavaLab, seconds: int,
               *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """pytest-lkft running the sleepy suite on lava:qemu, in the background."""
    pytester.makepyfile(test_sleepy=SLEEPY.replace("{seconds}", str(seconds)))
    command = [sys.executable, "-m", "pytest", "test_sleepy.py", "-p", "no:cacheprovider",
               "-p", "no:labgrid", f"--lkft-cache-dir={cache}", f"--lkft-lava-url={lab.url}",
               "-v", *args]
    return subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def stop(process: subprocess.Popen[str]) -> None:
    """Kill a run a test left behind (it failed before the run ended)."""
    if process.poll() is None:
        process.kill()
        process.communicate()


def running_job(pytester: pytest.Pytester, device: str, suite: str) -> int:
    """The job of a suite run once its command started on the device."""
    run_dir = pytester.path / "lkft-results" / device / suite
    wait_for("the command to start in LAVA", lambda: "sleeping" in _read(run_dir / "console.log"),
             120)
    return int(str(job_of(pytester.path / "lkft-results", device, suite)["id"]))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_run_cancels_its_job(pytester: pytest.Pytester, private_cache: Path,
                                              lab: LavaLab, signum: int) -> None:
    """Ctrl-C or SIGTERM of the run: LAVA shows the job Canceled and no QEMU is left."""
    process = sleepy_run(pytester, private_cache, lab, 600, "--lkft-device=lava:qemu")
    try:
        job_id = running_job(pytester, "lava:qemu", "sleepy")
        assert job_qemu_pids(job_id), "the job's QEMU should run"
        process.send_signal(signum)
        output, _ = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode != 0
    record = lab.wait_finished(job_id, 60)
    assert record["health"] == "Canceled", output
    wait_for("the job's QEMU to be gone", lambda: not job_qemu_pids(job_id), 30)


def test_a_lab_stopped_mid_run_errors_its_suites_only(pytester: pytest.Pytester,
                                                      private_cache: Path, lab: LavaLab) -> None:
    """LAVA's web app goes away while a job runs: after retrying, the LAVA device's suites
    are errors saying so, without waiting again; the QEMU device's suites pass."""
    junit = pytester.path / "results.xml"
    process = sleepy_run(pytester, private_cache, lab, 30, str(TESTSUITES / "test_boot.py"),
                         "--lkft-device=lava:qemu", "--lkft-device=qemu-arm64", "-n", "2",
                         f"--junitxml={junit}", env={"LKFT_LAVA_RETRY": "3"})
    try:
        running_job(pytester, "lava:qemu", "sleepy")
        lab.stop_web()
        output, _ = process.communicate(timeout=300)
    finally:
        stop(process)
        if "gunicorn" not in lab.processes:
            lab.start_web()
    found = by_device(junit)
    assert found["qemu-arm64"] == {"sleepy/sleep": "pass", "sleepy/crash": "pass",
                                   "boot/boot": "pass", "boot/crash": "pass"}, output
    assert found["lava:qemu"]["sleepy/sleep"] == "failure"
    assert found["lava:qemu"]["boot/boot"] == "failure"
    assert f"LAVA at {lab.url} cannot be reached (Connection refused); retried for 3 s" in output


def test_a_wrong_token_is_one_line(pytester: pytest.Pytester, private_cache: Path,
                                   lab: LavaLab, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "0123456789abcdef-not-a-token"
    monkeypatch.setenv("LKFT_LAVA_TOKEN", wrong)
    result = run(pytester, private_cache, lab.url, str(TESTSUITES / "test_boot.py"),
                 "--lkft-device=lava:qemu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line] == [
        f"ERROR: LAVA at {lab.url} refused the token from LKFT_LAVA_TOKEN (403 Invalid "
        "token.); check it"]
    assert wrong not in result.stdout.str() + result.stderr.str()


def test_a_job_stuck_in_the_queue_is_cancelled(pytester: pytest.Pytester, private_cache: Path,
                                               lab: LavaLab) -> None:
    """Both devices in maintenance: the job waits past --lkft-lava-queue-timeout, is
    cancelled, and the suite says why."""
    junit = pytester.path / "results.xml"
    lab.set_health("MAINTENANCE")
    try:
        run(pytester, private_cache, lab.url, str(TESTSUITES / "test_boot.py"),
            "--lkft-device=lava:qemu", "--lkft-lava-queue-timeout=3", f"--junitxml={junit}")
    finally:
        lab.set_health("GOOD")
    job = job_of(pytester.path / "lkft-results", "lava:qemu", "boot")
    assert lab.wait_finished(int(str(job["id"])), 60)["health"] == "Canceled"
    assert failure_messages(junit)["boot/boot"].startswith(
        f"Failed: boot failed: LAVA job {job['id']} waited in the queue for more than 3 s "
        f"(no free qemu device); cancelled it: {job['url']}")


UNPLANNED = '''
import pytest
pytestmark = pytest.mark.lkft_suite("unplanned")

def test_decided_at_run_time(device):
    result = device.run("echo decided $((6 * 7))")
    assert (result.output, result.exit_status) == ("decided 42\\n", 0)
'''


def test_a_command_the_plan_did_not_have_runs_in_a_job_of_its_own(
        pytester: pytest.Pytester, private_cache: Path, lab: LavaLab) -> None:
    pytester.makepyfile(test_unplanned=UNPLANNED)
    result = run(pytester, private_cache, lab.url, "test_unplanned.py", "--lkft-device=lava:qemu")
    result.assert_outcomes(passed=1)
    run_dir = pytester.path / "lkft-results" / "lava:qemu" / "unplanned"
    assert json.loads((run_dir / "lava-job-extra-1.json").read_text())["health"] == "Complete"


def test_lab_errors_5xx_are_retried(pytester: pytest.Pytester, private_cache: Path,
                                    lab: LavaLab) -> None:
    """A proxy in front of LAVA answers 502 three times: the run retries through them."""
    proxy = FlakyProxy(lab.url, failures=3)
    try:
        result = run(pytester, private_cache, proxy.url, str(TESTSUITES / "test_boot.py"),
                     "--lkft-device=lava:qemu")
    finally:
        proxy.stop()
    result.assert_outcomes(passed=2)
    # then LAVA's own answers: 404 for a log not written yet
    assert proxy.answered[:3] == [502, 502, 502] and set(proxy.answered[3:]) <= {200, 201, 404}
    # the follower's requests: the job's state at every fifth look while the log grows,
    # at every look once the log's last line came and no more log; a boot-only job has no
    # test cases to read
    kinds = [request_kind(path) for path in proxy.paths[3:]]
    assert "tests" not in kinds, proxy.paths
    last_log = len(kinds) - 1 - kinds[::-1].index("logs")
    assert kinds.count("logs") > 2 * kinds[:last_log].count("other"), proxy.paths


def request_kind(path: str) -> str:
    """`logs`, `tests` or `other`: what an API request asked for."""
    for kind in ("logs", "tests"):
        if f"/{kind}/" in path:
            return kind
    return "other"


def test_printed_job_runs_in_lava_through_kisscache(tmp_path: Path, lab: LavaLab) -> None:
    """`lkft lava job` with the kernel as a URL and a KissCache prefix: the job, submitted
    as printed, fetches the kernel through `lkft cache serve` and runs its command."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    cache = tmp_path / "cache"
    with ArtifactCache(SHARED_CACHE / "artifacts") as shared:
        defaults = default_artifacts(load_devices().get("qemu-arm64"), shared.root,
                                     shared.fetch)
    kernel = defaults.kernel
    origin_dir = tmp_path / "origin"
    origin_dir.mkdir()
    (origin_dir / "Image").write_bytes(kernel.read_bytes())  # served as /plain/Image
    origin = subprocess.Popen([sys.executable, str(REPO / "tests" / "origin_server.py"),
                               str(origin_dir)], stdout=subprocess.PIPE, text=True)
    port = free_port()
    access_log = tmp_path / "access.log"
    server = subprocess.Popen([sys.executable, "-m", "pytest_lkft.cli", "cache", "serve",
                               "--cache-dir", str(cache), "--bind", f"127.0.0.1:{port}",
                               "--allow", "127.0.0.1"], stdout=subprocess.PIPE,
                              stderr=access_log.open("w"), text=True)
    try:
        assert origin.stdout is not None and server.stdout is not None
        kernel_url = f"http://127.0.0.1:{origin.stdout.readline().strip()}/plain/Image"
        server.stdout.readline()
        prefix = f"http://127.0.0.1:{port}/api/v1/fetch/?url=%s"
        printed = subprocess.run(
            [sys.executable, "-m", "pytest_lkft.cli", "lava", "job", "--device", "lava:qemu",
             "--kernel", kernel_url, "--rootfs", str(defaults.rootfs), "--cache-url", prefix,
             "--cache-dir", str(cache),
             "--artifacts-url", f"http://127.0.0.1:{port}/lkft/artifacts",
             "--command", "uname -r"], capture_output=True, text=True, check=True)
        job = yaml.safe_load(printed.stdout)
        images = job["actions"][0]["deploy"]["images"]
        quoted = requests.utils.quote(kernel_url, safe="")
        assert images["kernel"]["url"] == f"http://127.0.0.1:{port}/api/v1/fetch/Image?url={quoted}"
        assert images["ramdisk"]["url"].startswith(f"http://127.0.0.1:{port}/lkft/artifacts/")
        client = LavaClient(lab.url, lab.token)
        job_id = client.submit(printed.stdout)
        log_of = client.logs
        assert lab.wait_finished(job_id, 300)["health"] == "Complete", [
            line for line in log_of(job_id).splitlines() if '"lvl": "error"' in line
            or '"case": "job"' in line]
        log = client.logs(job_id)
        assert "6.1.0-57-cloud-arm64" in log and "LKFT-RC=0" in log
        served = access_log.read_text()  # the lab's requests, as the server logged them
        assert f'"GET /api/v1/fetch/Image?url={quoted} HTTP/1.1" 200' in served
        assert '"GET /lkft/artifacts/' in served
    finally:
        for process in (server, origin):
            process.terminate()
            process.wait(10)


def test_jobs_pass_lavas_own_validation(lava: LavaLab, tmp_path: Path) -> None:
    """The qemu template's jobs (boot only; steps of two suites, a here-document) pass
    LAVA's submission schema and lava-run's validation of the job against the device's
    configuration (the dispatcher builds the job's whole pipeline), by LAVA's own code."""
    from pytest_lkft.devices.lava.jobs import JobInputs, Step, qemu_context, render_job
    from pytest_lkft.settings.devices import load_devices

    files = tmp_path / "files"  # lava-run checks that the URLs answer
    files.mkdir()
    for name in ("Image", "r.gz", "x.dtb"):
        (files / name).write_bytes(b"x")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        SimpleHTTPRequestHandler, directory=str(files)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    here_doc = "cat <<'EOF'\nx\nEOF"
    for index, steps in enumerate(([], [Step("smoke", "uname", "uname -a", 600),
                                        Step("ltp-math", "run", here_doc, 60)])):
        job = render_job("qemu", JobInputs("qemu", "lkft", f"{base}/Image", f"{base}/r.gz",
                                           dtb_url=f"{base}/x.dtb", context=qemu_context(
                                               load_devices().get("qemu-arm64")), steps=steps))
        (tmp_path / f"job-{index}.yaml").write_text(job)
        schema = subprocess.run(
            ["/usr/bin/python3", "-c", "import os, sys, yaml, django; os.environ.setdefault("
             "'DJANGO_SETTINGS_MODULE', 'lava_server.settings.prod'); django.setup(); from "
             "lava_scheduler_app.schema import validate_submission; "
             "validate_submission(yaml.safe_load(sys.stdin.read()))"],
            input=job, capture_output=True, text=True)
        assert schema.returncode == 0, schema.stderr
        context = yaml.safe_dump(yaml.safe_load(job)["context"])
        device = lava.api(f"devices/lkft-qemu-01/dictionary/?render=true&context="
                          f"{requests.utils.quote(context)}")
        (tmp_path / "device.yaml").write_text(device.text)
        pipeline = subprocess.run(
            ["lava-run", "--validate", "--job-id", str(index), "--output-dir",
             str(tmp_path / f"out-{index}"), "--device", str(tmp_path / "device.yaml"),
             str(tmp_path / f"job-{index}.yaml")], capture_output=True, text=True, timeout=120)
        assert pipeline.returncode == 0, pipeline.stdout[-3000:] + pipeline.stderr[-3000:]
    server.shutdown()
    server.server_close()


def test_qemu_labgrid_and_lava_devices_in_one_matrix(
        pytester: pytest.Pytester, private_cache: Path, lab: LavaLab,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """One run under -n 3: local QEMU, a labgrid stand-in board and lava:qemu, each on a
    worker of its own, the same results."""
    from labgrid_lab import STANDIN_LAB, standin_lab
    from test_labgrid import need_lab_tools

    need_lab_tools()
    junit = pytester.path / "results.xml"
    with standin_lab(tmp_path_factory.mktemp("labgrid"), ["board-a"]) as grid:
        run(pytester, private_cache, lab.url, str(TESTSUITES / "test_boot.py"),
            str(TESTSUITES / "test_smoke.py"), "--lkft-device=lava:qemu",
            "--lkft-device=qemu-arm64", "--lkft-device=standin-1", f"--lkft-lab={STANDIN_LAB}",
            f"--lkft-coordinator={grid.coordinator}", "-n", "3", f"--junitxml={junit}")
    found = by_device(junit)
    expected = {"boot/boot": "pass", "boot/crash": "pass", "smoke/crash": "pass",
                **{f"smoke/{case}": "pass" for case in SMOKE}}
    assert found == {"lava:qemu": expected, "qemu-arm64": expected, "standin-1": expected}
