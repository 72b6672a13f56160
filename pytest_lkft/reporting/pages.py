"""`lkft serve`'s HTML pages: what LKFT's SQUAD dashboard shows a kernel developer.

- `/` the projects;
- `/<group>/<project>/` each build with tests, xfail, pass, skip, fail and duration
  (boots included), newest first;

Counts and changes come from each build's status (`buildstatus`), computed once and kept in
the store, so a page of a build of 168,000 tests reads no test rows but its failures.
- `/<group>/<project>/build/<version>/` the build's metadata (kernel, rootfs, QEMU,
  toolchain ...), its environment x suite matrix with a link to each suite's console log,
  regressions and fixes as SQUAD counts them (the API's build status) and missing tests
  against the previous build, and the failing tests with their logs (the first 200);
- `/<group>/<project>/build/<version>/log/<testrun>/<suite>/` one suite's console log;
- `/<group>/<project>/test/?name=<suite/test>` a test's history: its result per build and
  environment, and the first build it failed in.

Every page answers 404 for a project the caller may not see (a private one without the
token). Page functions raise UserError for what does not exist; the server makes it a 404.
"""

from __future__ import annotations

import html
import json
import time
from urllib.parse import quote

from pytest_lkft.errors import UserError
from pytest_lkft.reporting import buildstatus
from pytest_lkft.reporting.store import Store, split_logs

OPEN_LOGS = 20  # failing tests' logs start unfolded up to this many
LISTED = 200  # tests listed per section of a build page (the API has them all)
META_KEYS = ("kernel_version", "kernel", "arch", "rootfs", "qemu_version", "toolchain",
             "kernel_release", "git_describe", "git_sha", "job_url")
STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;
margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}
.fail{color:#b00}.pass{color:#070}.skip{color:#777}.xfail{color:#a60}
td.fail{background:#fde8e8}td.pass{background:#e8f6e8}pre{background:#f4f4f4;padding:.5em;
overflow-x:auto}nav{margin-bottom:1em}h2{margin-top:1.2em}"""
WORDS = ("pass", "fail", "skip", "xfail")


def esc(value: object) -> str:
    """HTML-escape any value."""
    return html.escape(str(value))


def page(title: str, body: str, nav: str = "") -> str:
    """A whole HTML page."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><nav><a href='/'>lkft</a>{nav}</nav>"
            f"<h1>{esc(title)}</h1>{body}</body></html>")


def visible_project(store: Store, group: str, project: str, authorised: bool) -> int:
    """The project's id if the caller may see it; UserError (a 404) otherwise."""
    row = store.db.execute(
        'SELECT project.id, project.is_public FROM project JOIN "group" ON "group".id ='
        ' project.group_id WHERE "group".slug = ? AND project.slug = ?',
        (group, project)).fetchone()
    if row is None or not (row[1] or authorised):
        raise UserError(f"no project {group}/{project} in the store")
    return int(row[0])


def build_id(store: Store, project_id: int, version: str, project: str) -> int:
    """A build's id in a project; UserError naming it otherwise."""
    row = store.db.execute("SELECT id FROM build WHERE project_id = ? AND version = ?",
                           (project_id, version)).fetchone()
    if row is None:
        raise UserError(f"no build {version!r} in project {project}; see `lkft builds`")
    return int(row[0])


def index_page(store: Store, authorised: bool) -> str:
    """The list of projects the caller may see."""
    rows = store.db.execute(
        'SELECT "group".slug, project.slug FROM project JOIN "group" ON "group".id ='
        " project.group_id WHERE project.is_public = 1 OR ? ORDER BY 1, 2",
        (authorised,)).fetchall()
    items = "".join(f"<li><a href='/{g}/{p}/'>{g}/{p}</a></li>" for g, p in rows)
    return page("lkft projects", f"<ul id='projects'>{items}</ul>" if items else
                "<p>No results yet: run pytest with the lkft plugin or submit here.</p>")


def cells(counts: dict[str, int]) -> str:
    """Table cells: tests, xfail, pass, skip, fail (errors are fails, as in SQUAD)."""
    fail = counts.get("fail", 0) + counts.get("error", 0)
    values = (sum(counts.values()), counts.get("xfail", 0), counts.get("pass", 0),
              counts.get("skip", 0), fail)
    classes = ("", "xfail", "pass", "skip", "fail")
    return "".join(f"<td class='{c}'>{v}</td>" if v and c else f"<td>{v}</td>"
                   for c, v in zip(classes, values, strict=True))


def word_counts(found: buildstatus.Status) -> dict[str, int]:
    """Result word -> how many, from a build's cached status."""
    counts: dict[str, int] = {}
    for _, _, word, number in found.cells:
        counts[word] = counts.get(word, 0) + number
    return counts


