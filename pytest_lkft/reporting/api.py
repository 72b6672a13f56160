"""SQUAD 1.98's REST read API over the embedded store, for SQUAD's own clients.

squad-client 0.45 (`download-results`, `create-or-update-project`, `Squad().groups()`,
`.builds()`, `.tests()` ...) and squad-report read these shapes. Each one was taken from
a real SQUAD 1.98 holding the same submissions (tests/test_squad_clients.py compares them
field by field):

- lists of groups, projects, builds, environments, suites, known issues and a build's test
  runs are paged by `limit`/`offset` with `count`, `next`, `previous`, `results`;
  tests, metrics and test runs are paged by a cursor (`next`/`previous`, no `count`),
  newest first for tests, as SQUAD's CursorPagination does;
- filters are SQUAD's (django-filter) names: `field`, `field__in`, `field__lt` ...,
  related ids as `project`, `build`, `environment__id__in`; unknown ones are ignored;
  `fields=a,b` keeps only those keys, `ordering=[-]field` orders builds;
- a result is SQUAD's: `result` true (pass), false (fail, or xfail with
  `has_known_issues`), null (skip), with `status` the word;
- a build's `status` has SQUAD's counts and the regressions and fixes against the
  previous build (computed once, cached in the store until the build changes).

A private project (`is_public` false) is visible only to a request carrying the token.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from pytest_lkft.reporting import buildstatus
from pytest_lkft.reporting.squadjson import (
    Context,
    Json,
    Request,
    Row,
    attachment_names,
    build_json,
    environment_json,
    group_json,
    knownissue_json,
    metric_json,
    project_json,
    status_json,
    suite_json,
    test_json,
    testrun_json,
    when,
)
from pytest_lkft.reporting.store import Store, split_logs

__all__ = ["ApiError", "Request", "answer", "parse_query", "save_project", "when"]

SQUAD_VERSION = "1.98"
PAGE_SIZE, MAX_PAGE = 50, 1000
LOOKUPS = ("in", "lt", "lte", "gt", "gte", "startswith", "contains", "icontains", "isnull",
           "exact")
FAILED = ("fail", "error", "xfail")


class ApiError(Exception):
    """An answer other than 200, with SQUAD's `{"detail": ...}` body."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def parse_query(query: str) -> dict[str, str]:
    """A query string as SQUAD reads it: the last value of each key."""
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


# -- filters --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """A SQUAD list: its rows' SQL, filterable columns and serialiser."""

    select: str                       # SELECT ... FROM ... (aliases as in `columns`)
    columns: dict[str, str]           # filter name -> SQL expression
    visible: str                      # SQL: the row is in project ids {ids}
    serialise: Callable[[Request, Row, Context], Json]
    cursor: bool = False              # cursor paging (tests, metrics, test runs)
    order: str = "id"                 # default order for limit/offset lists


def condition(resource: Resource, name: str, value: str) -> tuple[str, list[object]] | None:
    """SQL for one SQUAD filter, or None when SQUAD would ignore it."""
    parts = name.split("__")
    lookup = parts.pop() if len(parts) > 1 and parts[-1] in LOOKUPS else "exact"
    if len(parts) > 1 and parts[-1] == "id":
        parts.pop()
    column = resource.columns.get("__".join(parts))
    if column is None:
        return None
    if lookup == "in":
        items = [v for v in value.split(",") if v]
        return f"{column} IN ({', '.join('?' * len(items))})", list(items)
    if lookup == "isnull":
        return f"{column} IS {'' if value.lower() in ('true', '1') else 'NOT '}NULL", []
    if lookup in ("startswith", "contains", "icontains"):
        pattern = value.replace("%", r"\%").replace("_", r"\_")
        pattern = f"{pattern}%" if lookup == "startswith" else f"%{pattern}%"
        return f"{column} LIKE ? ESCAPE '\\'", [pattern]
    operator = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}.get(lookup, "=")
    return f"{column} {operator} ?", [boolean(value)]


def boolean(value: str) -> object:
    """Django's boolean filter values as SQLite integers; others unchanged."""
    return {"true": 1, "false": 0}.get(value.lower(), value)


def where(resource: Resource, request: Request,
          visible: list[int] | None) -> tuple[str, list[object]]:
    """The WHERE clause of a list: the request's filters and the caller's privacy."""
    clauses, params = ["1"], []
    for name, value in [*request.query.items(), *request.scope.items()]:
        if name in ("limit", "offset", "cursor", "fields", "ordering", "format", "search"):
            continue
        found = condition(resource, name, value)
        if found:
            clauses.append(found[0])
            params += found[1]
    if visible is not None:
        clauses.append(resource.visible.format(ids=", ".join("?" * len(visible)) or "NULL"))
        params += visible
    return " AND ".join(clauses), params


