"""What a kernel build starts from: architecture, toolchain, kconfig inputs, source state.

Everything here is checked or hashed before make runs; the cache key is made of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_lkft.errors import UserError
from pytest_lkft.files import write_atomically
from pytest_lkft.settings.archs import Arch, load_archs
from pytest_lkft.settings.tables import data_path

TOOLCHAIN = re.compile(r"^(?P<family>gcc|clang|llvm)(?:-(?P<version>\d+))?$")
CONFIG_LINE = re.compile(r"^(CONFIG_\w+=.*|# CONFIG_\w+ is not set)$")
MAKE_TARGET = re.compile(r"^[\w.+-]+$")


# -- architectures and toolchains -------------------------------------------------------------


@dataclass(frozen=True)
class Toolchain:
    """gcc, gcc-N, clang, clang-N, llvm or llvm-N: the make variables and what they need."""

    name: str
    family: str
    version: str = ""

    @classmethod
    def parse(cls, name: str) -> Toolchain:
        """`gcc-12` -> Toolchain; one-line UserError for anything else."""
        match = TOOLCHAIN.match(name)
        if not match:
            raise UserError(f"unknown toolchain {name!r}; use gcc, gcc-N, clang, clang-N, "
                            "llvm or llvm-N (e.g. gcc-12, clang-15)")
        return cls(name, match.group("family"), match.group("version") or "")

    def compiler(self, arch: Arch) -> str:
        """The compiler command, e.g. aarch64-linux-gnu-gcc-12 or clang-15."""
        suffix = f"-{self.version}" if self.version else ""
        if self.family == "gcc":
            return f"{arch.cross_compile}gcc{suffix}"
        return f"clang{suffix}"

    def host_compiler(self) -> str:
        """HOSTCC: the build machine's compiler of the same family."""
        return "gcc" if self.family == "gcc" else self.compiler(load_archs()["x86_64"])

    def apt_packages(self, arch: Arch) -> list[str]:
        """The Debian packages this toolchain needs for `arch`."""
        suffix = f"-{self.version}" if self.version else ""
        if self.family == "gcc":
            base = "gcc" if arch.native else arch.apt
            return [base.replace("gcc", f"gcc{suffix}", 1)]
        if self.family == "clang":
            binutils = [] if arch.native else [arch.apt.replace("gcc-", "binutils-", 1)]
            return [f"clang{suffix}", *binutils]
        return [f"clang{suffix}", f"lld{suffix}", f"llvm{suffix}"]

    def check(self, arch: Arch) -> None:
        """One-line UserError naming the apt package when the compiler is not installed."""
        needed = [self.compiler(arch)]
        if self.family == "llvm":
            needed.append(f"ld.lld-{self.version}" if self.version else "ld.lld")
        elif self.family == "clang" and arch.cross_compile:
            needed.append(f"{arch.cross_compile}ld")
        for tool in needed:
            if shutil.which(tool) is None:
                packages = " ".join(self.apt_packages(arch))
                raise UserError(f"{tool} not found: {self.name} for {arch.name} needs "
                                f"`apt-get install {packages}`")

    def make_vars(self, arch: Arch, wrapper: str) -> dict[str, str]:
        """ARCH, CROSS_COMPILE, CC, HOSTCC and LLVM for make, the compiler behind `wrapper`."""
        prefix = f"{wrapper} " if wrapper else ""
        found: dict[str, str] = {"ARCH": arch.arch}
        if arch.cross_compile and self.family != "llvm":
            found["CROSS_COMPILE"] = arch.cross_compile
        if self.family == "llvm":
            found["LLVM"] = f"-{self.version}" if self.version else "1"
        found["CC"] = prefix + self.compiler(arch)
        found["HOSTCC"] = prefix + self.host_compiler()
        return found


def compiler_version(command: str) -> str:
    """The first line of `command --version`, '' when it cannot run."""
    try:
        done = subprocess.run([command, "--version"], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout.splitlines() or [""])[0].strip()


