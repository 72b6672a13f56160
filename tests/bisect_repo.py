"""A kernel git repository for the bisect tests and benchmark, made from linux-source-6.1.

`base` is Debian's extracted tree as it is; on top of it, branch `fail`:

    1  lib/list_sort: reword a comment                    unrelated
    2  lib/list_sort: take the tail from a local          does not build
    3  lib/list_sort: fix the build
    4  list: initialise list5 before filling it           list_test_list_init fails
    5  init: reword a comment                             unrelated

branch `panic` is 1-3, then 4 where the same case panics the kernel, then 5; branch
`flaky` is one commit on `base` after which list_test_list_init fails when the kernel's
`list_test.lkft_counter` parameter is odd (a QEMU wrapper counts boots into it); branch
`long` is `fail` with more unrelated commits between 3 and 4 (the benchmark's).

Commits are made with git's plumbing (no checkout), with fixed authors and dates, so their
ids are the same on every machine. The repository is made once per machine under the test
cache (about 40 s: hashing the tree); its own checkout is sparse (only README), standing
for a user's checkout that `lkft bisect` must leave alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LIST_TEST = "lib/list-test.c"
LIST_SORT = "lib/list_sort.c"
INIT_MAIN = "init/main.c"
SELECTED = "kunit/list-kunit-test.list_test_list_init"
FILL_LIST5 = ("\tmemset(list5, 0xFF, sizeof(*list5));\n\tINIT_LIST_HEAD(list5);\n")
INIT_THEN_FILL = ("\tINIT_LIST_HEAD(list5);\n\tmemset(list5, 0xFF, sizeof(*list5));\n")
PANIC = INIT_THEN_FILL + ("\tif (!list_empty_careful(list5))\n"
                          "\t\tpanic(\"list_test_list_init: list5 is not empty\");\n")
COUNTER = ("static int lkft_counter;\nmodule_param(lkft_counter, int, 0444);\n\n"
           "static void list_test_list_init(struct kunit *test)\n{\n"
           "\tKUNIT_EXPECT_EQ(test, lkft_counter % 2, 0);  /* odd boots fail */\n")
Edit = tuple[str, str, str]  # path, text, replacement
COMMITS: dict[str, tuple[str, str, list[Edit]]] = {  # name -> author, subject, edits
    "comment": ("Ann Other <ann@example.org>", "lib/list_sort: reword a comment", [
        (LIST_SORT, "important for sort stability", "keeps the sort stable")]),
    "break": ("Bo Broken <bo@example.org>", "lib/list_sort: take the tail from a local", [
        (LIST_SORT, "**tail = &head;", "**tail = &heads;")]),
    "fix": ("Bo Broken <bo@example.org>", "lib/list_sort: fix the build", [
        (LIST_SORT, "**tail = &heads;", "**tail = &head;")]),
    "fail": ("Ada Lovelace <ada@example.org>", "list: initialise list5 before filling it", [
        (LIST_TEST, FILL_LIST5, INIT_THEN_FILL)]),
    "panic": ("Ada Lovelace <ada@example.org>", "list: panic when list5 is not empty", [
        (LIST_TEST, FILL_LIST5, PANIC)]),
    "unrelated": ("Ann Other <ann@example.org>", "init: reword a comment", [
        (INIT_MAIN, " *  linux/init/main.c", " *  init/main.c: the kernel's start")]),
    "flaky": ("Fay Flake <fay@example.org>", "list: count boots in list_test_list_init", [
        (LIST_TEST, "static void list_test_list_init(struct kunit *test)\n{\n", COUNTER)]),
}
BRANCHES = {
    "fail": ["comment", "break", "fix", "fail", "unrelated"],
    "panic": ["comment", "break", "fix", "panic", "unrelated"],
    "flaky": ["flaky"],
}
LONG_EXTRA = 28  # the benchmark's branch: this many more unrelated commits before `fail`
START = 1704067200  # 2024-01-01 00:00:00 UTC: commit n is n hours later
MARKER = "lkft-bisect-refs.json"


@dataclass(frozen=True)
class Repo:
    """The repository and its commits: `refs[branch]` lists the branch's commits, oldest
    first, after `base`."""

    path: Path
    base: str
    refs: dict[str, list[str]]

    def tip(self, branch: str) -> str:
        return self.refs[branch][-1]


def git(repo: Path, *args: str, stdin: bytes | None = None,
        env: dict[str, str] | None = None) -> str:
    """Run git in `repo`; its output, stripped."""
    return git_bytes(repo, *args, stdin=stdin, env=env).decode().strip()


def git_bytes(repo: Path, *args: str, stdin: bytes | None = None,
              env: dict[str, str] | None = None) -> bytes:
    """Run git in `repo`; its output as it is."""
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          check=True, env={**os.environ, **(env or {})})
    return done.stdout


def identity(author: str, hour: int) -> dict[str, str]:
    """Fixed author, committer and dates: the same commit ids on every machine."""
    name, _, mail = author.partition(" <")
    date = f"@{START + hour * 3600} +0000"
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": mail.rstrip(">"),
            "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_NAME": "LKFT Tests",
            "GIT_COMMITTER_EMAIL": "lkft@example.org", "GIT_COMMITTER_DATE": date}


def commit(repo: Path, parent: str, key: str, hour: int, edits: list[Edit] | None = None,
           subject: str | None = None) -> str:
    """A commit on `parent` applying `edits` (COMMITS[key]'s by default), via a scratch index."""
    author, default_subject, default_edits = COMMITS[key]
    index = {"GIT_INDEX_FILE": str(repo / ".git" / "lkft-scratch-index")}
    git(repo, "read-tree", parent, env=index)
    for path, text, replacement in edits if edits is not None else default_edits:
        content = git_bytes(repo, "cat-file", "blob", f"{parent}:{path}").decode()
        assert text in content, f"{path} has no {text!r}"
        blob = git(repo, "hash-object", "-w", "--stdin",
                   stdin=content.replace(text, replacement, 1).encode())
        git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=index)
    tree = git(repo, "write-tree", env=index)
    message = subject or default_subject
    return git(repo, "commit-tree", tree, "-p", parent, "-m", message,
               env=identity(author, hour))


