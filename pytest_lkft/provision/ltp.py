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
- a skipfile tag (one a line, first word, `#` comments: runltp's `-S` file) stays a case
  of the run, a skip saying why (`skip_reason`) rather than a test that vanishes, as
  runltp -S makes it; but the device never sees it: the host reports it, so the serial
  console does not carry a result block for each of LKFT's 1,400 tags.

The plans go into a second overlay: `lkft/ltp/runtest/<name>`, the runner script and its
settings (the per-test timeout, the console's loglevel while the tests run). On the default
busybox rootfs the LTP tree goes onto a disk with the rootfs (`pytest_lkft.provision.disk`:
LTP is bounded by disk, not RAM), with what LTP's tests expect of a system: /etc/passwd and
group with `nobody`, and the kernel's modules and config (provision lays those in).
`--lkft-ltp-src` builds LTP first (`pytest_lkft.build.ltp`); a dynamically linked build
gets the cross C library.

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
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path, PurePosixPath

from pytest_lkft.artifacts.entry import hash_file
from pytest_lkft.build.ltp import LtpBuild, LtpBuildResult, choose_runtests, console_loglevel
from pytest_lkft.build.ltprun import runtest_entries
from pytest_lkft.errors import UserError
from pytest_lkft.provision.disk import Tree, made_once
from pytest_lkft.provision.kselftest import libc_overlay
from pytest_lkft.provision.rootfs import (
    Entry,
    check_members,
    stored_overlay,
    tarball_overlay_file,
    write_cpio,
)
from pytest_lkft.provision.stages import StageContext, Staged
from pytest_lkft.settings.archs import get_arch
from pytest_lkft.settings.device import Settings, Shard

LTP_PREFIX = "opt/ltp"
PLAN_DIR = "lkft/ltp/runtest"
RUNNER = "lkft/ltp-runner.sh"
SETTINGS = "lkft/ltp/settings"  # sourced by the runner
SKIP_TAGS = "lkft/ltp/skipfile"
HEREDOC_END = "LKFT_LTP_EOF"
# What LTP's tests look up (getpwnam("nobody"), groups): the busybox rootfs has no /etc.
PASSWD = ("root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/bin/false\n"
          "daemon:x:2:2:daemon:/sbin:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n")
GROUP = ("root:x:0:\nbin:x:1:\ndaemon:x:2:\nsys:x:3:\nadm:x:4:\nusers:x:100:\n"
         "nogroup:x:65534:\nnobody:x:65534:\n")
OS_RELEASE = 'NAME="pytest-lkft busybox"\nID=lkft\nVERSION_ID=1\n'  # kirk waits 3 s without


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


def read_skipfile(path: Path, source: str = "--lkft-ltp-skipfile") -> list[str]:
    """The tags of a skipfile: the first word of each line, `#` comments and blanks left out."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as error:
        raise UserError(f"{source} {path}: cannot read it ({error.strerror}); "
                        "check the path") from None
    words = (line.split()[0] for line in lines if line.split())
    return [word for word in words if not word.startswith("#")]


def skip_reason(tag: str, skipfile: str) -> str:
    """The TCONF line of a skipfile tag (the rootfs runner's make_plan prints the same)."""
    return f"lkft: TCONF: {tag} is in the skipfile {skipfile}"


def skipfile_label(path: str) -> str:
    """The skipfile's name as TCONF lines show it, plain characters only: the device's
    runner puts it between single quotes of a shell command."""
    return re.sub(r"[^\w.+-]", "_", Path(path).name)


def plan(text: str, shard: Shard | None = None) -> list[tuple[str, str]]:
    """The (tag, command) lines of the shard: every case of the run."""
    entries = runtest_entries(text)
    if shard is None:
        return entries
    return [entry for n, entry in enumerate(entries) if shard.keeps(n)]


def to_run(text: str, shard: Shard | None, skips: list[str]) -> list[tuple[str, str]]:
    """The plan the device runs: the shard's lines less the skipfile's tags."""
    skipped = set(skips)
    return [(tag, command) for tag, command in plan(text, shard) if tag not in skipped]


def skipped(text: str, shard: Shard | None, skips: list[str]) -> list[str]:
    """The shard's tags that the skipfile holds: skips the host reports, in plan order."""
    chosen = set(skips)
    return [tag for tag, _ in plan(text, shard) if tag in chosen]


def runner_script() -> bytes:
    """Our POSIX-sh runner (ltp-pan's console format), shipped as package data."""
    return files("pytest_lkft").joinpath("data", "ltp-runner.sh").read_bytes()


def runner_settings(settings: Settings, make_plan: bool = False) -> str:
    """The runner's settings file: per-test timeout, LTP_TIMEOUT_MUL, the console's loglevel
    while the tests run (data/ltp.yaml), and for the rootfs's own LTP (`make_plan`) the
    shard and the skipfile's name."""
    lines = [f"LKFT_LTP_TIMEOUT={settings.ltp_timeout:g}",
             f"LKFT_LTP_CONSOLE_LOGLEVEL={console_loglevel()}"]
    if settings.ltp_timeout_mul:
        lines.append(f"LTP_TIMEOUT_MUL={shlex.quote(settings.ltp_timeout_mul)}")
    if make_plan:
        label = skipfile_label(settings.ltp_skipfile or "")
        lines += ["LKFT_LTP_MAKE_PLAN=1",
                  f"LKFT_LTP_SHARD={shlex.quote(str(settings.ltp_shard or ''))}",
                  f"LKFT_LTP_SKIPFILE_NAME={shlex.quote(label)}"]
    return "".join(f"{line}\n" for line in lines)


def plan_overlay(plans: dict[str, list[tuple[str, str]]], settings_text: str,
                 system: bool = False) -> bytes:
    """A gzip'd cpio holding the runner, its settings and one planned runtest file per
    suite; with `system`, the /etc files LTP's tests (and kirk) look up."""
    entries = [Entry(RUNNER, stat.S_IFREG | 0o755, runner_script()),
               Entry(SETTINGS, stat.S_IFREG | 0o644, settings_text.encode())]
    if system:
        entries += [Entry("etc/passwd", stat.S_IFREG | 0o644, PASSWD.encode()),
                    Entry("etc/group", stat.S_IFREG | 0o644, GROUP.encode()),
                    Entry("etc/os-release", stat.S_IFREG | 0o644, OS_RELEASE.encode())]
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


def rootfs_setup(settings: Settings, skips: list[str]) -> str:
    """The command that readies the device to run the rootfs's LTP: runner, settings, skips.

    Written under /lkft (the directory the tarball's overlay uses): the runner, the tags
    to skip (one a line) and the settings the runner sources (timeout, shard, skipfile
    name, and that it makes the plan itself).
    """
    runner = runner_script().decode()
    return "\n".join([f"mkdir -p /{PLAN_DIR} && {heredoc('/' + RUNNER, runner)}",
                       heredoc("/" + SKIP_TAGS, "".join(f"{tag}\n" for tag in skips)),
                       heredoc("/" + SETTINGS, runner_settings(settings, make_plan=True))])


def ltp_build(settings: Settings, arch: str, source: Path, cache_root: Path,
              skips: list[str]) -> LtpBuildResult:
    """--lkft-ltp-src built for `arch` (cached); one line when the build failed."""
    result = LtpBuild(source=source, target_arch=arch, linking=settings.ltp_linking,
                      runtests=settings.ltp_runtest, skips=tuple(skips),
                      cache_dir=cache_root / "ltp-builds", shown=settings.ltp_src or "").run()
    if not result.passed:
        first = (result.first_errors.splitlines() or ["no error line in the log"])[0]
        raise UserError(f"LTP build of {settings.ltp_src} failed: {first}; see {result.log}")
    return result


def tarball_tree(tarball: Path, cache_root: Path) -> Tree:
    """An LTP tarball's /opt/ltp tree unpacked once under the cache (members checked)."""
    key = hash_file(tarball)[:32]

    def make(tree: Path) -> None:
        with _open(tarball) as tar:
            check_members(tarball, tar.getmembers())
            tar.extractall(tree, filter="data")

    root = made_once(cache_root / "ltp-trees" / key, make)
    if overlay_prefix(tarball) == "":  # its members say opt/ltp/ already
        root = root / LTP_PREFIX
    return Tree(root, LTP_PREFIX, f"tarball:{key}")


@dataclass(frozen=True)
class LtpInstall:
    """The LTP a device gets: a tarball's (`--lkft-ltp`) or a build's (`--lkft-ltp-src`)."""

    tarball: Path  # the install tree as a tarball
    texts: dict[str, str]  # runtest file name -> text
    shown: str
    build: LtpBuildResult | None = None

    @property
    def static(self) -> bool:
        """True for a build linked statically (a tarball may be either)."""
        return self.build is not None and self.build.linking == "static"

    def tree(self, cache_root: Path) -> Tree:
        """The /opt/ltp tree as a directory, for the disk."""
        if self.build is None:
            return tarball_tree(self.tarball, cache_root)
        return Tree(self.build.install_dir, LTP_PREFIX, f"build:{self.build.output_dir.name}")


def ltp_install(context: StageContext, skips: list[str]) -> LtpInstall | None:
    """The given LTP tarball, or the given source built for the device; None without."""
    settings = context.settings
    tarball, source = context.get(settings.ltp), context.get(settings.ltp_src)
    if tarball is not None:
        return LtpInstall(tarball, runtest_files(tarball), settings.ltp or "")
    if source is None:
        return None
    built = ltp_build(settings, context.spec.arch, source, context.cache_root, skips)
    texts = {path.name: path.read_text(errors="replace")
             for path in sorted((built.install_dir / "runtest").iterdir())}
    return LtpInstall(built.tarball, texts, settings.ltp_src or "", built)


class LtpStage:
    """--lkft-ltp or --lkft-ltp-src: the LTP tree under /opt/ltp (on a disk with the
    default rootfs), then the runner, its settings and the plan of each runtest file."""

    name = "ltp"

    def stage(self, context: StageContext) -> Staged | None:
        settings, cache_root = context.settings, context.cache_root
        skipfile = context.get(settings.ltp_skipfile)
        skips = read_skipfile(skipfile) if skipfile else []
        install = ltp_install(context, skips)
        if install is None:
            return None
        names = choose_runtests(list(install.texts), settings.ltp_runtest, install.shown)
        plans = {name: to_run(install.texts[name], settings.ltp_shard, skips)
                 for name in names}
        on_disk = settings.rootfs is None  # the default rootfs: LTP goes onto a disk
        overlays = [stored_overlay(plan_overlay(plans, runner_settings(settings), on_disk),
                                   cache_root)]
        libc = get_arch(context.spec.arch).libc_dir
        if on_disk and not install.static and libc is not None:
            overlays.append(stored_overlay(libc_overlay(libc), cache_root))
        metadata = {"ltp": install.shown}
        if install.build is not None:
            metadata["ltp_build"] = str(install.build.output_dir)
        if on_disk:
            return Staged(overlays, metadata, [install.tree(cache_root)])
        tree = tarball_overlay_file(install.tarball, cache_root, overlay_prefix(install.tarball))
        return Staged([tree, *overlays], metadata)  # the user's cpio rootfs: in RAM