def parse_make_vars(values: list[str], option: str = "--make-var") -> dict[str, str]:
    """['K=V', ...] into a dict; UserError naming the bad one."""
    found: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise UserError(f"invalid {option} {value!r}; use NAME=VALUE")
        found[name] = setting
    return found


def parse_targets(text: str) -> tuple[str, ...]:
    """'config,kernel' -> ('config', 'kernel')."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


# -- kconfig inputs ---------------------------------------------------------------------------


def is_url(text: str) -> bool:
    """True for http(s) and file URLs."""
    return text.startswith(("http://", "https://", "file://"))


@dataclass(frozen=True)
class Fragment:
    """One `--lkft-kconfig-add`: a file or URL, an inline `CONFIG_X=y`, `make:<target>`, or
    the name of a fragment of the lab directory's `kconfig/` (`qemu-virt-kunit`)."""

    kind: str  # file | url | inline | make
    value: str

    @classmethod
    def parse(cls, text: str) -> Fragment:
        """Tell the kind of a `--lkft-kconfig-add` value; UserError when it is none of them."""
        if text.startswith("make:"):
            target = text.removeprefix("make:")
            if not MAKE_TARGET.match(target):
                raise UserError(f"invalid make target in --lkft-kconfig-add {text!r}; "
                                "use make:<target>, e.g. make:kvm_guest.config")
            return cls("make", target)
        if is_url(text):
            return cls("url", text)
        if CONFIG_LINE.match(text.strip()):
            return cls("inline", text.strip())
        path = Path(text).expanduser()
        if not path.is_file() and MAKE_TARGET.match(text):
            path = data_path(f"kconfig/{text}.config")
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in data_path("kconfig").glob("*.config")))
            raise UserError(f"kconfig fragment {text} does not exist; give a file, a URL, "
                            f"CONFIG_X=y, make:<target> or a fragment's name ({known})")
        return cls("file", str(path.resolve()))


def kconfig_kind(kconfig: str) -> str:
    """`url`, `file` or `make` for a `--lkft-kconfig` value; UserError for a missing file."""
    if is_url(kconfig):
        return "url"
    if Path(kconfig).expanduser().is_file():
        return "file"
    if "/" in kconfig or not MAKE_TARGET.match(kconfig):
        raise UserError(f"kconfig {kconfig} does not exist; give a make target such as "
                        "defconfig or tinyconfig, a file or a URL")
    return "make"