BUILD_RUNS = "(SELECT count(*) FROM testrun WHERE testrun.build_id = build.id)"
RESOURCES: dict[str, Resource] = {
    "groups": Resource(
        'SELECT "group".id, "group".slug FROM "group"',
        {"id": '"group".id', "slug": '"group".slug', "name": '"group".slug'},
        '"group".id IN (SELECT group_id FROM project WHERE id IN ({ids}))', group_json),
    "projects": Resource(
        'SELECT project.*, "group".slug AS group_slug, (SELECT max(created_at) FROM build'
        ' WHERE build.project_id = project.id) AS updated FROM project'
        ' JOIN "group" ON "group".id = project.group_id',
        {"id": "project.id", "slug": "project.slug", "name": "project.slug",
         "group": "project.group_id", "group__slug": '"group".slug',
         "full_name": "\"group\".slug || '/' || project.slug",
         "is_public": "project.is_public"},
        "project.id IN ({ids})", project_json),
    "builds": Resource(
        f"SELECT build.*, {BUILD_RUNS} AS runs FROM build",
        {"id": "build.id", "version": "build.version", "project": "build.project_id",
         "created_at": "build.created_at", "status__finished": f"({BUILD_RUNS} > 0)",
         "project__full_name": "(SELECT \"group\".slug || '/' || project.slug FROM project"
                               ' JOIN "group" ON "group".id = project.group_id'
                               " WHERE project.id = build.project_id)"},
        "build.project_id IN ({ids})", build_json, order="-datetime"),
    "environments": Resource(
        "SELECT * FROM environment",
        {"id": "id", "slug": "slug", "name": "slug", "project": "project_id"},
        "project_id IN ({ids})", environment_json),
    "suites": Resource(
        "SELECT * FROM suite", {"id": "id", "slug": "slug", "name": "slug",
                                "project": "project_id"}, "project_id IN ({ids})", suite_json),
    "testruns": Resource(
        "SELECT testrun.id, testrun.build_id, testrun.environment_id, testrun.job_id,"
        " testrun.job_url, testrun.created_at, testrun.log,"
        " EXISTS (SELECT 1 FROM test WHERE test.testrun_id = testrun.id) AS tests,"
        " EXISTS (SELECT 1 FROM metric WHERE metric.testrun_id = testrun.id) AS metrics"
        " FROM testrun JOIN build ON build.id = testrun.build_id",
        {"id": "testrun.id", "build": "testrun.build_id", "job_id": "testrun.job_id",
         "environment": "testrun.environment_id", "build__version": "build.version"},
        "build.project_id IN ({ids})", testrun_json, cursor=True),
    "tests": Resource(
        "SELECT test.* FROM test JOIN build ON build.id = test.build_id",
        {"id": "test.id", "build": "test.build_id", "environment": "test.environment_id",
         "suite": "test.suite_id", "test_run": "test.testrun_id", "name": "test.name",
         "metadata__name": "test.name", "short_name": "test.name",
         "build__version": "build.version", "build__project": "build.project_id",
         "has_known_issues": "(test.result = 'xfail')",
         "result": "(CASE test.result WHEN 'pass' THEN 1 WHEN 'skip' THEN NULL ELSE 0 END)"},
        "build.project_id IN ({ids})", test_json, cursor=True),
    "metrics": Resource(
        "SELECT metric.* FROM metric JOIN build ON build.id = metric.build_id",
        {"id": "metric.id", "build": "metric.build_id", "environment": "metric.environment_id",
         "suite": "metric.suite_id", "test_run": "metric.testrun_id", "name": "metric.name",
         "metadata__name": "metric.name", "unit": "metric.unit"},
        "build.project_id IN ({ids})", metric_json, cursor=True),
    "knownissues": Resource(
        "SELECT * FROM knownissue",
        {"id": "id", "test_name": "test_name", "title": "test_name"},
        "project_id IN ({ids})", knownissue_json),
}
TEST_ORDER = {"tests": "DESC", "metrics": "ASC", "testruns": "ASC"}  # SQUAD's orderings
BUILD_ORDER = {"id": "build.id", "version": "build.version", "created_at": "build.created_at",
               "datetime": "build.created_at"}


# -- paging ---------------------------------------------------------------------------


def page_size(request: Request) -> int:
    """The `limit` asked for, capped as SQUAD caps it."""
    try:
        return max(1, min(MAX_PAGE, int(request.query.get("limit", PAGE_SIZE))))
    except ValueError:
        return PAGE_SIZE


