"""An LTP install tarball and the plan of an LTP run: runtest files, skipfile, shard.

The tarball holds the `/opt/ltp` tree (`runtest/<name>`, `testcases/bin/`, optionally
`kirk` or `runltp`), either with `opt/ltp/` in its member names (`make install
DESTDIR=...`) or relative to it. It is laid over the rootfs at /opt/ltp. The plan of
each runtest file is worked out here, on the host, so that every runner (kirk, runltp,
our own `data/ltp-runner.sh`) runs the same tests and the case list is known before the
run:

- a runtest line is `TAG COMMAND [ARGS...]`; blank lines and `#` comments are no test;
- a shard `INDEX/TOTAL` (tuxrun's `shardindex`/`shardnumber`, 1-based) keeps the
  INDEX-th test and every TOTAL-th after it;
- a skipfile tag (one a line, first word, `#` comments: runltp's `-S` file) keeps its
  place but its command becomes `exit 32` with a TCONF line, as runltp -S does, so
  it is a skip saying why rather than a test that vanishes.

The plans go into a second overlay: `lkft/ltp/runtest/<name>` and the runner script.

Without a tarball, LTP is the rootfs's own /opt/ltp (as LKFT's rootfs carries it) and
its runtest files cannot be read before the run: `rootfs_setup` is then a shell command
that writes the runner, the shard and the skipfile tags under /lkft through the
console (here-documents, so it works on any rootfs: cpio, ext4, a board's), and the
runner makes the plan on the device, the same way `plan` does here.
"""

from __future__ import annotations

import gzip
import re
import shlex
import stat
import tarfile
from importlib.resources import files
from pathlib import Path, PurePosixPath

from pytest_lkft.errors import UserError
from pytest_lkft.provision.rootfs import Entry, stored_overlay, tarball_overlay_file, write_cpio
from pytest_lkft.provision.stages import StageContext, Staged
from pytest_lkft.settings.device import Shard

LTP_PREFIX = "opt/ltp"
PLAN_DIR = "lkft/ltp/runtest"
RUNNER = "lkft/ltp-runner.sh"
SETTINGS = "lkft/ltp/settings"  # its presence tells the runner to make the plan itself
SKIP_TAGS = "lkft/ltp/skipfile"
HEREDOC_END = "LKFT_LTP_EOF"
# LKFT's LTP suites (tuxrun `ltp-*` tests), run by default when the tarball has them.
LKFT_RUNTESTS = ("cap_bounds", "commands", "containers", "controllers", "crypto", "cve",
                 "fcntl-locktests", "fs", "fs_bind", "fs_perms_simple", "hugetlb", "io",
                 "ipc", "math", "mm", "nptl", "pty", "sched", "securebits", "smoketest",
                 "syscalls", "tracing")


def _member_root(names: list[str]) -> str:
    """`opt/ltp/` when the tarball's tree is under it (as `make install` makes it), else ''."""
    clean = [str(PurePosixPath(n)) for n in names]
    rooted = [n for n in clean if n == LTP_PREFIX or n.startswith(LTP_PREFIX + "/")]
    parents = [n for n in clean if n in (".", "opt")]
    return LTP_PREFIX + "/" if rooted and len(rooted) + len(parents) == len(clean) else ""


