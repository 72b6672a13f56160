"""`lkft push`: send the submissions spooled when SQUAD could not be reached.

Each spooled run keeps its job_id, so a run SQUAD already has is answered "already
submitted" and removed: none is lost and none is sent twice.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.reporting.settings import spool_dir
from pytest_lkft.reporting.squad import SquadClient, SubmitError, load_spooled, spooled
from pytest_lkft.settings.options import TOKEN_ENV


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the options of `lkft push`."""
    parser.add_argument("--spool", default=None, help=f"Spool directory (default {spool_dir()})")
    parser.add_argument("--url", default=None, help="SQUAD server (default the one spooled with)")


def push_one(path: Path, url: str | None) -> bool:
    """Send one spooled submission; remove it once SQUAD has it."""
    sub, spooled_url = load_spooled(path)
    client = SquadClient(url or spooled_url)
    where = f"{sub.group}/{sub.project}/{sub.build}/{sub.environment}"
    try:
        outcome = client.submit(sub)
    except SubmitError as error:
        print(f"{where}: still not submitted ({error}); kept in {path}")
        return False
    shutil.rmtree(path)
    print(f"{where}: {outcome} to {client.url} (job_id {sub.job_id})")
    return True


def run(args: argparse.Namespace) -> int:
    """Push every spooled submission, oldest first; exit 1 if any is left."""
    root = Path(args.spool) if args.spool else spool_dir()
    if not root.is_dir():
        print(f"nothing spooled in {root}")
        return 0
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise UserError(f"another `lkft push` is using {root}; wait for it") from error
        paths = spooled(root)
        if not paths:
            print(f"nothing spooled in {root}")
            return 0
        if not os.environ.get(TOKEN_ENV):
            raise UserError(f"{TOKEN_ENV} is empty: set it to the SQUAD token, then `lkft push`"
                            f" ({len(paths)} spooled in {root})")
        sent = sum(push_one(path, args.url) for path in paths)
    print(f"pushed {sent} of {len(paths)} spooled submissions")
    return 0 if sent == len(paths) else 1