def link(request: Request, **changes: object) -> str:
    """The request's own URL with some query parameters changed (sorted, as DRF does)."""
    query = {**request.query, **{k: str(v) for k, v in changes.items() if v is not None}}
    for key in [k for k, v in changes.items() if v is None]:
        query.pop(key, None)
    return f"{request.base}/api/{request.path}?{urlencode(sorted(query.items()))}"


def fields_of(request: Request, objects: list[Json]) -> list[Json]:
    """Keep only the `fields=` keys, as SQUAD's DynamicFieldsModelSerializer does."""
    wanted = request.query.get("fields")
    if not wanted:
        return objects
    keep = set(wanted.split(","))
    return [{k: v for k, v in o.items() if k in keep} for o in objects]


def ordering(request: Request, resource: Resource) -> str:
    """ORDER BY for a limit/offset list; SQUAD ignores an unknown `ordering`."""
    asked = request.query.get("ordering", "")
    name = asked.lstrip("-")
    if resource is RESOURCES["builds"]:
        if name in BUILD_ORDER:
            return f"{BUILD_ORDER[name]} {'DESC' if asked.startswith('-') else 'ASC'}, build.id"
        return "build.created_at DESC, build.id DESC"
    return "id"


def offset_page(store: Store, ctx: Context, request: Request, resource: Resource,
                extra: str = "1", params: Iterable[object] = ()) -> Json:
    """A limit/offset page: count, next, previous, results."""
    clause, values = where(resource, request, ctx.restricted())
    values = [*values, *params]
    base = f"{resource.select} WHERE {clause} AND {extra}"
    count = int(store.db.execute(f"SELECT count(*) FROM ({base})", values).fetchone()[0])
    limit = page_size(request)
    try:
        offset = max(0, int(request.query.get("offset", 0)))
    except ValueError:
        offset = 0
    rows = store.db.execute(f"{base} ORDER BY {ordering(request, resource)} LIMIT ? OFFSET ?",
                            [*values, limit, offset]).fetchall()
    following = link(request, offset=offset + limit) if offset + limit < count else None
    before = None
    if offset > 0:
        before = link(request, offset=(offset - limit) or None) if offset - limit > 0 else \
            link(request, offset=None)
    results = [resource.serialise(request, row, ctx) for row in rows]
    return {"count": count, "next": following, "previous": before,
            "results": fields_of(request, results)}


def decode_cursor(value: str) -> tuple[bool, int | None]:
    """DRF's cursor `r=<reverse>&p=<position>` (base64); a bad one is SQUAD's 404."""
    try:
        tokens = parse_qs(base64.b64decode(value.encode("ascii")).decode("ascii"))
        return tokens.get("r", ["0"])[0] == "1", int(tokens["p"][0])
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        raise ApiError(404, "Invalid cursor") from error


def encode_cursor(reverse: bool, position: int) -> str:
    """DRF's cursor for a position (the id of the row at the page's edge)."""
    tokens = [("r", "1")] if reverse else []
    text = urlencode([*tokens, ("p", str(position))])
    return base64.b64encode(text.encode("ascii")).decode("ascii")


def cursor_page(store: Store, ctx: Context, request: Request, resource: Resource,
                kind: str) -> Json:
    """A cursor page (SQUAD's tests, metrics, test runs): next, previous, results."""
    clause, values = where(resource, request, ctx.restricted())
    descending = TEST_ORDER[kind] == "DESC"
    column = f"{kind[:-1] if kind != 'testruns' else 'testrun'}.id"
    reverse, position = decode_cursor(request.query["cursor"]) if "cursor" in request.query \
        else (False, None)
    forward = descending != reverse  # walking towards smaller ids
    if position is not None:
        clause += f" AND {column} {'<' if forward else '>'} ?"
        values.append(position)
    limit = page_size(request)
    rows = store.db.execute(f"{resource.select} WHERE {clause} ORDER BY {column}"
                            f" {'DESC' if forward else 'ASC'} LIMIT ?",
                            [*values, limit + 1]).fetchall()
    more, rows = len(rows) > limit, rows[:limit]
    if reverse:
        rows.reverse()
    following = before = None
    if rows and (more or reverse):
        following = link(request, cursor=encode_cursor(False, int(rows[-1]["id"])))
    if rows and (position is not None) and (not reverse or more):
        before = link(request, cursor=encode_cursor(True, int(rows[0]["id"])))
    results = [resource.serialise(request, row, ctx) for row in rows]
    return {"next": following, "previous": before, "results": fields_of(request, results)}


