"""The data tables: packaged, replaceable with --lkft-lab-dir, and one line per bad entry.

Also the one option resolver: command line, then environment, then ini; an empty value
counts as not given wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TESTSUITES
from pytest_lkft.build.inputs import Fragment
from pytest_lkft.devices.crash import load_crash_patterns
from pytest_lkft.errors import UserError
from pytest_lkft.settings import tables
from pytest_lkft.settings.archs import load_archs
from pytest_lkft.settings.devices import load_devices
from pytest_lkft.settings.options import Resolver


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    """A user's table directory, used for the test and forgotten after it."""
    tables.set_lab_dir(tmp_path)
    yield tmp_path
    tables.set_lab_dir(None)


def test_the_tables_are_read_from_the_package() -> None:
    assert tables.data_path("qemu-devices.yaml").parent == tables.packaged_dir()
    assert tables.packaged_dir().parent.name == "pytest_lkft"
    assert load_devices().get("qemu-arm64").cpu == "cortex-a57"
    assert load_archs()["arm64"].cross_compile == "aarch64-linux-gnu-"
    assert load_crash_patterns()[0].kind == "kasan"


def test_a_table_in_the_lab_dir_replaces_the_packaged_one(lab_dir: Path) -> None:
    (lab_dir / "qemu-devices.yaml").write_text("""
devices:
  board-x:
    arch: arm64
    qemu: qemu-system-aarch64
    apt: qemu-system-arm
    machine: virt
    cpu: max
    memory: 512
    smp: 1
    console: ttyAMA0
    kernel_image: Image
    drive: ""
""")
    assert sorted(load_devices().devices) == ["board-x"]
    assert load_devices().get("board-x").extra_args == ()
    assert load_archs()["arm64"].arch == "arm64"  # not in the lab dir: the packaged one


@pytest.mark.parametrize(("table", "text", "message"), [
    ("archs.yaml", "arm64: {arch: arm64}",
     "archs.yaml: entry 'arm64': missing key 'srcarch'"),
    ("archs.yaml", "arm64: {arch: arm64, srcarch: arm64, cross_compile: x, machine: m, "
     "kernel_image: I, kernel_path: p, dtbs: true, apt: a, colour: red}",
     "archs.yaml: entry 'arm64': unknown key 'colour'; valid keys: apt, arch, cross_compile, "
     "dtbs, kernel_image, kernel_path, machine, srcarch"),
    ("archs.yaml", "arm64: {arch: arm64, srcarch: arm64, cross_compile: x, machine: m, "
     "kernel_image: I, kernel_path: p, dtbs: yes please, apt: a}",
     "archs.yaml: entry 'arm64': key 'dtbs' is 'yes please', expected bool"),
    ("archs.yaml", "- arm64", "archs.yaml: the file must be a mapping, not list"),
    ("qemu-devices.yaml", "devices: {qemu-x: {arch: arm64}}",
     "qemu-devices.yaml: entry 'qemu-x': missing key 'qemu'"),
    ("qemu-devices.yaml", "devices: {qemu-x: {arch: arm64, qemu: q, apt: a, machine: m, "
     "cpu: c, memory: lots, smp: 1, console: c, kernel_image: I, drive: d}}",
     "qemu-devices.yaml: entry 'qemu-x': key 'memory' is 'lots', expected int"),
    ("crash-patterns.yaml", "- {kind: oops, pattern: '(unclosed'}",
     "crash-patterns.yaml: entry '#1': pattern '(unclosed' is not a regular expression"),
    ("crash-patterns.yaml", "- {kind: oops, pattern: x}\n- {kind: oops}",
     "crash-patterns.yaml: entry '#2': missing key 'pattern'"),
    ("archs.yaml", "arm64: [", "archs.yaml is not valid YAML"),
])
def test_a_bad_table_is_one_line_naming_file_entry_and_key(
        lab_dir: Path, table: str, text: str, message: str) -> None:
    (lab_dir / table).write_text(text)
    loader = {"archs.yaml": load_archs, "qemu-devices.yaml": load_devices,
              "crash-patterns.yaml": load_crash_patterns}[table]
    with pytest.raises(UserError) as raised:
        loader()
    assert message in str(raised.value)
    assert str(lab_dir / table) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_lab_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--lkft-lab-dir .*/nowhere: no such directory"):
        tables.set_lab_dir(tmp_path / "nowhere")


