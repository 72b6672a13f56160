"""Where a bisection lives under the cache, what it was asked, and its lock.

```
<cache>/bisect/<name>/bisection.json     the parameters (what --resume reads back)
<cache>/bisect/<name>/steps/<sha>/run-N/ each run of a step: pytest.log, store, results
<cache>/bisect/<name>/bisect.log         `git bisect log`; steps.txt, reproducer.sh at the end
<cache>/bisect/.worktrees/<repo>/        the worktree every bisection of that repository uses
<cache>/bisect/.objects/<tree>/          the object directory of one source tree (O= is
                                         <arch>/build in it), and the lock of its users
```

The worktree belongs to the repository and the object directory to the source tree, not
to one bisection: the next bisection of the same repository (or `lkft bisect-step` in the
same checkout) starts from the objects the last one left, so even its first build is
incremental. Two bisections of one tree take turns.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from pytest_lkft.errors import UserError
from pytest_lkft.files import write_atomically

STATE_FILE = "bisection.json"
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # a SQUAD project name
GROUP = "bisect"


@dataclass
class Bisection:
    """What a bisection was asked: kept in bisection.json so --resume asks nothing again."""

    name: str
    tree: str
    good: str
    bad: str
    device: str
    tests: list[str]
    pytest_args: list[str] = field(default_factory=list)  # build and device options
    repeat: int = 1
    flaky: str | None = None
    origin: str = ""  # where good, bad and the selection came from, when not given

    def differences(self, other: Bisection) -> list[str]:
        """The fields that differ from `other`'s, `origin` aside."""
        mine, theirs = asdict(self), asdict(other)
        return [key for key in mine if key != "origin" and mine[key] != theirs[key]]


def digest(path: Path) -> str:
    """A short name for a path."""
    return hashlib.sha256(str(path).encode()).hexdigest()[:16]


def check_name(name: str) -> str:
    """A bisection name must make a valid SQUAD project name (`bisect/<name>`)."""
    if not NAME.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '_', '.', '-' (it becomes "
                        f"the project {GROUP}/<name> of the store)")
    return name


class Layout:
    """The paths of one bisection and of its repository's worktree."""

    def __init__(self, cache: Path, name: str, repo: Path) -> None:
        self.root = cache / "bisect"
        self.name = name
        self.dir = self.root / name
        self.worktree = (self.root / ".worktrees").resolve() / digest(repo)
        self.state = self.dir / STATE_FILE

    def objects(self, tree: Path) -> Path:
        """The object directory kept for a source tree (`--lkft-build-dir`)."""
        return (self.root / ".objects").resolve() / digest(tree.resolve())

    def step_dir(self, sha: str) -> Path:
        """Where the runs of the step testing `sha` keep their files."""
        return self.dir / "steps" / sha[:12]

    def load(self) -> Bisection | None:
        """The saved parameters, None when this bisection never started."""
        try:
            return Bisection(**json.loads(self.state.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            raise UserError(f"{self.state} is unreadable ({error}); remove it to start over"
                            ) from None

    def save(self, bisection: Bisection) -> None:
        """Keep the parameters (atomically)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.state, json.dumps(asdict(bisection), indent=2) + "\n")

    @contextmanager
    def locked(self, say: TextIO, directory: Path) -> Iterator[None]:
        """Hold an object directory (and the tree built into it) for the block; wait,
        saying so, while another bisection has it. The lock goes with the process."""
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                say.write(f"waiting for the bisection using {directory} (pid "
                          f"{lock.read().strip() or '?'}) to end\n")
                say.flush()
                fcntl.flock(lock, fcntl.LOCK_EX)
            lock.truncate(0)
            lock.write(str(os.getpid()))
            lock.flush()
            yield