def _open(tarball: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(tarball)
    except (tarfile.TarError, OSError, EOFError) as error:
        why = str(error).splitlines()[0].rstrip(":")
        raise UserError(f"{tarball} is not a readable tarball ({why}); pass the LTP install "
                        "tree (runtest/, testcases/bin/) as .tar, .tar.gz or .tar.xz") from None


def overlay_prefix(tarball: Path) -> str:
    """Where the tarball's members go in the rootfs: `opt/ltp` unless they already say so."""
    with _open(tarball) as tar:
        return "" if _member_root(tar.getnames()) else LTP_PREFIX


def runtest_files(tarball: Path) -> dict[str, str]:
    """The runtest files of an LTP tarball: name -> text, sorted by name."""
    found: dict[str, str] = {}
    with _open(tarball) as tar:
        root = _member_root(tar.getnames())
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if member.isfile() and str(path.parent) == f"{root}runtest":
                data = tar.extractfile(member)
                found[path.name] = data.read().decode(errors="replace") if data else ""
    return dict(sorted(found.items()))


def runtest_entries(text: str) -> list[tuple[str, str]]:
    """(tag, command) of every test line of a runtest file, in order."""
    entries = []
    for line in text.splitlines():
        tag, _, command = line.strip().partition(" ")
        if tag and not tag.startswith("#"):
            entries.append((tag, command.strip()))
    return entries


def read_skipfile(path: Path) -> list[str]:
    """The tags of a skipfile: the first word of each line, `#` comments and blanks left out."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as error:
        raise UserError(f"--lkft-ltp-skipfile {path}: cannot read it ({error.strerror}); "
                        "check the path") from None
    words = (line.split()[0] for line in lines if line.split())
    return [word for word in words if not word.startswith("#")]


def skip_command(tag: str, skipfile: str) -> str:
    """What a skipped tag runs instead: a TCONF line naming the skipfile, then exit 32."""
    return f"echo {shlex.quote(f'lkft: TCONF: {tag} is in the skipfile {skipfile}')}; exit 32"


def skipfile_label(path: str) -> str:
    """The skipfile's name as TCONF lines show it, plain characters only: the device's
    runner puts it between single quotes of a shell command."""
    return re.sub(r"[^\w.+-]", "_", Path(path).name)


def plan(text: str, shard: Shard | None = None, skips: list[str] | None = None,
         skipfile: str = "") -> list[tuple[str, str]]:
    """The (tag, command) lines to run: the shard's tests, skipfile tags made skips."""
    entries = runtest_entries(text)
    if shard is not None:
        entries = [entry for n, entry in enumerate(entries) if shard.keeps(n)]
    skipped = set(skips or [])
    return [(tag, skip_command(tag, skipfile) if tag in skipped else command)
            for tag, command in entries]


def choose_runtests(available: list[str], wanted: tuple[str, ...], tarball: str) -> list[str]:
    """The runtest files to run: `wanted` (all must exist), else LKFT's set, else all."""
    missing = [name for name in wanted if name not in available]
    if missing:
        have = ", ".join(available) or "none"
        raise UserError(f"--lkft-ltp-runtest {missing[0]}: no runtest/{missing[0]} in "
                        f"{tarball}; it has: {have}")
    if wanted:
        return list(wanted)
    return [name for name in available if name in LKFT_RUNTESTS] or available


def runner_script() -> bytes:
    """Our POSIX-sh runner (ltp-pan's console format), shipped as package data."""
    return files("pytest_lkft").joinpath("data", "ltp-runner.sh").read_bytes()


def plan_overlay(plans: dict[str, list[tuple[str, str]]]) -> bytes:
    """A gzip'd cpio holding the runner and one planned runtest file per suite."""
    entries = [Entry(RUNNER, stat.S_IFREG | 0o755, runner_script())]
    for name, lines in sorted(plans.items()):
        text = "".join(f"{tag} {command}\n" for tag, command in lines)
        entries.append(Entry(f"{PLAN_DIR}/{name}", stat.S_IFREG | 0o644, text.encode()))
    return gzip.compress(write_cpio(entries), mtime=0)


def heredoc(path: str, text: str) -> str:
    """A shell command writing `text` to `path` verbatim (quoted here-document, ended by a
    word no line of `text` is: a skipfile line cannot end it early and run as a command)."""
    body = text if text.endswith("\n") or not text else text + "\n"
    end = HEREDOC_END
    while end in body.splitlines():
        end += "_"
    return f"cat >{path} <<'{end}'\n{body}{end}"


def rootfs_setup(shard: Shard | None, skips: list[str], skipfile: str) -> str:
    """The command that readies the device to run the rootfs's LTP: runner, settings, skips.

    Written under /lkft (the directory the tarball's overlay uses): the runner, the tags
    to skip (one a line) and the settings the runner sources (shard, skipfile name).
    """
    settings = (f"LKFT_LTP_SHARD={shlex.quote(str(shard or ''))}\n"
                f"LKFT_LTP_SKIPFILE_NAME={shlex.quote(skipfile)}\n")
    runner = runner_script().decode()
    return "\n".join([f"mkdir -p /{PLAN_DIR} && {heredoc('/' + RUNNER, runner)}",
                       heredoc("/" + SKIP_TAGS, "".join(f"{tag}\n" for tag in skips)),
                       heredoc("/" + SETTINGS, settings)])


class LtpStage:
    """--lkft-ltp: the LTP tree under /opt/ltp, then the runner and the plan of each
    runtest file."""

    name = "ltp"

    def stage(self, context: StageContext) -> Staged | None:
        settings = context.settings
        tarball = context.get(settings.ltp)
        if tarball is None:
            return None
        texts = runtest_files(tarball)
        names = choose_runtests(list(texts), settings.ltp_runtest, settings.ltp or str(tarball))
        skipfile = context.get(settings.ltp_skipfile)
        skips = read_skipfile(skipfile) if skipfile else []
        shown = skipfile_label(settings.ltp_skipfile or "")
        plans = {name: plan(texts[name], settings.ltp_shard, skips, shown) for name in names}
        overlays = [tarball_overlay_file(tarball, context.cache_root, overlay_prefix(tarball)),
                    stored_overlay(plan_overlay(plans), context.cache_root)]
        return Staged(overlays, {"ltp": settings.ltp or ""})
