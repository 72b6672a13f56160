"""The data tables: QEMU devices, architectures, crash patterns, kconfig fragments, LTP runner.

They ship inside the package (`pytest_lkft/data/`, read with `importlib.resources`), so a
wheel install has them. `--lkft-lab-dir DIR` (or `LKFT_LAB_DIR`) points at a user's own
tables: a file there replaces the packaged file of the same name, the others stay packaged.

`read_table` and `make_entry` are the one way a YAML table is read: an error names the
file, the entry and the bad key, in one line.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pytest_lkft.errors import UserError

LAB_DIR_ENV = "LKFT_LAB_DIR"
# libyaml's loader when PyYAML has it: the device table is read before the first boot starts.
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")

_lab_dir: Path | None = None  # --lkft-lab-dir, set once per process by the plugin


def packaged_dir() -> Path:
    """The package's own data directory."""
    return Path(str(resources.files("pytest_lkft") / "data"))


def set_lab_dir(path: Path | None, source: str = "--lkft-lab-dir") -> None:
    """Use the tables in `path` before the packaged ones; UserError when it is no directory."""
    global _lab_dir
    if path is not None and not path.is_dir():
        raise UserError(f"{source} {path}: no such directory; give the directory holding your "
                        "own qemu-devices.yaml, archs.yaml or crash-patterns.yaml")
    _lab_dir = path
    for loader in _CACHED:
        loader.cache_clear()


def lab_dir() -> Path | None:
    """The user's table directory: --lkft-lab-dir, else $LKFT_LAB_DIR, else None."""
    if _lab_dir is not None:
        return _lab_dir
    value = os.environ.get(LAB_DIR_ENV)
    return Path(value) if value else None


def data_path(name: str) -> Path:
    """`name` (e.g. `qemu-devices.yaml`, `kconfig/x.config`) in the user's lab directory if
    it is there, else in the package."""
    user = lab_dir()
    if user is not None and (user / name).exists():
        return user / name
    return packaged_dir() / name


def read_table(path: Path) -> Any:
    """A YAML table; a missing or malformed file is one UserError naming it."""
    try:
        return yaml.load(path.read_text(), Loader=YAML_LOADER)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}".splitlines()[0]) from None


def expect(path: Path, data: Any, kind: type, what: str) -> Any:
    """`data` if it is a `kind` (dict, list), else a UserError saying what the file must hold."""
    if not isinstance(data, kind):
        shape = "mapping" if kind is dict else "list"
        raise UserError(f"{path}: {what} must be a {shape}, not {type(data).__name__}; see "
                        f"the packaged {path.name}")
    return data


def make_entry(cls: Callable[..., T], path: Path, name: str, entry: Any,
               convert: Mapping[str, Callable[[Any], Any]] | None = None) -> T:
    """Build dataclass `cls` from one table entry, checking its keys and their types.

    `convert` turns raw values of some keys into what the field holds (a nested entry, a
    tuple). Unknown keys, missing keys and wrong types each give one line naming the file,
    the entry and the key.
    """
    where = f"{path}: entry {name!r}"
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a mapping of keys, not {type(entry).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if f.init and f.name != "name"}
    unknown = sorted(set(entry) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; valid keys: "
                        f"{', '.join(sorted(fields))}")
    missing = [key for key, f in fields.items() if key not in entry and _required(f)]
    if missing:
        raise UserError(f"{where}: missing key {missing[0]!r}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in entry.items():
        if convert and key in convert:
            value = _converted(convert[key], value, where, key)
        elif not _fits(value, hints[key]):
            raise UserError(f"{where}: key {key!r} is {value!r}, expected {_shown(hints[key])}")
        values[key] = value
    return cls(name=name, **values) if "name" in hints else cls(**values)


def _converted(convert: Callable[[Any], Any], value: Any, where: str, key: str) -> Any:
    try:
        return convert(value)
    except UserError:
        raise
    except (TypeError, ValueError, KeyError) as error:
        raise UserError(f"{where}: key {key!r} is {value!r}: {error}") from None


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _fits(value: Any, hint: Any) -> bool:
    """True when a YAML value fits a field's simple type hint (str, int, bool, X | None)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # containers and nested entries are checked by their `convert`


def _shown(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "None")


_CACHED: list[Any] = []  # loaders whose results depend on the lab directory


def depends_on_lab_dir(loader: T) -> T:
    """Mark a cached loader to be cleared when --lkft-lab-dir changes the tables."""
    _CACHED.append(loader)
    return loader
