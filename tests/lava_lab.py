"""A real LAVA 2023.01 lab on 127.0.0.1 for the tests: Debian's lava-server and lava-dispatcher.

`lava_lab(root)` installs the packages when they are missing (as root, with apt-get;
PostgreSQL is installed and started first, or lava-server's postinst silently skips its
database), then starts PostgreSQL when its cluster is down, LAVA's web app under
gunicorn, lava-publisher, lava-scheduler and lava-worker, each a process of its own
stopped by its PID at the end (PostgreSQL too, when this started it). LAVA's event
sockets are bound to 127.0.0.1 (its default listens on every interface) and the worker
pings every second, so scheduler and worker react at once (FACTS.md).

The lab has a superuser `lkft` with a token made for this session (removed at the end),
a worker `lkft-worker` and two devices `lkft-qemu-01` and `lkft-qemu-02` of LAVA's
`qemu` device type. LAVA's configuration lives in /etc/lava-server and its database is
the machine's: one lab at a time per machine, so a session holds a file lock while it
runs one (`LOCK`).

    python tests/lava_lab.py      # start the lab, print its URL and token, Ctrl-C stops it
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

PACKAGES = ("lava-server", "lava-dispatcher")
LOCK = Path("/run/lock/lkft-lava-lab.lock")
LOCK_WAIT = 1800.0  # seconds to wait for another session's lab to stop
USER = "lkft"
WORKER = "lkft-worker"
DEVICES = ("lkft-qemu-01", "lkft-qemu-02")
DEVICE_TYPE = "qemu"
DEVICE_DIR = Path("/etc/lava-server/dispatcher-config/devices")
DEVICE_DICT = "{% extends 'qemu.jinja2' %}\n"
APT = ("apt-get", "-o", "DPkg::Lock::Timeout=900", "-q", "-y")
# lava-scheduler as `lava-server manage lava-scheduler` runs it, with its main loop's
# interval (a module constant, 20 s) shortened: LAVA 2023.01 publishes a device's Idle
# event before the change is committed, so the scheduling it triggers may still see the
# device busy, and a queued job then waits for the next event or the interval (a
# measured 14 s stall between two jobs on one device; FACTS.md's "~20 s hand-over").
SCHEDULER_INTERVAL = 0.5
SCHEDULER = """
import importlib, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "lava_server.settings.prod"
import django
django.setup()
importlib.import_module("lava_server.management.commands.lava-scheduler").INTERVAL = \\
    float(sys.argv[1])
from django.core.management import execute_from_command_line
execute_from_command_line(["lava-server", "lava-scheduler", *sys.argv[2:]])
"""
NO_PROMPTS = {"DEBIAN_FRONTEND": "noninteractive"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*command: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    """Run a command, return its stdout; AssertionError with its stderr when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if done.returncode:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def installed(package: str) -> bool:
    """True when dpkg has `package` installed."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                          text=True)
    return done.returncode == 0 and done.stdout.strip() == "install ok installed"


def why_not_installable() -> str | None:
    """Why Debian's LAVA packages cannot be installed here, or None when they can be."""
    if all(installed(p) for p in PACKAGES):
        return None
    if shutil.which("apt-get") is None or not Path("/etc/debian_version").exists():
        return "LAVA's packages come from Debian (lava-server, lava-dispatcher); no apt-get here"
    if os.geteuid() != 0:
        return ("lava-server and lava-dispatcher are not installed and installing them needs "
                "root: run the tests as root (./bootstrap.sh test) or apt-get install them")
    policy = run("apt-cache", "policy", *PACKAGES)
    if "Candidate: (none)" in policy or "Candidate:" not in policy:
        return "apt has no lava-server or lava-dispatcher candidate (Debian 12 has 2023.01)"
    return None