def project_page(store: Store, group: str, project: str, authorised: bool) -> str:
    """LKFT's project page: each build with tests, xfail, pass, skip, fail and duration."""
    project_id = visible_project(store, group, project, authorised)
    builds = store.db.execute(
        "SELECT build.id, version, build.created_at, (SELECT coalesce(sum(duration), 0) FROM"
        " testrun WHERE testrun.build_id = build.id), (SELECT count(DISTINCT environment_id)"
        " FROM testrun WHERE testrun.build_id = build.id) FROM build WHERE project_id = ?"
        " ORDER BY build.id DESC", (project_id,)).fetchall()
    counts = {int(b[0]): word_counts(buildstatus.status(store, int(b[0]))) for b in builds}
    head = "".join(f"<th>{c}</th>" for c in ("build", "date", "environments", "tests", "xfail",
                                             "pass", "skip", "fail", "duration"))
    rows = [f"<tr class='build'><td><a href='build/{quote(v)}/'>{esc(v)}</a></td>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M', time.gmtime(t))}</td><td>{envs}</td>"
            f"{cells(counts.get(int(i), {}))}<td>{duration(d)}</td></tr>"
            for i, v, t, d, envs in builds]
    return page(f"{group}/{project}", f"<table id='builds'><tr>{head}</tr>{''.join(rows)}</table>",
                f" / {esc(group)}/{esc(project)}")


def duration(seconds: float) -> str:
    """A duration as the dashboard shows it: 1h 02m, 3m 07s or 12.5s."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


def metadata_html(store: Store, build: int) -> str:
    """The build's metadata: the dashboard's keys first, each value once."""
    merged: dict[str, list[str]] = {}
    for (text,) in store.db.execute("SELECT metadata FROM testrun WHERE build_id = ?", (build,)):
        for key, value in json.loads(text).items():
            values = merged.setdefault(str(key), [])
            if str(value) not in values:
                values.append(str(value))
    keys = [k for k in META_KEYS if k in merged] + sorted(set(merged) - set(META_KEYS))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{'<br>'.join(esc(v) for v in merged[k])}</td></tr>"
                   for k in keys if k not in ("job_id",))
    return f"<h2>Metadata</h2><table id='metadata'>{rows}</table>"


def matrix_html(found: buildstatus.Status) -> str:
    """Environment x suite: counts per cell, and a link to each suite's console log."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for env, suite, word, number in found.cells:
        counts.setdefault((env, suite), {})[word] = number
    logs = {(env, suite): ident for env, suite, ident in found.logs}
    envs = sorted({e for e, _ in counts} | {e for e, _ in logs})
    suites = sorted({s for _, s in counts})
    head = "<tr><th>suite</th>" + "".join(f"<th>{esc(e)}</th>" for e in envs) + "</tr>"
    rows = [f"<tr><td>{esc(s)}</td>" + "".join(matrix_cell(counts.get((e, s)), logs.get((e, s)),
                                                            s) for e in envs) + "</tr>"
            for s in suites]
    return f"<h2>Results</h2><table id='matrix'>{head}{''.join(rows)}</table>"


def matrix_cell(counts: dict[str, int] | None, log: int | None, suite: str) -> str:
    """One matrix cell: pass/fail/skip/xfail counts, coloured by the worst, and the log."""
    if not counts:
        return "<td></td>"
    fail = counts.get("fail", 0) + counts.get("error", 0)
    shown = {"pass": counts.get("pass", 0), "fail": fail, "skip": counts.get("skip", 0),
             "xfail": counts.get("xfail", 0)}
    text = " ".join(f"<span class='{w}'>{w} {n}</span>" for w, n in shown.items() if n)
    link = f" <a class='log' href='log/{log}/{quote(suite, safe='')}/'>log</a>" if log else ""
    return f"<td class='{'fail' if fail else 'pass'}'>{text}{link}</td>"


def changes_html(store: Store, found: buildstatus.Status) -> str:
    """Regressions, fixes (SQUAD's, as the API has them) and missing tests against the
    previous build."""
    if found.baseline_id is None:
        return "<p id='comparison'>No previous build to compare with.</p>"
    base = store.db.execute("SELECT version FROM build WHERE id = ?",
                            (found.baseline_id,)).fetchone()[0]
    parts = [f"<h2 id='comparison'>Compared with <a href='../{quote(str(base))}/'>{esc(base)}"
             "</a></h2>"]
    for title, grouped, change in (("Regressions", found.regressions, " (pass &rarr; fail)"),
                                   ("Fixes", found.fixes, " (fail &rarr; pass)"),
                                   ("Missing tests", found.missing, "")):
        shown = [(env, name) for env, names in sorted(grouped.items()) for name in names]
        items = "".join(f"<li>{esc(env)}: {test_link(name)}{change}</li>"
                        for env, name in shown[:LISTED])
        more = f"<li>... and {len(shown) - LISTED} more</li>" if len(shown) > LISTED else ""
        ident = title.split()[0].lower()
        parts.append(f"<h3>{title} ({len(shown)})</h3><ul id='{ident}'>{items}{more}</ul>")
    return "".join(parts)


