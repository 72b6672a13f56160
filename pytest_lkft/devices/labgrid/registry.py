"""The places this host's processes hold, one small file per lease, for when one dies.

A process killed by SIGKILL (an xdist worker, an OOM kill) runs no cleanup, and labgrid
keeps its place acquired for ever: the coordinator records only `host/user`. So each
lease writes `<directory>/<token>.json` (coordinator, reservation token, place, host,
PID and the process's start time) once it holds a reservation, again once the place is
acquired, and removes it when released. Another process (the xdist controller when a
worker goes down, or the next run) reads the records of processes of this host that
are gone (`LeaseRegistry.stale`) and releases their places (`lease.release_stale`).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_lkft.files import write_atomically


def process_start(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc), or "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_gone(pid: int, started: str = "") -> bool:
    """True unless process `pid` (started at `started`, when given) still runs here.

    A zombie (killed, not yet reaped by its parent) is gone; so is a PID now reused by a
    process that started at another time.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: it exists
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False  # no /proc here: it answered the signal, so it runs
    return fields[0] in ("Z", "X") or bool(started) and fields[19] != started


@dataclass(frozen=True)
class LeaseRecord:
    """One lease of a process: its reservation, and its place once acquired."""

    address: str
    token: str
    place: str = ""
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: str = field(default_factory=lambda: process_start(os.getpid()))

    def gone(self) -> bool:
        """True when the process that holds this lease ran on this host and is gone."""
        return self.host == socket.gethostname() and process_gone(self.pid, self.started)


class LeaseRegistry:
    """The lease records in one directory (the artifact cache's `labgrid-leases/`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, token: str) -> Path:
        """The file of the lease with reservation `token`."""
        return self.directory / f"{token}.json"

    def record(self, record: LeaseRecord) -> None:
        """Write (or rewrite) the record of a lease."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path(record.token), json.dumps(asdict(record)) + "\n")

    def forget(self, token: str) -> None:
        """Remove the record of a lease that was released."""
        self.path(token).unlink(missing_ok=True)

    def records(self, address: str) -> list[LeaseRecord]:
        """The leases recorded for the coordinator at `address` (unreadable files skipped)."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = LeaseRecord(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # being written, or not ours
            if record.address == address:
                found.append(record)
        return found

    def stale(self, address: str) -> list[LeaseRecord]:
        """The leases on `address` whose process, on this host, is gone."""
        return [record for record in self.records(address) if record.gone()]