def install() -> None:
    """apt-get install PostgreSQL, start its cluster, then lava-server and lava-dispatcher."""
    if all(installed(p) for p in PACKAGES):
        return
    online_before = installed("postgresql") and Postgres.find().online()
    run(*APT, "install", "--no-install-recommends", "postgresql", env=NO_PROMPTS, timeout=1800)
    cluster = Postgres.find()
    cluster.start()  # may run already: postgresql's postinst starts it where it can
    try:
        run(*APT, "install", "--no-install-recommends", *PACKAGES, env=NO_PROMPTS,
            timeout=1800)
    finally:
        if not online_before and cluster.online():  # what this install started, it stops
            cluster.stop()


@dataclass
class Postgres:
    """The machine's PostgreSQL cluster (Debian's `pg_ctlcluster`)."""

    version: str
    name: str

    @classmethod
    def find(cls) -> Postgres:
        """The first cluster pg_lsclusters lists (Debian 12: 15 main)."""
        for line in run("pg_lsclusters", "--no-header").splitlines():
            fields = line.split()
            if len(fields) >= 4:
                return cls(fields[0], fields[1])
        raise AssertionError("no PostgreSQL cluster: apt-get install postgresql")

    def online(self) -> bool:
        """True when the cluster runs."""
        out = run("pg_lsclusters", "--no-header", self.version, self.name)
        return " online" in out

    def start(self) -> bool:
        """Start the cluster unless it runs; True when this call started it."""
        if self.online():
            return False
        run("pg_ctlcluster", self.version, self.name, "start", timeout=120)
        return True

    def stop(self) -> None:
        """Stop the cluster."""
        run("pg_ctlcluster", self.version, self.name, "stop", timeout=120)


def manage(*args: str, timeout: float = 300) -> str:
    """`lava-server manage ARGS`, its stdout."""
    return run("lava-server", "manage", *args, timeout=timeout)


