"""`lkft cache fetch|stats|prune|serve`: the artifact cache from the command line."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from pytest_lkft.artifacts.cache import (
    DEFAULT_MAX_AGE,
    ArtifactCache,
    Progress,
    default_cache_dir,
    format_size,
    parse_size,
)
from pytest_lkft.errors import UserError

SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def size_argument(text: str) -> int:
    """argparse type for sizes such as 10G."""
    try:
        return parse_size(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the `fetch`, `stats`, `prune` and `serve` actions to `lkft cache`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", type=Path, default=None,
                        help="Cache directory (default $LKFT_CACHE_DIR, else ~/.cache/lkft)")
    actions = parser.add_subparsers(dest="cache_action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", parents=[common], help="Fetch a URL, print its path")
    fetch.add_argument("url", help="http(s) URL, file:// URL or local path")
    fetch.add_argument("--sha256", help="Expected sha256 of the content")
    fetch.add_argument("--cache-url", default=os.environ.get("LKFT_CACHE_URL"),
                       help="KissCache prefix, e.g. http://host:8001/api/v1/fetch/?url=%%s")
    actions.add_parser("stats", parents=[common], help="Show bytes fetched upstream and served")
    prune = actions.add_parser("prune", parents=[common],
                               help="Evict least recently used entries not in use")
    prune.add_argument("--max-size", type=size_argument, default=0,
                       help="Size to shrink the cache to, e.g. 10G (default 0: all unused)")
    serve = actions.add_parser("serve", parents=[common], help="Serve the cache like KissCache")
    serve.add_argument("--bind", default="127.0.0.1:8001", help="HOST:PORT to listen on")
    serve.add_argument("--allow", action="append", default=[], metavar="HOST",
                       help="Upstream host (or pattern, or *) clients may ask for; repeatable")
    serve.add_argument("--max-size", type=size_argument, default=None,
                       help="Evict least recently used entries beyond this size, e.g. 50G")
    serve.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE, metavar="SECONDS",
                       help="Revalidate cached artifacts with the origin after this long")


def run(args: argparse.Namespace) -> int:
    """Run one `lkft cache` action."""
    root = args.cache_dir or default_cache_dir()
    action = args.cache_action
    if action == "fetch":
        return run_fetch(root, args)
    if action == "stats":
        return run_stats(existing_cache(root))
    if action == "prune":
        cache = existing_cache(root)
        for url in cache.evict(args.max_size):
            print(f"removed {url}")
        print(f"{cache.root}: {format_size(cache.size())} left")
        return 0
    return run_serve(root, args)


def existing_cache(root: Path) -> ArtifactCache:
    """The cache at `root`, which must be one already: reading or pruning creates nothing."""
    if not (root.expanduser() / "entries").is_dir():
        raise UserError(f"no cache at {root}; check --cache-dir (nothing was created)")
    return ArtifactCache(root)


def run_fetch(root: Path, args: argparse.Namespace) -> int:
    """Fetch one URL and print the cached path; a malformed --sha256 is refused first."""
    if args.sha256 is not None and not SHA256.fullmatch(args.sha256):
        raise UserError(f"--sha256 {args.sha256!r} is not a sha256; give its 64 hexadecimal "
                        "digits")
    with ArtifactCache(root, cache_url=args.cache_url, progress=print_progress) as cache:
        print(cache.fetch(args.url, args.sha256))
    return 0


def run_stats(cache: ArtifactCache) -> int:
    """Print what the cache holds and its counters."""
    stats = cache.stats()
    ratio = stats["served_bytes"] / stats["upstream_bytes"] if stats["upstream_bytes"] else 0.0
    print(f"cache: {cache.root} ({len(cache.entries())} entries, {format_size(cache.size())})")
    print(f"fetched upstream: {format_size(stats['upstream_bytes'])}")
    print(f"served: {format_size(stats['served_bytes'])} ({ratio:.1f}x)")
    print(f"hits: {stats['hits']}, misses: {stats['misses']}")
    return 0


def run_serve(root: Path, args: argparse.Namespace) -> int:
    """Run the KissCache-compatible server until interrupted."""
    from pytest_lkft.artifacts.server import HostPolicy, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cache = ArtifactCache(root, max_size=args.max_size, max_age=args.max_age,
                          url_policy=HostPolicy(args.allow))
    serve(cache, args.bind, args.allow)
    return 0


def print_progress(progress: Progress) -> None:
    """Show download progress on stderr: one updating line on a terminal."""
    end = "\n" if progress.finished or not sys.stderr.isatty() else "\r"
    print(progress.format(), end=end, file=sys.stderr, flush=True)