def file_digest(path: Path) -> str:
    """sha256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the source tree --------------------------------------------------------------------------


def check_tree(tree: Path) -> None:
    """UserError unless `tree` looks like a kernel source (Makefile, Kconfig, Kbuild)."""
    if not tree.is_dir():
        raise UserError(f"kernel tree {tree} does not exist; pass --lkft-tree DIR")
    missing = [n for n in ("Makefile", "Kconfig", "Kbuild") if not (tree / n).is_file()]
    if missing:
        raise UserError(f"{tree} is not a kernel source tree (no {', '.join(missing)}); "
                        "pass the top directory of a Linux source")
    if (tree / ".config").exists() or (tree / "include" / "config").exists():
        raise UserError(f"{tree} has been configured in place (.config); out-of-tree builds "
                        f"need a clean tree: run `make -C {tree} mrproper`")


def _git(tree: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(tree), *args],
                              capture_output=True, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class GitSource:
    """A git checkout as the build sees it, read once: HEAD, a digest of the uncommitted
    changes and untracked files (the cache key's), and whether tracked files differ from
    HEAD (what `git describe --dirty` says, so the metadata need not read the tree again)."""

    commit: str
    dirty: str
    changed: bool

    def key(self) -> dict[str, str]:
        """The cache key's part: HEAD and the digest."""
        return {"commit": self.commit, "dirty": self.dirty}


def status_entries(out: bytes) -> tuple[str, bool, list[bytes]]:
    """`git status --porcelain=v2 --branch -z -uall` -> (HEAD or '', whether a tracked
    file changed, the untracked files)."""
    head, changed, untracked = "", False, []
    fields = iter(out.split(b"\0"))
    for entry in fields:
        if entry.startswith(b"# branch.oid "):
            oid = entry.removeprefix(b"# branch.oid ").decode()
            head = "" if oid == "(initial)" else oid
        elif entry.startswith(b"? "):
            untracked.append(entry[2:])
        elif entry[:2] in (b"1 ", b"2 ", b"u "):
            changed = True
            if entry.startswith(b"2 "):
                next(fields, None)  # a rename's original path
    return head, changed, untracked


def read_git(tree: Path) -> GitSource | None:
    """The checkout's state from one `git status` (one walk of the tree); `git diff HEAD
    --binary` only when a tracked file changed. None outside git or below its top."""
    top = _git(tree, "rev-parse", "--show-toplevel")
    if top is None or Path(top.decode().strip()) != tree.resolve():
        return None
    status = _git(tree, "status", "--porcelain=v2", "--branch", "--no-ahead-behind", "-z",
                  "--untracked-files=all")
    head, changed, untracked = status_entries(status or b"")
    changes = (_git(tree, "diff", "HEAD", "--binary") or b"") if changed else b""
    digest = hashlib.sha256(changes)
    for name in sorted(untracked):
        if name and (tree / name.decode()).is_file():
            digest.update(name + file_digest(tree / name.decode()).encode())
    return GitSource(head, digest.hexdigest(), changed)


class GitPrefetch:
    """`read_git(tree)` started in a thread, so the walk of a kernel tree (0.1-0.3 s) runs
    while pytest collects; the build's cache key takes it (`git_source`)."""

    _started: dict[Path, GitPrefetch] = {}

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.found: GitSource | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, name="lkft-git-state", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            self.found = read_git(self.tree)
        except BaseException as error:  # noqa: BLE001  (raised again where it is taken)
            self.error = error

    def result(self) -> GitSource | None:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.found

    @classmethod
    def start(cls, tree: Path) -> None:
        """Start reading `tree`'s state once."""
        tree = tree.resolve()
        if tree not in cls._started:
            cls._started[tree] = cls(tree)

    @classmethod
    def take(cls, tree: Path) -> GitPrefetch | None:
        """The read started for `tree`, if any (taken once: a later build reads afresh)."""
        return cls._started.pop(tree.resolve(), None)

    @classmethod
    def drop(cls, tree: Path) -> None:
        """Forget a read nobody took."""
        cls.take(tree)


def git_source(tree: Path) -> GitSource | None:
    """The checkout's state: the one `GitPrefetch.start` began reading, else read now."""
    started = GitPrefetch.take(tree)
    return started.result() if started is not None else read_git(tree)


def git_state(tree: Path) -> dict[str, str] | None:
    """HEAD, a digest of the uncommitted changes and untracked files; None outside git."""
    source = read_git(tree)
    return None if source is None else source.key()


def walk_tree(tree: Path) -> Iterator[tuple[str, os.stat_result, str]]:
    """(relative path, lstat, link target) of every directory, file and link, sorted."""
    stack = [tree]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
        for entry in reversed(entries):
            link = os.readlink(entry.path) if entry.is_symlink() else ""
            yield os.path.relpath(entry.path, tree), entry.stat(follow_symlinks=False), link
        stack.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


def tree_stamp(tree: Path) -> str:
    """Digest of every entry's name, size, mode and mtime: changes when anything is written."""
    try:  # find(1) lists a kernel tree (80k entries) about twice as fast as os.scandir
        listing = subprocess.run(["find", ".", "-printf", "%P\\0%s\\0%T@\\0%m\\0%y\\0%l\\n"],
                                 cwd=tree, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise UserError(f"cannot list kernel tree {tree}: {error}") from None
    return hashlib.sha256(b"\n".join(sorted(listing.split(b"\n")))).hexdigest()


def tree_digest(tree: Path, memo_dir: Path) -> str:
    """Content hash of a tree outside git, remembered by its entries' sizes and times."""
    stamp = tree_stamp(tree)
    memo = memo_dir / f"{hashlib.sha256(str(tree).encode()).hexdigest()[:16]}.json"
    known = read_json(memo)
    if known.get("stamp") == stamp:
        return str(known["content"])
    content = hashlib.sha256()
    for name, st, link in walk_tree(tree):
        if stat.S_ISREG(st.st_mode):
            content.update(f"{name}\0{st.st_mode & 0o111}\0{file_digest(tree / name)}\n".encode())
        elif link:
            content.update(f"{name}\0->{link}\n".encode())
    write_json(memo, {"tree": str(tree), "stamp": stamp, "content": content.hexdigest()})
    return content.hexdigest()


def source_state(tree: Path, memo_dir: Path,
                 git: GitSource | None = None) -> dict[str, str]:
    """What the build key knows of the source: git HEAD plus changes (`git`, when read
    already), or a content hash."""
    state = git.key() if git is not None else git_state(tree)
    if state is not None:
        return {"kind": "git", **state}
    return {"kind": "content", "sha256": tree_digest(tree, memo_dir)}


def kernel_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL plus EXTRAVERSION from the top Makefile."""
    fields: dict[str, str] = {}
    for line in (tree / "Makefile").read_text(errors="replace").splitlines()[:10]:
        name, _, value = line.partition("=")
        fields[name.strip()] = value.strip()
    return (f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}."
            f"{fields.get('SUBLEVEL', '?')}{fields.get('EXTRAVERSION', '')}")


# -- small file helpers -----------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; {} when missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (`pytest_lkft.files.write_atomically`)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a text file atomically, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, mode)



# -- what the build reads back ---------------------------------------------------------------


def config_value(config: Path, name: str) -> str | None:
    """The value of CONFIG_<name> in a .config file, None when unset."""
    prefix = f"CONFIG_{name}="
    try:
        lines = config.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((line[len(prefix):] for line in lines if line.startswith(prefix)), None)


def requested_options(fragment: Path) -> dict[str, str]:
    """CONFIG_X -> value ('n' for `is not set`) of a fragment's option lines."""
    found: dict[str, str] = {}
    for line in fragment.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            found[line[2:].split()[0]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            name, _, value = line.partition("=")
            found[name] = value
    return found


def ccache_stats() -> dict[str, int]:
    """ccache's hit and miss counters (ccache 4 `--print-stats`)."""
    try:
        out = subprocess.run(["ccache", "--print-stats"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    stats = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    hits = sum(int(stats.get(k, 0)) for k in ("direct_cache_hit", "preprocessed_cache_hit"))
    return {"cache_hits": hits, "cache_misses": int(stats.get("cache_miss", 0))}



def git_metadata(tree: Path, source: GitSource | None = None) -> dict[str, str]:
    """tuxmake's git group: describe, branch, commit, origin URL; {} outside git.

    `source` is the checkout's state when the caller read it already (the cache key's):
    `describe --dirty` is then `describe` of HEAD plus `-dirty` from it, without reading
    the whole tree again."""
    if source is None:
        source = read_git(tree)
    if source is None:
        return {}
    described = (_git(tree, "describe", "--always", "--tags") or b"").decode().strip()
    if described and source.changed:
        described += "-dirty"
    return {"git_describe": described,
            "git_branch": (_git(tree, "rev-parse", "--abbrev-ref", "HEAD") or b"")
            .decode().strip(),
            "git_commit": source.commit,
            "git_url": (_git(tree, "remote", "get-url", "origin") or b"").decode().strip()}


OS_RELEASE = Path("/etc/os-release")


def read_os_release(path: Path = OS_RELEASE) -> dict[str, str]:
    """The `KEY=value` pairs of an os-release file, quotes taken off ({} when unreadable)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition("=")
        if found:
            values[key.strip()] = value.strip().strip('"')
    return values


def os_release() -> dict[str, str]:
    """NAME and VERSION_ID of /etc/os-release ({} when it cannot be read)."""
    values = read_os_release()
    if not values:
        return {}
    return {"name": values.get("NAME", ""), "version": values.get("VERSION_ID", "")}


def uname() -> dict[str, str]:
    """tuxmake's uname group."""
    u = platform.uname()
    return {"kernel": u.system, "kernel_release": u.release, "kernel_version": u.version,
            "machine": u.machine, "operating_system": "GNU/Linux"}
