"""libhugetlbfs's test suite, cross-built from its source for a device (Debian packages none).

The source is a release tarball (`libhugetlbfs-2.24.tar.xz`, as `git archive` makes it).
The build is the suite's own: `autogen.sh`, `configure --host`, `make BUILDTYPE=
NATIVEONLY` with the architecture's cross gcc; the tests run from the build tree
(`tests/run_tests.py` calls `../obj/hugeadm` and loads `../obj64/libhugetlbfs.so`), so the
tree's `obj*`, `tests`, `ldscripts` and `ld.hugetlbfs` become `libhugetlbfs.tar.xz`, laid
over the rootfs at /opt/libhugetlbfs. Cached by the source's content and the compiler;
`build.log` beside it has every command.
"""

from __future__ import annotations

import fcntl
import hashlib
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from pytest_lkft.artifacts.entry import hash_file
from pytest_lkft.build.inputs import compiler_version
from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.settings.archs import Arch

PREFIX = "opt/libhugetlbfs"
TREE = ("obj", "obj32", "obj64", "tests", "ldscripts", "ld.hugetlbfs")
TOOLS = {"autoreconf": "autoconf automake libtool", "make": "make"}


def build_libhugetlbfs(source: Path, arch: Arch, cache_root: Path) -> Path:
    """`libhugetlbfs.tar.xz`: the tests of `source` built for `arch`, once."""
    compiler = f"{arch.cross_compile}gcc"
    check_tools(compiler, arch)
    key = hashlib.sha256("\0".join([hash_file(source), arch.name, compiler_version(compiler)])
                         .encode()).hexdigest()[:24]
    out = cache_root / "builds" / "libhugetlbfs" / key
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build across xdist workers
        tarball = out / "libhugetlbfs.tar.xz"
        if not tarball.exists():
            _build(source, arch, out)
    return tarball


def check_tools(compiler: str, arch: Arch) -> None:
    """Refuse, in one line naming the package, a missing compiler or autotools."""
    if shutil.which(compiler) is None:
        raise UserError(f"{compiler} not found: building libhugetlbfs for {arch.name} needs "
                        f"`apt-get install {arch.apt}`")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            raise UserError(f"{tool} not found: building libhugetlbfs needs "
                            f"`apt-get install {package}`")


def commands(arch: Arch) -> list[list[str]]:
    """The build's commands, run in the source tree."""
    cross = arch.cross_compile
    return [["./autogen.sh"], ["./configure", f"--host={cross.rstrip('-')}"],
            ["make", "BUILDTYPE=NATIVEONLY", f"ARCH={arch.machine}", f"CC={cross}gcc",
             f"LD={cross}ld"]]


def _build(source: Path, arch: Arch, out: Path) -> None:
    work = out / "src"
    shutil.rmtree(work, ignore_errors=True)
    tree = unpack(source, work)
    log = out / "build.log"
    with log.open("w") as stream:
        for command in commands(arch):
            stream.write(f"$ {shlex.join(command)}\n")
            stream.flush()
            done = subprocess.run(command, cwd=tree, stdout=stream, stderr=subprocess.STDOUT,
                                  check=False)
            if done.returncode:
                last = (log.read_text(errors="replace").splitlines() or ["no output"])[-1]
                raise InfraError(f"building libhugetlbfs failed ({shlex.join(command)}): "
                                 f"{last}; see {log}")
    pack(tree, [name for name in TREE if (tree / name).exists()], out / "libhugetlbfs.tar.xz")
    shutil.rmtree(work, ignore_errors=True)


def unpack(source: Path, work: Path) -> Path:
    """The source tarball unpacked into `work`; its tree (the one top directory), with
    the `version` file a release tarball made by `git archive` lacks."""
    try:
        with tarfile.open(source) as tar:
            tar.extractall(work, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"--lkft-libhugetlbfs {source} is not a readable tarball ({error}); "
                        "pass libhugetlbfs's release tarball") from None
    tops = [path for path in work.iterdir() if path.is_dir()]
    tree = tops[0] if len(tops) == 1 else work
    if not (tree / "autogen.sh").exists():
        raise UserError(f"--lkft-libhugetlbfs {source} holds no libhugetlbfs source (no "
                        "autogen.sh); pass libhugetlbfs's release tarball")
    if not (tree / "version").exists():  # `localversion` refuses a tree without it
        (tree / "version").write_text(tree.name.removeprefix("libhugetlbfs-") + "\n")
    return tree


def pack(tree: Path, names: Sequence[str], tarball: Path) -> None:
    """`names` of `tree` as a tarball under PREFIX, owned by root."""
    partial = tarball.with_name(tarball.name + ".part")

    def root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(partial, "w:xz") as tar:
        for name in names:
            tar.add(tree / name, f"{PREFIX}/{name}", filter=root)
    partial.replace(tarball)
