"""`lkft serve`: the embedded store over HTTP (SQUAD's submit endpoint and web pages)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.reporting import knownissues
from pytest_lkft.reporting.server import StoreServer
from pytest_lkft.reporting.settings import default_store_path
from pytest_lkft.settings.options import TOKEN_ENV


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the options of `lkft serve`."""
    parser.add_argument("--store", default=None,
                        help=f"Store file (default {default_store_path()})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="Port, 0 for any free one (default 8000)")
    parser.add_argument("--known-issues", default=None, help="YAML file of known issues")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; submissions need the token in $LKFT_SQUAD_TOKEN."""
    token = os.environ.get(TOKEN_ENV, "")
    store = Path(args.store) if args.store else default_store_path()
    issues = knownissues.load(args.known_issues) if args.known_issues else []
    try:
        server = StoreServer((args.host, args.port), store, token, issues)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from error
    port = server.server_address[1]
    print(f"serving {store} on http://{args.host}:{port}/", flush=True)
    if not token:
        print(f"submissions are refused: set {TOKEN_ENV} to the token clients must send",
              flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