def test_lab_dir_option_and_a_bad_table_stop_the_run(pytester: pytest.Pytester) -> None:
    (pytester.path / "mylab").mkdir()
    (pytester.path / "mylab" / "qemu-devices.yaml").write_text(
        "devices: {qemu-arm64: {arch: arm64, cpus: 4}}\n")
    result = pytester.runpytest_subprocess(str(TESTSUITES / "test_boot.py"),
                                           "--lkft-device=qemu-arm64", "--lkft-lab-dir=mylab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: */mylab/qemu-devices.yaml: entry 'qemu-arm64': "
                                 "unknown key 'cpus'; valid keys: *"])
    result = pytester.runpytest_subprocess(str(TESTSUITES / "test_boot.py"),
                                           "--lkft-device=qemu-arm64", "--lkft-lab-dir=no")
    result.stderr.fnmatch_lines(["ERROR: --lkft-lab-dir */no: no such directory; *"])


def test_a_packaged_kconfig_fragment_by_name() -> None:
    fragment = Fragment.parse("qemu-virt-kunit")
    assert fragment.kind == "file"
    assert Path(fragment.value) == tables.packaged_dir() / "kconfig" / "qemu-virt-kunit.config"
    with pytest.raises(UserError, match=r"fragment's name \(gpio-sim, perf, qemu-virt-kunit, "
                                        r"rcutorture\)"):
        Fragment.parse("qemu-virt-kunits")


def resolver(cli: dict[str, object], env: dict[str, str],
             ini: dict[str, list[str]] | None = None) -> Resolver:
    return Resolver(lambda dest: cli.get(dest), env, (ini or {}).get, "pytest.ini")


def test_the_resolver_takes_command_line_then_environment_then_ini() -> None:
    env = {"LKFT_KERNEL": "/env/Image", "LKFT_TESTS": "boot,smoke"}
    found = resolver({"lkft_kernel": "/cli/Image"}, env).value("lkft_kernel")
    assert (found.value, found.source, found.origin) == ("/cli/Image", "--lkft-kernel",
                                                         "--lkft-kernel")
    found = resolver({}, env).value("lkft_kernel")
    assert (found.value, found.source, found.origin) == (
        "/env/Image", "LKFT_KERNEL", "LKFT_KERNEL environment variable")
    assert resolver({}, env).values("lkft_tests").value == ("boot", "smoke")
    found = resolver({}, {}, {"lkft_tests": ["kunit", "boot"]}).values("lkft_tests")
    assert (found.value, found.source) == (("kunit", "boot"), "lkft_tests in pytest.ini")
    found = resolver({"lkft_device": ["qemu-arm64,qemu-x86_64", "qemu-arm64"]}, {}).values(
        "lkft_device")
    assert found.value == ("qemu-arm64", "qemu-x86_64")


@pytest.mark.parametrize("dest", ["lkft_cache_dir", "lkft_kernel", "lkft_squad_url",
                                  "lkft_tree", "lkft_place_timeout"])
def test_an_empty_value_is_not_given_wherever_it_comes_from(dest: str) -> None:
    """Each of the four resolvers of old did its own thing with "" (issue 13)."""
    env_name = {"lkft_place_timeout": "LKFT_PLACE_TIMEOUT"}.get(dest, dest.upper())
    assert not resolver({dest: ""}, {}).value(dest)
    assert resolver({dest: ""}, {env_name: "x"}).value(dest).source == env_name
    assert not resolver({}, {env_name: ""}).value(dest)
