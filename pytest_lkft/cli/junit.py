"""`lkft junit merge A.xml B.xml ... -o ALL.xml`: one JUnit file from several machines or shards.

Every `<testsuite>` of every input is kept as it is (pytest names each one "pytest", so
suites are not merged by name); the `<testsuites>` root gets the summed counts and time.
Plain `xml.etree`, so no extra dependency.
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.files import atomically

COUNTERS = ("tests", "failures", "errors", "skipped")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the options of `lkft junit merge`."""
    parser.add_argument("action", choices=["merge"], help="What to do: merge")
    parser.add_argument("inputs", nargs="+", metavar="FILE", help="JUnit XML files to merge")
    parser.add_argument("-o", "--output", required=True, help="Merged JUnit XML file to write")


def read_suites(path: Path) -> list[ET.Element]:
    """The `<testsuite>` elements of one JUnit file."""
    try:
        root = ET.parse(path).getroot()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from error
    except ET.ParseError as error:
        raise UserError(f"{path} is not XML ({error}); is it a JUnit file?") from error
    if root.tag == "testsuite":
        return [root]
    if root.tag == "testsuites":
        return list(root.iter("testsuite"))
    raise UserError(f"{path} is not JUnit XML: its root is <{root.tag}>, not <testsuites>")


def number(suite: ET.Element, name: str) -> float:
    """A numeric attribute of a suite, 0 when absent or not a number."""
    try:
        return float(suite.get(name, "0"))
    except ValueError:
        return 0.0


def merge(paths: list[Path]) -> ET.Element:
    """One `<testsuites>` holding every input suite, with summed counts."""
    root = ET.Element("testsuites", name="lkft")
    for path in paths:
        for suite in read_suites(path):
            root.append(suite)
    for counter in COUNTERS:
        root.set(counter, str(int(sum(number(s, counter) for s in root))))
    root.set("time", f"{sum(number(s, 'time') for s in root):.3f}")
    return root


def write(root: ET.Element, output: Path) -> None:
    """Write the merged XML atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomically(output) as partial:
        ET.ElementTree(root).write(partial, encoding="utf-8", xml_declaration=True)


def run(args: argparse.Namespace) -> int:
    """Merge the inputs into the output file and say what was written."""
    root = merge([Path(p) for p in args.inputs])
    write(root, Path(args.output))
    print(f"{args.output}: {root.get('tests')} tests from {len(args.inputs)} files"
          f" ({root.get('failures')} failures, {root.get('errors')} errors,"
          f" {root.get('skipped')} skipped)")
    return 0