# -- details and build actions --------------------------------------------------------


def one(store: Store, ctx: Context, request: Request, kind: str, ident: int) -> Row:
    """A visible object's row, else SQUAD's 404."""
    resource = RESOURCES[kind]
    clause, values = where(Resource(resource.select, {}, resource.visible, resource.serialise),
                           Request("", {}, "", False), ctx.restricted())
    table = {"groups": '"group"', "testruns": "testrun", "tests": "test",
             "metrics": "metric", "builds": "build", "projects": "project"}.get(kind, "")
    column = f"{table}.id" if table else "id"
    row = store.db.execute(f"{resource.select} WHERE {clause} AND {column} = ?",
                           [*values, ident]).fetchone()
    if not isinstance(row, sqlite3.Row):
        raise ApiError(404, "Not found.")
    return row


def metadata_of(store: Store, build_id: int) -> tuple[Json, dict[str, Json]]:
    """SQUAD's build metadata (one value, or the sorted distinct values) and per test run."""
    per_run = {str(i): json.loads(m) for i, m in store.db.execute(
        "SELECT id, metadata FROM testrun WHERE build_id = ? ORDER BY id", (build_id,))}
    merged: dict[str, list[object]] = {}
    for metadata in per_run.values():
        for key, value in metadata.items():
            values = merged.setdefault(key, [])
            if value not in values:
                values.append(value)
    return ({k: v[0] if len(v) == 1 else sorted(v, key=str) for k, v in merged.items()},
            per_run)


def comparison_json(store: Store, request: Request, baseline: int, target: int) -> Json:
    """SQUAD's compare answer: regressions and fixes, environment -> suite -> tests."""
    if request.query.get("by", "tests") == "metrics":
        return {"regressions": {}, "fixes": {}}  # no metric thresholds in the store
    changes = buildstatus.compare_ids(store.db, baseline, target)
    return {"regressions": changes.regressions, "fixes": changes.fixes}


def build_action(store: Store, ctx: Context, request: Request, ident: int, action: str) -> object:
    """`/api/builds/<id>/<action>/`."""
    row = one(store, ctx, request, "builds", ident)
    if action == "status":
        return status_json(request, buildstatus.status(store, ident))
    if action in ("metadata", "metadata_by_testrun"):
        merged, per_run = metadata_of(store, ident)
        return merged if action == "metadata" else per_run
    if action == "compare":
        target = int_param(request, "target")
        one(store, ctx, request, "builds", target)
        return comparison_json(store, request, ident, target)
    if action == "testruns":
        return offset_page(store, ctx, request, RESOURCES["testruns"], "testrun.build_id = ?",
                           [row["id"]])
    if action in ("tests", "metrics"):
        nested = request.within(build=str(ident))
        return cursor_page(store, ctx, nested, RESOURCES[action], action)
    raise ApiError(404, "Not found.")


def int_param(request: Request, name: str) -> int:
    """A required integer query parameter, else SQUAD's 400."""
    try:
        return int(request.query[name])
    except (KeyError, ValueError) as error:
        raise ApiError(400, f"'{name}' must be a build id") from error


def testrun_action(store: Store, ctx: Context, request: Request, ident: int, action: str) -> object:
    """`/api/testruns/<id>/<action>/`: its tests, metrics, metadata or log."""
    row = store.db.execute("SELECT metadata, log FROM testrun WHERE id = ?", (ident,)).fetchone()
    one(store, ctx, request, "testruns", ident)
    if action in ("tests", "metrics"):
        nested = request.within(test_run=str(ident))
        return cursor_page(store, ctx, nested, RESOURCES[action], action)
    if action == "metadata_file":
        return json.loads(row["metadata"])
    if action == "log_file":  # the submitted `log`; attachments have their own endpoint
        return split_logs(str(row["log"])).get("", "")
    if action == "attachments":
        found = attachment_names(str(row["log"])).get(request.query.get("filename", ""))
        if found is None:
            raise ApiError(404, "Not found.")
        return found
    raise ApiError(404, "Not found.")


# -- writes: create-or-update-project -------------------------------------------------

PROJECT_COLUMNS = ("name", "description")
SETTINGS_TYPES: dict[str, Callable[[str], object]] = {
    "html_mail": boolean, "moderate_notifications": boolean, "is_archived": boolean,
    "force_finishing_builds_on_timeout": boolean, "data_retention_days": int,
    "notification_timeout": int, "wait_before_notification": int,
    "build_confidence_count": int, "build_confidence_threshold": int,
    "important_metadata_keys": str,
}


