"""One LAVA job of a suite run: submitted, followed in a thread until it finished.

Lifecycle: `LavaJob(...)` writes the definition into the run directory; `start()` submits
it and starts the follower thread, which polls the job (state, health) and its log from
the last line read on, writing the console to `console.log` (and to the terminal once
`stream_to()` says so), the raw log to `lava-log.yaml`, feeding the crash detector;
`lava-job.json` says which job it is and how it ended. Looks come every POLL seconds
while there is news (a new state, new log lines) and back off to POLL_MAX while there is
none (a queued job, a quiet test): each look is a request the lab's web server pays for,
and LAVA's own worker sends a job's log in batches. While the job runs, its state is
read at every fifth look only; once the log has LAVA's last line (the `job` result) it
is whole, and only the state is read, every POLL seconds. When LAVA says
Finished, the follower reads the job's test cases (when it ran commands: they give
their exit statuses) and sets `done`. A job that stays in the queue past
the queue timeout is cancelled and says so; a lab that cannot be reached for the
client's whole retry time ends the follow with that error. `cancel()` asks LAVA to
cancel a job that has not finished (Ctrl-C, SIGTERM, the session's end).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from pytest_lkft.devices.console import TextSink
from pytest_lkft.devices.crash import CrashDetector
from pytest_lkft.devices.lava.client import LabUnreachable, LavaClient
from pytest_lkft.devices.lava.joblog import JobLog
from pytest_lkft.errors import LkftError
from pytest_lkft.files import write_atomically

POLL = 0.1  # seconds between looks at a job while there is news (each look: a request)
POLL_MAX = 0.5  # seconds between looks once nothing changed for a while (doubling up to it)
STATE_EVERY = 5  # while the log grows, the job's state at every 5th look (the log at each)
# Submits the run's job.yaml again; the token comes from the environment, never the file.
REPRODUCER = """#!/bin/sh
# submit this suite run's LAVA job again: job.yaml beside this file, token from $LKFT_LAVA_TOKEN
exec python3 - "$(dirname "$0")/job.yaml" <<'EOF'
import json, os, sys, urllib.request
request = urllib.request.Request(
    "{url}api/v0.2/jobs/", json.dumps({{"definition": open(sys.argv[1]).read()}}).encode(),
    {{"Authorization": "Token " + os.environ["LKFT_LAVA_TOKEN"],
     "Content-Type": "application/json"}})
