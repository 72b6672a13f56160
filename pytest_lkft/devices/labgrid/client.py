"""labgrid-client as a subprocess: for calls made where labgrid's session cannot run
(a signal handler interrupted it) and to find labgrid's other tools.

Calls in flight are tracked, so a signal handler can stop a waiting reservation and let
an acquire or release finish (`finish_running_clients`).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from pytest_lkft.errors import InfraError, UserError

CLIENT_TIMEOUT = 60.0
_RUNNING: list[subprocess.Popen[str]] = []  # labgrid-client calls in flight


def labgrid_tool(name: str) -> str:
    """A labgrid command: beside this Python (a venv not on PATH), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def start_client(address: str, *args: str) -> subprocess.Popen[str]:
    """Start labgrid-client against `address` (see `finish_client`)."""
    command = [labgrid_tool("labgrid-client"), "-x", address, *args]
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        missing = "labgrid-client not found: install labgrid (pip install labgrid)"
        raise UserError(missing) from None
    _RUNNING.append(process)
    return process


def finish_client(process: subprocess.Popen[str], timeout: float = CLIENT_TIMEOUT) -> str:
    """Its stdout once it exits, or one-line InfraError; TimeoutExpired leaves it running."""
    stdout, stderr = process.communicate(timeout=timeout)
    if process in _RUNNING:
        _RUNNING.remove(process)
    if process.returncode == 0:
        return stdout
    address = str(process.args[2])  # type: ignore[index]
    if "Could not connect to coordinator" in stderr:
        raise InfraError(f"cannot reach the labgrid coordinator at {address}; start "
                         "labgrid-coordinator there or pass --lkft-coordinator ADDRESS")
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    raise InfraError(f"{shlex.join(process.args)} failed: {last}")  # type: ignore[arg-type]


def stop_client(process: subprocess.Popen[str]) -> None:
    """Kill a labgrid-client call and reap it."""
    process.kill()
    process.communicate()
    if process in _RUNNING:
        _RUNNING.remove(process)


def labgrid_client(address: str, *args: str, timeout: float = CLIENT_TIMEOUT) -> str:
    """Run labgrid-client against `address`; its stdout, or one-line InfraError."""
    process = start_client(address, *args)
    try:
        return finish_client(process, timeout)
    except subprocess.TimeoutExpired:
        stop_client(process)
        raise


def finish_running_clients(timeout: float = CLIENT_TIMEOUT) -> None:
    """A signal came: stop waiting for a place, let other calls (an acquire) complete."""
    for process in list(_RUNNING):
        if "reserve" in process.args:  # type: ignore[operator]
            stop_client(process)
            continue
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_client(process)