@contextlib.contextmanager
def machine_lock(timeout: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the machine's LAVA lab lock (one lab at a time: the configuration is global)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another LAVA lab held {LOCK} for {timeout:g} s") \
                        from None
                time.sleep(1)
        yield
    finally:
        os.close(fd)


@dataclass
class LavaLab:
    """A running lab: its URL, a token of user `lkft`, its processes by name."""

    root: Path
    port: int = 0
    token: str = field(default="", repr=False)  # never in a failure message
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    postgres: Postgres | None = None
    started_postgres: bool = False
    settings_env: dict[str, str] = field(default_factory=dict)
    logs: Path | None = None  # LAVA's own logs while it runs (see start)

    @property
    def url(self) -> str:
        """The web app's base URL."""
        return f"http://127.0.0.1:{self.port}/"

    def api(self, path: str) -> requests.Response:
        """GET an API path (`jobs/1/`) with the lab's token."""
        return requests.get(f"{self.url}api/v0.2/{path}", timeout=30,
                            headers={"Authorization": f"Token {self.token}"})

    def configure(self) -> None:
        """User, token, worker, device type and devices: whatever an earlier run left is kept."""
        if f"* {USER}" not in manage("users", "list"):
            manage("users", "add", USER, "--superuser", "--passwd", secrets.token_hex(16))
        self.token = secrets.token_hex(20)
        manage("tokens", "add", "--user", USER, "--secret", self.token,
               "--description", f"lkft tests {os.getpid()}")
        if f"* {WORKER} " not in manage("workers", "list"):
            manage("workers", "add", WORKER)
        if f"* {DEVICE_TYPE} " not in manage("device-types", "list"):
            manage("device-types", "add", DEVICE_TYPE)
        listed = manage("devices", "list", "--all")
        for device in DEVICES:
            (DEVICE_DIR / f"{device}.jinja2").write_text(DEVICE_DICT)
            if f"* {device} " not in listed:
                manage("devices", "add", "--device-type", DEVICE_TYPE, "--worker", WORKER,
                       device)
            manage("devices", "update", device, "--health", "GOOD", "--worker", WORKER)
        self.clean_up_jobs()

    def clean_up_jobs(self) -> None:
        """Jobs a killed earlier session left unfinished are failed, so devices are free."""
        for state in ("SUBMITTED", "SCHEDULING", "SCHEDULED", "RUNNING", "CANCELING"):
            out = manage("jobs", "list", "--state", state)
            for job in re.findall(r"^\* (\d+) ", out, re.MULTILINE):
                manage("jobs", "fail", job)

    def worker_token(self) -> str:
        """The worker's own token, as the server made it."""
        found = re.search(r"token\s*:\s*(\S+)", manage("workers", "details", WORKER))
        assert found, "lava-server manage workers details printed no token"
        return found.group(1)

    def _start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.out").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True,  # Ctrl-C in a test reaches us only
                                   env={**os.environ, **self.settings_env})
        self.processes[name] = process
        return process

    def start_web(self) -> None:
        """LAVA's web app (REST API) under gunicorn, on the lab's port."""
        self._start("gunicorn", ["gunicorn3", "lava_server.wsgi", "--log-level", "INFO",
                                 "--log-file", str(self.logs / "gunicorn.log"),
                                 "-u", "lavaserver", "-g", "lavaserver",
                                 "--worker-class", "eventlet", "--workers", "2",
                                 "--bind", f"127.0.0.1:{self.port}"])
        wait_for("LAVA's web app", lambda: self._answers("api/v0.2/"), 120)

    def stop_web(self) -> None:
        """Stop the web app only: the lab is down for its clients, its worker runs on."""
        stop_process(self.processes.pop("gunicorn"))

    def start(self) -> None:
        """PostgreSQL (when down), then the web app, publisher, scheduler and worker."""
        self.root.mkdir(parents=True, exist_ok=True)
        # LAVA's daemons run as lavaserver, which cannot reach pytest's private tmp
        # directories: their logs go to a directory of their own, copied back at the end
        self.logs = Path(tempfile.mkdtemp(prefix="lkft-lava-logs-"))
        shutil.chown(self.logs, "lavaserver", "lavaserver")
        self.postgres = Postgres.find()
        self.started_postgres = self.postgres.start()
        events, internal, publisher = free_port(), free_port(), free_port()
        self.port = free_port()
        self.settings_env = {
            "LAVA_YAML_SETTINGS_EVENT_NOTIFICATION": "true",
            "LAVA_SETTINGS_EVENT_SOCKET": f"tcp://127.0.0.1:{events}",
            "LAVA_SETTINGS_INTERNAL_EVENT_SOCKET": f"tcp://127.0.0.1:{internal}",
        }
        self.configure()
        self._start("publisher", ["lava-server", "manage", "lava-publisher", "--level", "INFO",
                                  "--log-file", str(self.logs / "publisher.log"),
                                  "--host", "127.0.0.1", "--port", str(publisher)])
        self._start("scheduler", ["/usr/bin/python3", "-c", SCHEDULER, str(SCHEDULER_INTERVAL),
                                  "--level", "INFO",
                                  "--log-file", str(self.logs / "scheduler.log"),
                                  "--event-url", f"tcp://127.0.0.1:{events}"])
        self.start_web()
        self._start("worker", ["lava-worker", "--level", "INFO", "--url", self.url,
                               "--ws-url", f"http://127.0.0.1:{publisher}/ws/",
                               "--name", WORKER, "--token", self.worker_token(),
                               "--worker-dir", str(self.root / "worker"),
                               "--log-file", str(self.root / "worker.log"),
                               "--ping-interval", "1", "--job-log-interval", "1"])
        wait_for("lava-worker online", self.worker_online, 60)

    def _answers(self, path: str) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.root / f"{name}.out").read_text(errors="replace")[-2000:]
                raise AssertionError(f"{name} exited ({process.returncode}):\n{log}")
        try:
            return requests.get(self.url + path, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def worker_online(self) -> bool:
        """True once the worker pinged the server and its devices are idle."""
        if not self._answers("api/v0.2/"):
            return False
        worker = self.api(f"workers/{WORKER}/").json()
        devices = [self.api(f"devices/{d}/").json() for d in DEVICES]
        return worker.get("state") == "Online" and all(d.get("state") == "Idle"
                                                       for d in devices)

    def set_health(self, health: str) -> None:
        """Set both devices' health (MAINTENANCE keeps jobs queued, GOOD runs them)."""
        for device in DEVICES:
            manage("devices", "update", device, "--health", health)

    def cancel_unfinished(self) -> None:
        """Cancel every job not finished (a test's leftovers), then wait for idle devices."""
        for state in ("Submitted", "Scheduling", "Scheduled", "Running"):
            for job in self.api(f"jobs/?state={state}").json().get("results", []):
                self.api(f"jobs/{job['id']}/cancel/")
        wait_for("idle LAVA devices", self.worker_online, 120)

    def job(self, job_id: int) -> dict[str, object]:
        """A job's record from the API."""
        return dict(self.api(f"jobs/{job_id}/").json())

    def wait_finished(self, job_id: int, timeout: float = 120) -> dict[str, object]:
        """The job's record once LAVA says it finished."""
        wait_for(f"LAVA job {job_id} to finish",
                 lambda: self.job(job_id).get("state") == "Finished", timeout)
        return self.job(job_id)

    def stop(self) -> None:
        """Stop every process by PID (the worker first), then PostgreSQL if this started it."""
        for name in ("worker", "scheduler", "publisher", "gunicorn"):
            if name in self.processes:
                stop_process(self.processes[name])
        if self.token:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                remove_token(self.token)
        if self.started_postgres and self.postgres is not None:
            self.postgres.stop()
        if self.logs is not None:
            shutil.copytree(self.logs, self.root / "logs", dirs_exist_ok=True)
            shutil.rmtree(self.logs, ignore_errors=True)


class FlakyProxy:
    """A reverse proxy to the lab that answers 502 to its first `failures` requests, as a
    load balancer in front of LAVA does while LAVA's web app restarts."""

    def __init__(self, target: str, failures: int) -> None:
        self.target, self.failures = target.rstrip("/"), failures
        self.answered: list[int] = []
        self.paths: list[str] = []  # of each request, as answered
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer 502 while failures are left, else pass the request on."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        if len(self.answered) < self.failures:
            status, data, kind = 502, b"Bad Gateway\n", "text/plain"
        else:
            headers = {k: v for k, v in handler.headers.items()
                       if k.lower() in ("authorization", "content-type")}
            answer = requests.request(handler.command, self.target + handler.path,
                                      data=body, headers=headers, timeout=60)
            status, data = answer.status_code, answer.content
            kind = answer.headers.get("Content-Type", "application/octet-stream")
        self.answered.append(status)
        self.paths.append(handler.path)
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def stop(self) -> None:
        """Stop the proxy."""
        self.server.shutdown()
        self.server.server_close()


def job_qemu_pids(job_id: int) -> list[int]:
    """QEMU processes of a LAVA job: their command line names the job's directory."""
    marker = f"/var/lib/lava/dispatcher/tmp/{job_id}/".encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"qemu-system" in text and marker in text:
            found.append(int(cmdline.parent.name))
    return found


def remove_token(token: str) -> None:
    """Remove the session's token of user `lkft` (tokens rm takes the token's id)."""
    for line in manage("tokens", "list", "--user", USER, "--csv").splitlines():
        fields = line.split(",")
        if len(fields) >= 2 and fields[1] == token:
            manage("tokens", "rm", fields[0])


def stop_process(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM the process group by the leader's PID, SIGKILL after `grace`, reap it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what the leader left in its group


def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    """Poll `check()` until true; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {timeout:g} s")
        time.sleep(0.2)


@contextlib.contextmanager
def lava_lab(root: Path) -> Iterator[LavaLab]:
    """A running LAVA lab (installed first if needed); everything stopped afterwards."""
    with machine_lock():
        install()
        lab = LavaLab(root)
        try:
            lab.start()
            yield lab
        finally:
            lab.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory() as tmp, lava_lab(Path(tmp)) as running:
        print(f"LAVA at {running.url} LKFT_LAVA_TOKEN={running.token}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