print(urllib.request.urlopen(request).read().decode())
EOF
"""
QUEUED = ("Submitted", "Scheduling")


class LavaJob:
    """A job and what its follower learnt: state, health, log, test cases, error."""

    def __init__(self, client: LavaClient, definition: str, run_dir: Path,
                 detector: CrashDetector, contexts: Sequence[str], queue_timeout: float,
                 log_name: str = "lava-log.yaml", read_tests: bool = True) -> None:
        self.client, self.definition, self.run_dir = client, definition, run_dir
        self.queue_timeout, self.read_tests = queue_timeout, read_tests
        self.id: int | None = None
        self.state = "Unsubmitted"
        self.health = "Unknown"
        self.record: dict[str, Any] = {}
        self.error = ""  # why following failed (lab unreachable, queue timeout, refused)
        self.unreachable = False  # the lab could not be reached for the whole retry time
        self.tests: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.submitted_at = self.finished_at = 0.0
        self.submitted_wall: float | None = None  # wall clock (s since the epoch), as LAVA's
        self.results_wall: float | None = None  # times: when submitted, when all was read
        self.stream: TextSink | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancelled = False
        self._looks = 0
        self._pause = POLL
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "job.yaml").write_text(definition)
        write_atomically(run_dir / "reproducer.sh", REPRODUCER.format(url=client.url), 0o755)
        self.console_log = run_dir / "console.log"
        self.record_name = log_name.replace("lava-log", "lava-job").replace(".yaml", ".json")
        self._console: TextIO = self.console_log.open("a", encoding="utf-8", errors="replace")
        self._raw: TextIO = (run_dir / log_name).open("w", encoding="utf-8", errors="replace")
        self.log = JobLog(self._write_console, detector, contexts)

    @property
    def url(self) -> str:
        """The job's page in LAVA, or the lab's URL before it was submitted."""
        return self.client.job_url(self.id) if self.id is not None else self.client.url

    def start(self) -> None:
        """Submit the job and follow it in a thread; a failed submission ends it at once."""
        self.submitted_at, self.submitted_wall = time.monotonic(), time.time()
        try:
            self.id = self.client.submit(self.definition)
        except LkftError as error:
            self.unreachable = isinstance(error, LabUnreachable)
            self._finish(str(error))
            return
        self.state = "Submitted"
        self._record()
        self._thread = threading.Thread(target=self._follow, name=f"lkft-lava-{self.id}",
                                        daemon=True)
        self._thread.start()

    def abandon(self, error: str) -> None:
        """End the job without submitting it (the lab was found unreachable before)."""
        self.unreachable = True
        self._finish(error)

    def stream_to(self, stream: TextSink | None) -> None:
        """Send the console to `stream` too: what was logged so far, then as it comes."""
        if stream is None:
            return
        with self._lock:
            self._console.flush()
            stream.write(self.console_log.read_text(errors="replace"))
            stream.flush()
            self.stream = stream

    def _write_console(self, text: str) -> None:
        with self._lock:
            self._console.write(text)
            if self.stream is not None:
                self.stream.write(text)
                self.stream.flush()

    def _follow(self) -> None:
        assert self.id is not None
        try:
            while not self._poll(self.id):
                time.sleep(self._pause)
            if self.read_tests:
                self.tests = self.client.tests(self.id)
        except LkftError as error:
            self.unreachable = isinstance(error, LabUnreachable)
            self._finish(f"{error}; job {self.id}: {self.url}")
            return
        except Exception as error:  # noqa: BLE001  (a bug here must not hang the run)
            self._finish(f"following LAVA job {self.id} failed: {type(error).__name__}: "
                         f"{error}; see {self.url}")
            return
        self._finish("")

    def _poll(self, job_id: int) -> bool:
        """Read the job's state and new log lines; True once it finished. While it runs
        and its log is not whole, the state only every STATE_EVERY looks: its end shows in
        the log first (the `job` result), then the state is read at every look."""
        self._looks += 1
        if self.state == "Running" and not self.log.complete and self._looks % STATE_EVERY:
            self._back_off(self._read_log(job_id))
            return False
        self.record = self.client.job(job_id)
        state = self.state
        self.state, self.health = str(self.record.get("state")), str(self.record.get("health"))
        news = self.state != state
        if self.state not in QUEUED and not self.log.complete:  # a queued job has none
            news |= self._read_log(job_id)  # after the state: a finished job's log is whole
        self._back_off(news or self.log.complete)  # whole: the state changes any moment
        overdue = time.monotonic() - self.submitted_at > self.queue_timeout
        if self.state == "Finished":
            if overdue and self.health == "Canceled" and not self.record.get("actual_device"):
                self.error = self._queue_timeout(job_id)  # LAVA cancelled it first
            return True
        if self.state in QUEUED and overdue and not self._cancelled:
            self.error = self._queue_timeout(job_id)
            self.cancel()
        return False

    def _queue_timeout(self, job_id: int) -> str:
        """Why a job that never left the queue was cancelled (by this run or by LAVA: the
        job's own queue timeout is the run's)."""
        return (f"LAVA job {job_id} waited in the queue for more than {self.queue_timeout:g} s "
                f"(no free {self._device_type()} device); cancelled it: {self.url}")

    def _back_off(self, news: bool) -> None:
        """The pause before the next look: POLL after news, else twice the last, at most
        POLL_MAX."""
        self._pause = POLL if news else min(self._pause * 2, POLL_MAX)

    def _read_log(self, job_id: int) -> bool:
        """Read the log's new lines; True when there were some."""
        text = self.client.logs(job_id, self.log.lines)
        complete = text[: text.rfind("\n") + 1]  # a partial last line comes again next time
        if complete:
            self._raw.write(complete)
            self.log.feed(complete)
            with self._lock:  # readers of the run directory see the job as it runs
                self._console.flush()
                self._raw.flush()
        return bool(complete)

    def _device_type(self) -> str:
        try:
            return str(yaml.safe_load(self.definition).get("device_type"))
        except yaml.YAMLError:
            return "matching"

    def _record(self) -> None:
        """`lava-job.json` (beside `lava-log.yaml`): the job's id, link, state, health."""
        write_atomically(self.run_dir / self.record_name, json.dumps(
            {"id": self.id, "url": self.url, "state": self.state, "health": self.health,
             "error": self.error, "submitted_at": self.submitted_wall,
             "results_at": self.results_wall}, indent=2) + "\n")

    def _finish(self, error: str) -> None:
        self.error = self.error or error
        self.finished_at, self.results_wall = time.monotonic(), time.time()
        self._record()
        with self._lock:
            self._console.close()
            self._raw.close()
            self.stream = None
        self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the follower (Ctrl-C interrupts it); True once done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    def cancel(self) -> None:
        """Ask LAVA to cancel the job unless it finished; never raises (best effort)."""
        if self.id is None or self.state == "Finished" or self._cancelled:
            return
        self._cancelled = True
        quick = LavaClient(self.client.url, self.client.token, retry_for=2.0)
        try:
            quick.cancel(self.id)
        except LkftError:
            pass

    @property
    def cancelled(self) -> bool:
        """True once this run asked LAVA to cancel the job."""
        return self._cancelled
