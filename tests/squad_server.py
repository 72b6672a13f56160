"""A real SQUAD server for the tests: installed from PyPI into its own venv, run on 127.0.0.1.

Found by running SQUAD 1.98 here: importing its frontend runs a script that downloads web
assets, so the venv gets empty placeholder files (and the script's status file saying they
are current); SQLite needs one worker; `squad-admin get_token GROUP/PROJECT` creates the
group, the project and a token; submits are slow until SQLite has statistics (ANALYZE).
Without a celery broker the submit is processed inside the request.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

SQUAD_VERSION = "1.98"
CLIENTS = ("squad-client==0.45", "squad-report==1.9.0")  # SQUAD's own clients
STARTUP_TIMEOUT = 180
TEST_CACHE = Path(os.environ.get("LKFT_TEST_CACHE") or Path.home() / ".cache" / "lkft-test")


def venv_python(venv: Path) -> Path:
    """The venv's python."""
    return venv / "bin" / "python"


def static_dir(venv: Path) -> Path:
    """SQUAD's frontend static directory inside the venv."""
    found = sorted(venv.glob("lib/python*/site-packages/squad/frontend/static"))
    if not found:
        raise RuntimeError(f"squad is not installed in {venv}; remove it to reinstall")
    return found[0]


def placeholder_assets(venv: Path) -> None:
    """Create empty web assets and mark them downloaded, so importing SQUAD fetches nothing."""
    static = static_dir(venv)
    status = []
    for line in (static / "download.conf").read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or len(parts) < 2:
            continue
        target = static / parts[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        if parts[1].endswith((".js", ".css")):
            target.touch()
        else:
            target.mkdir(exist_ok=True)
        status.append(" ".join(parts))
    (static / "download.status").write_text("\n".join(status) + "\n")


def install_squad(cache: Path = TEST_CACHE) -> Path:
    """Install squad into `cache/squad-venv` once (locked); return the venv."""
    venv = cache / "squad-venv"
    marker = venv / f".squad-{SQUAD_VERSION}-ready"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "squad-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", f"squad=={SQUAD_VERSION}"]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(pip)}` failed:\n{done.stderr[-3000:]}")
        placeholder_assets(venv)
        marker.touch()
    return venv


def install_clients(cache: Path = TEST_CACHE) -> Path:
    """Install squad-client and squad-report into `cache/squad-clients-venv` once (locked)."""
    venv = cache / "squad-clients-venv"
    marker = venv / (".ready-" + "-".join(CLIENTS).replace("=", ""))
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "squad-clients-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", *CLIENTS]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(pip)}` failed:\n{done.stderr[-3000:]}")
        marker.touch()
    return venv


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SquadServer:
    """A SQUAD on 127.0.0.1 with its own SQLite database; start(), then stop() by PID."""

    def __init__(self, venv: Path, data: Path) -> None:
        self.venv = venv
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = data / "squad.sqlite3"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """Environment for squad commands: our database, no broker, quiet logs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQUAD_", "LKFT_"))}
        env.update(
            DATABASE=f"ENGINE=django.db.backends.sqlite3:NAME={self.db}",
            SQUAD_STATIC_DIR=str(self.data / "static"),
            SECRET_KEY="lkft-test-only",
            ENV="production",
            SQUAD_LOG_LEVEL="WARNING",
        )
        return env

    def admin(self, *args: str) -> str:
        """Run `squad-admin ARGS` against this server's database; return stdout."""
        cmd = [str(self.venv / "bin" / "squad-admin"), *args]
        done = subprocess.run(cmd, env=self.env(), capture_output=True, text=True,
                              cwd=self.data)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def migrate(self) -> None:
        """Create the database, copying a migrated template kept beside the venv."""
        template = self.venv / f"migrated-{SQUAD_VERSION}.sqlite3"
        if not template.exists():
            self.admin("migrate", "-v", "0")
            shutil.copyfile(self.db, template)
        else:
            shutil.copyfile(template, self.db)

    def superuser_token(self, name: str, token: str) -> str:
        """Create a superuser with this API token (known issues and environments need one)."""
        self.admin("users", "add", name, "--superuser", "--passwd", "lkft-test-only")
        self.admin("users", "set-token", name, token)
        return token

    def token(self, project: str) -> str:
        """Create group/project if needed and return a submit token for it."""
        return self.admin("get_token", project).strip().splitlines()[-1]

    def start(self) -> None:
        """Start gunicorn with one worker and wait until the API answers."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.migrate()
        cmd = [str(venv_python(self.venv)), "-m", "gunicorn.app.wsgiapp", "squad.wsgi",
               "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "600"]
        log = open(self.data / "squad.log", "wb")  # noqa: SIM115 - kept open for the server
        # cwd: SQUAD keeps attachments and test run files in ./storage
        self.process = subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=log,
                                        cwd=self.data)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"squad exited; see {self.data / 'squad.log'}")
            try:  # the first request loads Django: slow on a busy 2-core machine
                if requests.get(self.url + "/api/", timeout=60).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"squad did not answer in {STARTUP_TIMEOUT} s; "
                           f"see {self.data / 'squad.log'}")

    def analyze(self) -> None:
        """Give SQLite statistics (submits are 10x slower without them)."""
        with sqlite3.connect(self.db) as db:
            db.execute("ANALYZE")

    def stop(self) -> None:
        """Stop the server by its PID."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def get(self, path: str, **params: str | int) -> dict[str, object]:
        """GET a SQUAD REST API path (or full URL) as JSON."""
        url = path if path.startswith("http") else self.url + path
        response = requests.get(url, params=params, timeout=60)
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    def get_all(self, path: str, **params: str | int) -> list[dict[str, object]]:
        """GET every page of a paginated SQUAD list."""
        found: list[dict[str, object]] = []
        page: dict[str, object] | None = self.get(path, limit=1000, **params)
        while page is not None:
            found += page["results"]  # type: ignore[arg-type]
            following = page.get("next")
            page = self.get(str(following)) if following else None
        return found