def test_link(name: str) -> str:
    """A link to a test's history page (relative to a build page)."""
    return f"<a href='../../test/?name={quote(name, safe='/')}'>{esc(name)}</a>"


FAILING = """
SELECT environment.slug, suite.slug || '/' || test.name, test.log FROM test
JOIN environment ON environment.id = test.environment_id JOIN suite ON suite.id = test.suite_id
WHERE test.build_id = ? AND test.result IN ('fail', 'error') ORDER BY test.id LIMIT ?
"""


def build_page(store: Store, group: str, project: str, version: str, authorised: bool) -> str:
    """A build: counts, metadata, the matrix, changes against the previous build, failures."""
    project_id = visible_project(store, group, project, authorised)
    build = build_id(store, project_id, version, f"{group}/{project}")
    found = buildstatus.status(store, build)
    counts = word_counts(found)
    failing = store.db.execute(FAILING, (build, LISTED)).fetchall()
    total = counts.get("fail", 0) + counts.get("error", 0)
    shown = " open" if total <= OPEN_LOGS else ""
    logs = "".join(f"<details class='failure'{shown}><summary class='fail'>"
                   f"{esc(env)}: {esc(name)}</summary><pre>{esc(log)}</pre></details>"
                   for env, name, log in failing)
    if total > LISTED:
        logs += f"<p>... and {total - LISTED} more</p>"
    head = "".join(f"<th>{c}</th>" for c in ("tests", "xfail", "pass", "skip", "fail"))
    summary = f"<table id='counts'><tr>{head}</tr><tr>{cells(counts)}</tr></table>"
    body = (f"{summary}{metadata_html(store, build)}{matrix_html(found)}"
            f"{changes_html(store, found)}"
            f"<h2>Failing tests ({total})</h2>{logs}")
    nav = f" / <a href='/{group}/{project}/'>{esc(group)}/{esc(project)}</a> / {esc(version)}"
    return page(f"{group}/{project} build {version}", body, nav)


def log_text(store: Store, group: str, project: str, version: str, testrun: int, suite: str,
             authorised: bool) -> str:
    """One suite's console log from a test run of the build."""
    project_id = visible_project(store, group, project, authorised)
    build = build_id(store, project_id, version, f"{group}/{project}")
    row = store.db.execute("SELECT log FROM testrun WHERE id = ? AND build_id = ?",
                           (testrun, build)).fetchone()
    logs = split_logs(str(row[0])) if row else {}
    if suite not in logs:
        raise UserError(f"no console log of suite {suite!r} in test run {testrun}")
    return logs[suite]


def test_page(store: Store, group: str, project: str, name: str, authorised: bool) -> str:
    """A test's history: result per build and environment, the first build it failed in."""
    project_id = visible_project(store, group, project, authorised)
    suite, _, short = name.rpartition("/")
    rows = store.db.execute(
        "SELECT build.id, build.version, environment.slug, test.result FROM test"
        " JOIN build ON build.id = test.build_id JOIN suite ON suite.id = test.suite_id"
        " JOIN environment ON environment.id = test.environment_id"
        " WHERE build.project_id = ? AND suite.slug = ? AND test.name = ?"
        " ORDER BY build.id DESC, test.id", (project_id, suite, short)).fetchall()
    if not rows:
        raise UserError(f"no test {name!r} in project {group}/{project}")
    results: dict[tuple[str, str], str] = {}
    builds: dict[str, None] = {}
    for _, version, env, word in rows:
        builds[str(version)] = None
        results[(str(version), str(env))] = "fail" if word == "error" else str(word)
    envs = sorted({e for _, e in results})
    failed = [v for v in builds if any(results.get((v, e)) == "fail" for e in envs)]
    first = (f"<p id='first-failure'>First failed in <a href='../build/{quote(failed[-1])}/'>"
             f"{esc(failed[-1])}</a></p>") if failed else "<p id='first-failure'>Never failed</p>"
    head = "<tr><th>build</th>" + "".join(f"<th>{esc(e)}</th>" for e in envs) + "</tr>"
    body = "".join(f"<tr><td><a href='../build/{quote(v)}/'>{esc(v)}</a></td>" + "".join(
        f"<td class='{results.get((v, e), '')}'>{results.get((v, e), '')}</td>" for e in envs)
        + "</tr>" for v in builds)
    nav = f" / <a href='/{group}/{project}/'>{esc(group)}/{esc(project)}</a> / {esc(name)}"
    return page(f"{name} in {group}/{project}",
                f"{first}<table id='history'>{head}{body}</table>", nav)