def save_project(store: Store, request: Request, ident: int | None) -> Json:
    """SQUAD's POST /api/projects/ (create) and PATCH /api/projects/<id>/ (update)."""
    store.db.row_factory = sqlite3.Row
    data = {k: v[-1] for k, v in request.data.items()}
    if ident is None:
        match = re.search(r"/api/groups/(\d+)/?$", data.get("group", ""))
        group = store.db.execute('SELECT slug FROM "group" WHERE id = ?',
                                 (int(match.group(1)) if match else -1,)).fetchone()
        if group is None or not data.get("slug"):
            raise ApiError(400, "a project needs 'group' (an existing group's URL) and 'slug'")
        with store.transaction():
            ident = store._project_id(str(group[0]), data["slug"])
    row = store.db.execute("SELECT settings FROM project WHERE id = ?", (ident,)).fetchone()
    if row is None:
        raise ApiError(404, "Not found.")
    settings = json.loads(row[0] or "{}")
    for key, convert in SETTINGS_TYPES.items():
        if data.get(key, "") != "":
            settings[key] = convert(data[key])
    if request.data.get("enabled_plugins_list"):
        settings["enabled_plugins_list"] = request.data["enabled_plugins_list"]
    with store.transaction():
        store.db.execute("UPDATE project SET settings = ? WHERE id = ?",
                         (json.dumps(settings), ident))
        for column in PROJECT_COLUMNS:
            if column in data:
                store.db.execute(f"UPDATE project SET {column} = ? WHERE id = ?",
                                 (data[column], ident))
        if "is_public" in data:
            store.db.execute("UPDATE project SET is_public = ? WHERE id = ?",
                             (boolean(data["is_public"]), ident))
    ctx = Context(store, Request("", {}, request.base, True))
    return project_json(request, one(store, ctx, request, "projects", ident), ctx)


# -- routing --------------------------------------------------------------------------

DETAIL = re.compile(r"^([a-z]+)/(\d+)/(?:([a-z_]+)/)?$")
LIST = re.compile(r"^([a-z]+)/$")


def answer(store: Store, request: Request) -> object:
    """Answer a GET of `/api/<path>`: a JSON-able object, or raise ApiError."""
    store.db.row_factory = sqlite3.Row
    ctx = Context(store, request)
    path = request.path if request.path.endswith("/") else request.path + "/"
    if path in ("", "/"):
        return {kind: f"{request.base}/api/{kind}/" for kind in RESOURCES}
    if path == "version/":
        return SQUAD_VERSION
    if m := LIST.match(path):
        return list_of(store, ctx, request, m[1])
    m = DETAIL.match(path)
    if m is None or m[1] not in RESOURCES:
        raise ApiError(404, "Not found.")
    kind, ident, action = m[1], int(m[2]), m[3]
    if action is None:
        return RESOURCES[kind].serialise(request, one(store, ctx, request, kind, ident), ctx)
    return detail_action(store, ctx, request, kind, ident, action)


def list_of(store: Store, ctx: Context, request: Request, kind: str) -> object:
    """A whole SQUAD list, paged as SQUAD pages it."""
    resource = RESOURCES.get(kind)
    if resource is None:
        raise ApiError(404, "Not found.")
    if resource.cursor:
        return cursor_page(store, ctx, request, resource, kind)
    return offset_page(store, ctx, request, resource)


def detail_action(store: Store, ctx: Context, request: Request, kind: str, ident: int,
                  action: str) -> object:
    """An action on one object: a build's status, a project's builds, a test run's log ..."""
    if kind == "builds":
        return build_action(store, ctx, request, ident, action)
    if kind == "testruns":
        return testrun_action(store, ctx, request, ident, action)
    if kind == "projects" and action in ("builds", "compare_builds", "basic_settings"):
        row = one(store, ctx, request, "projects", ident)
        if action == "builds":
            return offset_page(store, ctx, request, RESOURCES["builds"], "build.project_id = ?",
                               [ident])
        if action == "basic_settings":
            settings = json.loads(row["settings"] or "{}")
            return {"build_confidence_count": settings.get("build_confidence_count", 20),
                    "build_confidence_threshold": settings.get("build_confidence_threshold", 90)}
        baseline, target = int_param(request, "baseline"), int_param(request, "to_compare")
        for build in (baseline, target):
            one(store, ctx, request, "builds", build)
        return comparison_json(store, request, baseline, target)
    if kind == "suites" and action == "tests":
        nested = request.within(suite=str(ident))
        return cursor_page(store, ctx, nested, RESOURCES["tests"], "tests")
    raise ApiError(404, "Not found.")