def make(source: Path, path: Path) -> Repo:
    """Make the repository at `path` from the extracted `source` tree."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "--work-tree", str(source), "add", "-A", "-f")  # Debian's .gitignore has `/*`
    base = git(path, "commit-tree", git(path, "write-tree"), "-m", "linux-source-6.1",
               env=identity("LKFT Tests <lkft@example.org>", 0))
    refs: dict[str, list[str]] = {}
    for branch, keys in BRANCHES.items():
        shas = [base]
        for key in keys:  # the same edits on the same parent at the same hour: same commit
            shas.append(commit(path, shas[-1], key, len(shas)))
        refs[branch] = shas[1:]
    refs["long"] = long_branch(path, refs["fail"])
    for branch, shas in refs.items():
        git(path, "update-ref", f"refs/heads/{branch}", shas[-1])
    git(path, "update-ref", "refs/heads/main", base)
    git(path, "sparse-checkout", "set", "--no-cone", "/README")
    git(path, "reset", "-q", "--hard", "main")  # writes README alone
    (path / ".git" / MARKER).write_text(json.dumps({"base": base, "refs": refs}))
    return Repo(path, base, refs)


def long_branch(path: Path, fail: list[str]) -> list[str]:
    """`fail`'s first three commits, LONG_EXTRA unrelated ones, then its last two."""
    shas = fail[:3]
    text = "linux/init/main.c"
    for n in range(LONG_EXTRA):
        edit = (INIT_MAIN, text, f"linux/init/main.c ({n})")
        shas.append(commit(path, shas[-1], "unrelated", 100 + n, [edit],
                           f"init: reword a comment ({n})"))
        text = f"linux/init/main.c ({n})"
    for key in ("fail", "unrelated"):
        shas.append(commit(path, shas[-1], key, 200 + len(shas)))
    return shas


def bisect_repo(source: Path, cache: Path) -> Repo:
    """The repository under `cache`, made once per machine (locked across processes)."""
    path = cache / "bisect-repo"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "bisect-repo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = json.loads((path / ".git" / MARKER).read_text())
            return Repo(path, found["base"], found["refs"])
        except (OSError, ValueError):
            return make(source, path)
