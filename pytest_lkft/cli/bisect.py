"""`lkft bisect` and `lkft bisect-step`: from a regression to the first bad commit.

`lkft bisect` runs a whole bisection in a worktree of its own (`pytest_lkft.bisect`);
`lkft bisect-step` tests the tree's checkout once, for `git bisect run`: exit 0 good, 1
bad, 125 skip, and 128 (git bisect run stops) for bad input or a flaky step. Build options
are `lkft build`'s, device options the plugin's without `--lkft-`; each may also come
from its `LKFT_*` variable, and reaches the steps' pytest as its `--lkft-*` option.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from pytest_lkft.artifacts.entry import default_cache_dir
from pytest_lkft.bisect import git
from pytest_lkft.bisect.known import Known, SquadReader, from_squad, from_store
from pytest_lkft.bisect.run import Bisector, one_step
from pytest_lkft.bisect.selection import Selection
from pytest_lkft.bisect.state import STATE_FILE, Bisection, Layout, check_name
from pytest_lkft.bisect.verdict import FLAKY_CHOICES
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.reporting.settings import default_store_path
from pytest_lkft.reporting.store import Store
from pytest_lkft.settings.options import BY_DEST, Resolver

# the plugin's options a step's pytest gets, by destination -> this command's flag
BUILD_OPTIONS = {"lkft_target_arch": "--target-arch", "lkft_toolchain": "--toolchain",
                 "lkft_kconfig": "--kconfig", "lkft_kconfig_add": "--kconfig-add",
                 "lkft_build_targets": "--targets", "lkft_make_var": "--make-var"}
DEVICE_OPTIONS = ("lkft_rootfs", "lkft_kselftest", "lkft_dtb", "lkft_boot_args",
                  "lkft_qemu_binary", "lkft_timeouts", "lkft_lab_dir", "lkft_ltp",
                  "lkft_ltp_runtest", "lkft_ltp_skipfile", "lkft_ltp_shard", "lkft_lab",
                  "lkft_coordinator", "lkft_place_timeout", "lkft_cache_url")
RESUME_KEEPS = ("name", "flaky", "repeat", "store", "cache_dir", "resume", "command", "run")
ABORT, INTERRUPTED = 128, 130


def forwarded() -> dict[str, str]:
    """Destination -> flag of every plugin option these commands pass on."""
    flags = dict(BUILD_OPTIONS)
    for dest in DEVICE_OPTIONS:
        flags[dest] = "--" + BY_DEST[dest].flag.removeprefix("--lkft-")
    return flags


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The options of `lkft bisect` or `lkft bisect-step`."""
    parser.add_argument("--tree", type=Path, default=Path("."),
                        help="Kernel git checkout (default: .); never written to")
    if name == "bisect":
        add_range_arguments(parser)
    parser.add_argument("--device", dest="lkft_device", action="append", default=[],
                        metavar="NAME", help="Device to test on, e.g. qemu-arm64 (one; env "
                        "LKFT_DEVICE)")
    parser.add_argument("--test", action="append", default=[], metavar="SELECTION",
                        help="Case(s) to judge, as results name them: SUITE/CASE, SUITE or a "
                        "glob, e.g. kunit/list-kunit-test.list_test_list_init; repeatable")
    for dest, flag in forwarded().items():
        option = BY_DEST[dest]
        action = "append" if option.kind == "list" else "store"
        parser.add_argument(flag, dest=dest, action=action, metavar=option.metavar,
                            help=option.help_text())
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="Run the selection N times a step; runs that disagree are flaky")
    parser.add_argument("--flaky", choices=FLAKY_CHOICES, default=None,
                        help="Count a flaky step as bad, good or skip (default: stop)")
    parser.add_argument("--name", default=None, help="The bisection's name: project "
                        "bisect/NAME of the store (default: from the revisions and options)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"Cache for worktrees, builds and artifacts (default "
                        f"{default_cache_dir()})")
    parser.add_argument("--store", type=Path, default=None,
                        help=f"Results store (default {default_store_path()})")


def add_range_arguments(parser: argparse.ArgumentParser) -> None:
    """The ends of a bisection: revisions, known builds, or a bisection to resume."""
    parser.add_argument("--good", default=None, metavar="REV", help="A revision that passes")
    parser.add_argument("--bad", default=None, metavar="REV", help="A revision that fails")
    parser.add_argument("--from-store", default=None, metavar="GROUP/PROJECT",
                        help="Take the revisions and the selection from two builds of this "
                        "project (--good-build, --bad-build) in the store")
    parser.add_argument("--good-build", default=None, metavar="BUILD",
                        help="The passing build of --from-store's project")
    parser.add_argument("--bad-build", default=None, metavar="BUILD",
                        help="The failing build of --from-store's project")
    parser.add_argument("--squad-url", default=None, metavar="URL",
                        help="Read --from-store's project from this SQUAD server instead")
    parser.add_argument("--resume", action="store_true",
                        help="Continue a bisection (--name, default the latest) from its "
                        "recorded steps")


def run(args: argparse.Namespace) -> int:
    """Run `lkft bisect` or `lkft bisect-step`; SIGTERM stops them as Ctrl-C does."""
    signal.signal(signal.SIGTERM, interrupt)
    if args.command == "bisect-step":
        return run_step(args)
    try:
        return run_bisect(args)
    except KeyboardInterrupt:
        print("lkft bisect: interrupted; the steps done are recorded: continue with "
              "`lkft bisect --resume" + (f" --name {args.name}`" if args.name else "`"),
              file=sys.stderr)
        return INTERRUPTED


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as a KeyboardInterrupt, so a step's devices are stopped the same way."""
    raise KeyboardInterrupt


def run_bisect(args: argparse.Namespace) -> int:
    """A whole bisection (see `pytest_lkft.bisect.run`)."""
    cache = (args.cache_dir or default_cache_dir()).expanduser().resolve()
    with Store(args.store or default_store_path()) as store:
        bisection = resumed(args, cache) if args.resume else started(args, store)
        args.name = bisection.name
        layout = Layout(cache, bisection.name, git.repository(Path(bisection.tree)))
        saved = layout.load()
        if saved is not None:
            check_same(saved, bisection)
        layout.save(bisection)
        return Bisector(bisection, layout, store, cache, sys.stdout).run()


def check_same(saved: Bisection, given: Bisection) -> None:
    """A name already used must be the same bisection (--flaky and --repeat may change)."""
    changed = [field for field in saved.differences(given) if field not in ("flaky", "repeat")]
    if changed:
        raise UserError(f"bisection {given.name} was started with another "
                        f"{', '.join(changed)}; continue it with `lkft bisect --resume --name "
                        f"{given.name}` or pass another --name")


def started(args: argparse.Namespace, store: Store) -> Bisection:
    """A bisection from the command line: checked here, before anything is built."""
    tree = args.tree.expanduser().resolve()
    git.repository(tree)
    known = known_builds(args, store)
    good = revision(tree, args.good, "--good", known.good)
    bad = revision(tree, args.bad, "--bad", known.bad)
    if good == bad:
        raise UserError(f"the good and the bad revision are the same commit {good[:12]}; "
                        "pass --good an older revision")
    if not git.is_ancestor(tree, good, bad):
        raise UserError(f"the good revision {args.good or good[:12]} is not an ancestor of "
                        f"the bad revision {args.bad or bad[:12]}; pass --good an older "
                        "revision of the bad one's history")
    selection = Selection.parse(args.test or known.tests)
    bisection = Bisection("", str(tree), good, bad, one_device(args, known),
                          selection.as_args(), pytest_args(args), args.repeat or 1, args.flaky,
                          known.origin)
    bisection.name = check_name(args.name or default_name(bisection))
    return bisection


def resumed(args: argparse.Namespace, cache: Path) -> Bisection:
    """The saved bisection to continue (--name, or the latest), with --flaky/--repeat."""
    given = [key for key, value in vars(args).items()
             if key not in RESUME_KEEPS and value not in (None, [], False, Path("."))]
    if given:
        raise UserError(f"--resume takes the bisection's own options; drop --"
                        f"{given[0].removeprefix('lkft_').replace('_', '-')} (only --name, "
                        "--flaky, --repeat, --store and --cache-dir go with it)")
    states = sorted((cache / "bisect").glob(f"{args.name or '*'}/{STATE_FILE}"),
                    key=lambda path: path.stat().st_mtime)
    if not states:
        which = f"named {args.name} " if args.name else ""
        raise UserError(f"no bisection {which}to resume under {cache / 'bisect'}; start one "
                        "with --good and --bad")
    saved = json.loads(states[-1].read_text())
    saved.update({k: v for k, v in (("flaky", args.flaky), ("repeat", args.repeat)) if v})
    return Bisection(**saved)


def known_builds(args: argparse.Namespace, store: Store) -> Known:
    """What --from-store's two builds say (from the store, or SQUAD with --squad-url);
    nothing without --from-store."""
    if not args.from_store:
        if args.good is None or args.bad is None:
            raise UserError("lkft bisect needs --good REV and --bad REV, or --from-store "
                            "PROJECT --good-build A --bad-build B")
        return Known()
    if not args.good_build or not args.bad_build:
        raise UserError(f"--from-store {args.from_store} needs --good-build and --bad-build")
    device = args.lkft_device[0] if args.lkft_device else None
    if args.squad_url:
        return from_squad(SquadReader(args.squad_url), args.from_store, args.good_build,
                          args.bad_build, device)
    return from_store(store, args.from_store, args.good_build, args.bad_build, device)


def revision(tree: Path, given: str | None, option: str, candidates: list[str]) -> str:
    """The commit `given` names, else the first known candidate the tree has."""
    if given is not None:
        return git.resolve(tree, given, option)
    for candidate in candidates:
        try:
            return git.resolve(tree, candidate, option)
        except UserError:
            continue
    raise UserError(f"{option}: the build's metadata names no revision of {tree} "
                    f"(tried {', '.join(candidates)}); pass {option} REV")


def one_device(args: argparse.Namespace, known: Known) -> str:
    """The one device to bisect on: --device (or LKFT_DEVICE), else the regressions'."""
    devices = list(resolver(args).values("lkft_device").value) or known.devices
    if len(devices) != 1:
        raise UserError(f"a bisection runs on one device; pass --device NAME (given: "
                        f"{', '.join(devices) or 'none'})")
    return str(devices[0])


def resolver(args: argparse.Namespace) -> Resolver:
    """The plugin's resolver on these arguments: command line, then LKFT_* variables."""
    return Resolver(lambda dest: getattr(args, dest, None))


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The build and device options as the plugin's `--lkft-*` options."""
    options, found = resolver(args), []
    for dest in forwarded():
        option = BY_DEST[dest]
        if option.kind == "list":
            found += [f"{option.flag}={absolute(v)}" for v in options.values(dest).value]
        elif options.value(dest).value is not None:
            found.append(f"{option.flag}={absolute(options.value(dest).value)}")
    return found


def absolute(value: str) -> str:
    """A value naming a file here, made absolute: the steps run in directories of their
    own. Anything else (a make target, a URL, CONFIG_X=y) as it is."""
    path = Path(value).expanduser()
    if not path.is_absolute() and path.exists():
        return str(path.resolve())
    return value


def default_name(bisection: Bisection) -> str:
    """`<bad>-<device>-<digest of the rest>`: the same command names the same bisection."""
    digest = hashlib.sha256(json.dumps([bisection.tree, bisection.good, bisection.tests,
                                        bisection.pytest_args]).encode()).hexdigest()
    return f"{bisection.bad[:12]}-{bisection.device}-{digest[:6]}"


def run_step(args: argparse.Namespace) -> int:
    """`lkft bisect-step`: test the tree's HEAD once; git bisect run's exit codes."""
    try:
        return step_at_head(args)
    except LkftError as error:
        print(f"lkft bisect-step: error: {error}", file=sys.stderr)
        return ABORT
    except KeyboardInterrupt:
        print("lkft bisect-step: interrupted", file=sys.stderr)
        return INTERRUPTED


def step_at_head(args: argparse.Namespace) -> int:
    """Check the options, run the step, record and print it; its exit code."""
    tree = args.tree.expanduser().resolve()
    repo = git.repository(tree)
    selection = Selection.parse(args.test)
    device = one_device(args, Known())
    cache = (args.cache_dir or default_cache_dir()).expanduser().resolve()
    name = check_name(args.name or f"{tree.name}-{device}")
    options: dict[str, Any] = {"repeat": args.repeat or 1, "flaky": args.flaky}
    with Store(args.store or default_store_path()) as store:
        verdict = one_step(Layout(cache, name, repo), store, tree, device, selection,
                           pytest_args(args), cache, sys.stdout, **options)
    return verdict.exit_code
