"""A kernel's modules and config as a rootfs tree: `lib/modules/<release>` and `boot/config-*`.

From the kernel's Debian package (`dpkg-deb -x`, the image itself left out) or from a
build's modules tarball and config, laid out as Debian lays them, `depmod` run on the
host (it reads modules of any architecture), cached by the package or tarball. A subset
with its dependencies (`modprobe --show-depends`, also on the host) is what an
initramfs carries: the loader's disk drivers, a cpio rootfs's suite modules.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.artifacts.entry import hash_file
from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.files import write_atomically

INSMOD = re.compile(r"^insmod (\S+\.ko\S*)")
MODULE_INDEXES = ("modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin",
                  "modules.symbols", "modules.symbols.bin", "modules.builtin",
                  "modules.builtin.bin", "modules.builtin.modinfo", "modules.order",
                  "modules.softdep", "modules.devname")


@dataclass(frozen=True)
class KernelTree:
    """`path` holds lib/modules/<release> (with modules.dep) and boot/config-<release>."""

    path: Path
    release: str
    key: str

    @property
    def modules(self) -> Path:
        return self.path / "lib" / "modules" / self.release

    @property
    def config(self) -> Path | None:
        found = self.path / "boot" / f"config-{self.release}"
        return found if found.is_file() else None


def tree_from_deb(deb: Path, cache_root: Path) -> KernelTree:
    """The modules and config of a Debian kernel package, extracted and depmod'ed once."""
    key = "deb-" + hash_file(deb)[:24]
    return _cached_tree(cache_root, key, lambda out: _extract_deb(deb, out))


def tree_from_build(modules: Path | None, config: Path | None, cache_root: Path) -> KernelTree:
    """A build's modules tarball (lib/modules/<release>) and config, as Debian lays them."""
    parts = [hash_file(path) if path else "-" for path in (modules, config)]
    key = "build-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]

    def make(out: Path) -> None:
        if modules is not None:
            with tarfile.open(modules) as tar:
                tar.extractall(out, filter="data")
        if config is not None:
            release = _release(out) or "unknown"
            (out / "boot").mkdir(exist_ok=True)
            shutil.copyfile(config, out / "boot" / f"config-{release}")

    return _cached_tree(cache_root, key, make)


def _cached_tree(cache_root: Path, key: str, make: Callable[[Path], None]) -> KernelTree:
    """The tree `make` lays out, made once: `<key>/` holds only the tree (it is laid into
    root disks as it is), `<key>.release` says it is complete and names its release."""
    out = cache_root / "kernel-modules" / key
    done = out.with_name(f"{key}.release")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(f"{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker per tree: processes, threads
        if not done.exists():
            write_atomically(done, _make_tree(out, make))
    return KernelTree(out, done.read_text(), key)


def _make_tree(out: Path, make: Callable[[Path], None]) -> str:
    """Make the tree at `out` (in a partial directory first); its release ("" if none)."""
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    make(partial)
    release = _release(partial)
    if release and (partial / "lib" / "modules" / release / "kernel").is_dir():
        run_tool(["depmod", "-b", str(partial), release], "kmod")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return release or ""


def _extract_deb(deb: Path, out: Path) -> None:
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(out), "--wildcards", "--no-same-owner",
                            "./lib/modules/*", "./boot/config-*"], stdin=fsys.stdout,
                           capture_output=True, text=True, check=False)
    fsys.wait()
    if fsys.returncode or untar.returncode:
        raise InfraError(f"cannot unpack {deb}: {untar.stderr.strip() or 'dpkg-deb failed'}")


def _release(tree: Path) -> str:
    found = sorted(p.name for p in (tree / "lib" / "modules").glob("*") if p.is_dir())
    return found[0] if found else ""


def run_tool(command: list[str], package: str) -> str:
    """Run a host tool; a missing one names its package, a failure its last line."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UserError(f"{command[0]} not found: `apt-get install {package}`") from None
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"{' '.join(command[:2])} failed: {last}")
    return done.stdout


def module_closure(tree: KernelTree, names: Iterable[str]) -> list[Path]:
    """The .ko files of `names` and of what they depend on, dependencies first; a name the
    kernel lacks or has built in gives none."""
    found: list[Path] = []
    for name in names:
        done = subprocess.run(["modprobe", "-d", str(tree.path), "-S", tree.release,
                               "--show-depends", name], capture_output=True, text=True,
                              check=False)
        for line in done.stdout.splitlines():
            match = INSMOD.match(line)
            if match and Path(match.group(1)) not in found:
                found.append(Path(match.group(1)))
    return found


def module_indexes(tree: KernelTree) -> list[Path]:
    """depmod's index files of the tree (modprobe needs them to find a module)."""
    return [tree.modules / name for name in MODULE_INDEXES if (tree.modules / name).is_file()]
