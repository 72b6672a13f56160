"""Run in the squad-client venv: print what squad-client's Python API reads, as JSON.

Usage: python api_dump.py URL TOKEN GROUP PROJECT
Every object is printed with its attributes as squad-client fills them, so the caller can
compare two servers field by field.
"""

import json
import sys

from squad_client.core.api import SquadApi
from squad_client.core.models import ALL, Squad


def fields(obj):
    """An object's attributes as squad-client filled them (its `attrs`, or all)."""
    names = obj.attrs or [k for k in vars(obj) if not k.startswith("_")]
    return {name: getattr(obj, name, None) for name in names}


def main():
    url, token, group_slug, project_slug = sys.argv[1:5]
    SquadApi.configure(url=url, token=token or None)
    squad = Squad()
    group = squad.group(group_slug)
    project = group.project(project_slug)
    builds = sorted(project.builds(count=ALL).values(), key=lambda b: b.version)
    out = {
        "version": SquadApi.version,
        "groups": [fields(g) for g in squad.groups(slug=group_slug).values()],
        "project": fields(project),
        "environments": sorted((fields(e) for e in project.environments(count=ALL).values()),
                               key=lambda e: e["slug"]),
        "suites": sorted((fields(s) for s in project.suites(count=ALL).values()),
                         key=lambda s: s["slug"]),
        "builds": [],
        "compare": None,
    }
    for build in builds:
        status = build.status
        out["builds"].append({
            "build": fields(build),
            "status": {k: v for k, v in vars(status).items() if not k.startswith("_")},
            "metadata": {k: v for k, v in vars(build.metadata).items() if not k.startswith("_")},
            "testruns": [fields(t) | {"metadata": vars(t.metadata),
                                      "attachments": [vars(a) for a in t.attachments]}
                         for t in build.testruns(prefetch_metadata=True).values()],
            "tests": [fields(t) for t in build.tests().values()],
            "metrics": [fields(m) for m in build.metrics().values()],
            "failing": sorted(t.name for t in build.tests(result=False).values()),
        })
    if len(builds) >= 2:
        out["compare"] = project.compare_builds(builds[0].id, builds[1].id)
    issues = squad.knownissues(test_name="ltp-syscalls/known*")
    out["knownissues"] = [fields(k) for k in issues.values()]
    print(json.dumps(out, sort_keys=True, default=str))


main()
