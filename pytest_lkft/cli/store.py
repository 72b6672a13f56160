"""`lkft compare BASE TARGET`, `lkft builds`, `lkft show BUILD`: read the embedded store."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Counts
from pytest_lkft.reporting.settings import default_project, default_store_path
from pytest_lkft.reporting.store import BuildSummary, Comparison, Store, split_project

COLUMNS = ("tests", "pass", "skip", "fail", "xfail")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the options of `lkft compare`, `lkft builds` or `lkft show`."""
    parser.add_argument(
        "--store", default=None, help=f"Store file (default {default_store_path()})"
    )
    parser.add_argument(
        "--project", default=None, help="GROUP/PROJECT in the store (default: its only project)"
    )
    if name == "compare":
        parser.add_argument("base", metavar="BASE", help="Build to compare from")
        parser.add_argument("target", metavar="TARGET", help="Build to compare to")
    elif name == "show":
        parser.add_argument("build", metavar="BUILD", help="Build version to show")
    elif name == "builds":
        parser.add_argument("--delete", metavar="BUILD", default=None,
                            help="Delete this build with its test runs, tests and metrics")


def open_store(args: argparse.Namespace) -> Store:
    """Open the store the arguments name; refuse a path that does not exist."""
    path = Path(args.store) if args.store else default_store_path()
    if not path.exists():
        raise UserError(f"no store at {path}; run pytest with the lkft plugin or pass --store")
    return Store(path)


def pick_project(store: Store, given: str | None) -> tuple[str, str]:
    """Use --project, else the store's only project, else the default name."""
    if given:
        return split_project(given)
    projects = store.projects()
    if len(projects) == 1:
        return projects[0]
    if len(projects) > 1:
        names = ", ".join(f"{g}/{p}" for g, p in projects)
        raise UserError(f"the store has several projects ({names}); choose one with --project")
    return split_project(default_project())


def squad_row(counts: Counts) -> tuple[int, ...]:
    """SQUAD's columns for counts: errors count as fail, as SQUAD receives them."""
    return (counts.total, counts.passed, counts.skipped, counts.failed + counts.errors,
            counts.xfailed)


def format_builds(summaries: list[BuildSummary]) -> list[str]:
    """Render `lkft builds` lines: one build a line with SQUAD's columns."""
    lines = [f"{'build':<30} {'date':<16} " + " ".join(f"{c:>7}" for c in COLUMNS) + "   time"]
    for s in summaries:
        date = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.created_at))
        cols = " ".join(f"{n:>7}" for n in squad_row(s.counts))
        lines.append(f"{s.version:<30} {date:<16} {cols} {s.duration:>6.1f}s")
    return lines


def format_comparison(c: Comparison) -> list[str]:
    """Render `lkft compare` lines: regressions, fixes, flaky, missing."""
    lines = [f"{c.base} -> {c.target}: {len(c.regressions)} regressions, {len(c.fixes)} fixes,"
             f" {len(c.flaky)} flaky, {len(c.missing)} missing, {len(c.new)} new"]
    for title, changes in (("regressions", c.regressions), ("fixes", c.fixes)):
        if changes:
            lines.append(f"{title}:")
            lines += [f"  {x.environment}: {x.name} ({x.before} -> {x.after})" for x in changes]
    for title, keys in (("flaky (pass and fail in one build)", c.flaky),
                        ("missing from target", c.missing)):
        if keys:
            lines.append(f"{title}:")
            lines += [f"  {k.environment}: {k.name}" for k in keys]
    return lines


def show_lines(store: Store, group: str, project: str, version: str) -> list[str]:
    """Render `lkft show BUILD`: counts, then failing tests with their environment."""
    counts = store.counts(group, project, version)
    lines = [f"{group}/{project} {version}: "
             + ", ".join(f"{c} {n}" for c, n in zip(COLUMNS, squad_row(counts), strict=True))]
    failing = [t for t in store.tests(group, project, version) if t.result in ("fail", "error")]
    lines += [f"  {t.result.upper():<5} {t.environment}: {t.name}" for t in failing]
    return lines


def run(args: argparse.Namespace) -> int:
    """Print builds, one build, or a comparison; compare exits 1 when there are regressions."""
    with open_store(args) as store:
        group, project = pick_project(store, args.project)
        if args.command == "builds" and args.delete:
            gone = store.delete_build(group, project, args.delete)
            print(f"deleted build {args.delete} of {group}/{project} ({gone} tests)")
            return 0
        if args.command == "builds":
            print("\n".join(format_builds(store.builds(group, project))))
            return 0
        if args.command == "show":
            print("\n".join(show_lines(store, group, project, args.build)))
            return 0
        comparison = store.compare(group, project, args.base, args.target)
        print("\n".join(format_comparison(comparison)))
        return 1 if comparison.regressions else 0
