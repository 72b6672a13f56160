"""LAVA job definitions, generated from the templates under pytest_lkft/data/lava/.

A suite run is one job: deploy the kernel and initramfs (by URL), boot to a shell, then,
when the suite runs commands, one LAVA test action whose inline definitions (one per
suite) hold the commands as steps, each framed with the console's markers and reported
as a LAVA test case:

    echo "LKFT""-START"; uname -a
    lkft_rc=$?; echo "LKFT""-RC=$lkft_rc"; ...; lava-test-case uname --result pass ...

The template language (see the header of data/lava/qemu.yaml) is a YAML document with
`${name}` placeholders, filled after the YAML is read, so no value can change the
document's structure. Every template gets the same values (URLs, timeouts, prompts, the
test action, ...) and uses those it needs; a template's own values (a U-Boot board's
kernel type, ...) are data: declared with their defaults under its `values:`, their
allowed words under `choices:`, set per device in the LAVA device table.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import yaml

from pytest_lkft.errors import UserError
from pytest_lkft.settings.devices import QemuSpec
from pytest_lkft.settings.tables import data_path, depends_on_lab_dir, lab_dir, packaged_dir

TEMPLATES = "lava"  # the templates' directory among the tables: lava/<name>.yaml
NOT_TEMPLATES = {"devices"}
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
WHOLE = re.compile(r"^\$\{(\w+)\}$")
CASE_ID = re.compile(r"[^A-Za-z0-9_.-]")
MARGIN = 120  # seconds the job may take beyond its actions' own timeouts
DEPLOY_TIMEOUT = 600


@dataclass(frozen=True)
class Step:
    """One command of a suite run: its suite (LAVA definition), case name and timeout."""

    suite: str
    name: str
    command: str
    timeout: float

    @property
    def case_id(self) -> str:
        """The case name as LAVA takes it (no blanks or shell characters)."""
        return CASE_ID.sub("_", self.name) or "command"


@dataclass
class JobInputs:
    """What a job deploys and how it boots: URLs, command line, timeouts, the steps."""

    device_type: str
    job_name: str
    kernel_url: str
    ramdisk_url: str | None
    ramdisk_compression: str | None = "gz"
    dtb_url: str | None = None
    kernel_compression: str | None = None
    modules_url: str | None = None
    nfsrootfs_url: str | None = None  # instead of the ramdisk
    nfsrootfs_compression: str | None = "gz"
    command_line: str = ""  # the whole command line (qemu)
    console: str = ""  # the kernel's console, for templates whose lab builds the line
    boot_args: str = ""  # the user's extra kernel arguments, likewise
    boot_timeout: float = 300.0
    queue_timeout: float = 3600.0
    prompts: list[str] = field(default_factory=lambda: ["/ # "])
    kernel_start_message: str | None = None  # None: the device type's; "": wait for none
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # the template's own


def known_templates() -> list[str]:
    """The job templates' names, packaged and in the lab directory."""
    folders = [packaged_dir() / TEMPLATES]
    user = lab_dir()
    if user is not None:
        folders.append(user / TEMPLATES)
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml")} - NOT_TEMPLATES)


@depends_on_lab_dir
@cache
def load_template(name: str) -> dict[str, Any]:
    """A job template (`qemu` -> lava/qemu.yaml, packaged or in --lkft-lab-dir), as data."""
    path = data_path(f"{TEMPLATES}/{name}.yaml")
    if name in NOT_TEMPLATES or not path.exists():
        raise UserError(f"no LAVA job template {name!r}; known: {', '.join(known_templates())} "
                        f"(add {name}.yaml beside {path.parent / 'qemu.yaml'})")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}".splitlines()[0]) from None
    if not isinstance(loaded, dict) or "job" not in loaded:
        raise UserError(f"{path} has no `job:` mapping; see the packaged lava/qemu.yaml")
    return loaded


def template_values(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The template's own values: its `values:` defaults updated with `given`; a value it
    does not declare, or a word not among its `choices:`, is a one-line UserError."""
    template = load_template(name)
    declared = dict(template.get("values") or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        raise UserError(f"LAVA job template {name!r} takes no value {unknown[0]!r}; "
                        f"its values: {takes}")
    values = {**declared, **given}
    for key, allowed in (template.get("choices") or {}).items():
        if values.get(key) not in allowed:
            words = ", ".join(str(word) for word in allowed)
            raise UserError(f"LAVA job template {name!r}: {key} {values.get(key)!r} is not one "
                            f"of {words}; set a valid one in the device's `values:`")
    return values


class _Drop:
    """What a null whole-value placeholder becomes: its key or list item goes."""


DROP = _Drop()


def fill(template: Any, values: dict[str, Any]) -> Any:
    """The template with its placeholders filled (see the module docstring)."""
    if isinstance(template, str):
        return _fill_text(template, values)
    if isinstance(template, list):
        items = [fill(item, values) for item in template]
        return [item for item in items if item is not DROP]
    if isinstance(template, dict):
        filled = {key: fill(value, values) for key, value in template.items()}
        kept = {key: value for key, value in filled.items() if value is not DROP}
        if "url" in template and "url" not in kept:
            return DROP  # an optional image without a URL
        return kept
    return template


def _fill_text(text: str, values: dict[str, Any]) -> Any:
    whole = WHOLE.match(text)
    if whole:
        value = _value(whole.group(1), values)
        return DROP if value is None else value
    return PLACEHOLDER.sub(lambda m: str(_value(m.group(1), values)), text)


def _value(name: str, values: dict[str, Any]) -> Any:
    if name not in values:
        raise UserError(f"LAVA job template placeholder ${{{name}}} has no value; "
                        f"known: {', '.join(sorted(values))}")
    return values[name]


def step_script(template: dict[str, Any], step: Step) -> str:
    """The shell lines of one step (data/lava/<template>.yaml's `step`)."""
    return str(fill(template["step"], {"command": step.command,
                                       "case": shlex.quote(step.case_id)}))


def definitions(template: dict[str, Any], steps: list[Step]) -> list[dict[str, Any]]:
    """One inline test definition per run of consecutive steps of a suite, in order."""
    groups: list[tuple[str, list[Step]]] = []
    for step in steps:
        if not groups or groups[-1][0] != step.suite:
            groups.append((step.suite, []))
        groups[-1][1].append(step)
    return [fill(template["definition"],
                 {"suite": suite, "steps": [template["prelude"],
                                            *(step_script(template, s) for s in group)]})
            for suite, group in groups]


def make_test_action(template: dict[str, Any], steps: list[Step]) -> dict[str, Any] | None:
    """The job's test action, or None when the suite runs no command (boot, kunit)."""
    if not steps:
        return None
    seconds = int(sum(step.timeout for step in steps)) + 60
    return dict(fill(template["test_action"], {"test_timeout": seconds,
                                               "definitions": definitions(template, steps)}))


def job_values(template: dict[str, Any], inputs: JobInputs) -> dict[str, Any]:
    """Every placeholder's value for `inputs`."""
    action = make_test_action(template, inputs.steps)
    test_seconds = action["test"]["timeout"]["seconds"] if action else 0
    boot = int(inputs.boot_timeout)
    rootfs_commands = "nfs" if inputs.nfsrootfs_url else "ramdisk"
    ramdisk = None if inputs.nfsrootfs_url else inputs.ramdisk_url  # an NFS root replaces it
    return {
        **inputs.values,
        "device_type": inputs.device_type, "job_name": inputs.job_name,
        "job_timeout": DEPLOY_TIMEOUT + boot + test_seconds + MARGIN,
        "queue_timeout": max(1, int(inputs.queue_timeout)), "boot_timeout": boot,
        "deploy_timeout": DEPLOY_TIMEOUT, "context": inputs.context or None,
        "metadata": inputs.metadata or None, "kernel_url": inputs.kernel_url,
        "command_line": inputs.command_line, "ramdisk_url": ramdisk,
        "ramdisk_compression": inputs.ramdisk_compression,
        "ramdisk_overlays": {"lava": True} if action else None,
        "dtb_url": inputs.dtb_url, "prompts": inputs.prompts, "test_action": action,
        "boot_parameters": boot_parameters(inputs.kernel_start_message),
        "kernel_compression": inputs.kernel_compression, "modules_url": inputs.modules_url,
        "nfsrootfs_url": inputs.nfsrootfs_url, "rootfs_commands": rootfs_commands,
        "nfsrootfs_compression": inputs.nfsrootfs_compression,
        "console": inputs.console or None, "boot_args": inputs.boot_args.strip() or None,
    }


def boot_parameters(kernel_start_message: str | None) -> dict[str, str] | None:
    """The boot action's `parameters`: LAVA's kernel-start-message when one is given."""
    if kernel_start_message is None:
        return None
    return {"kernel-start-message": kernel_start_message}


def render_job(template_name: str, inputs: JobInputs) -> str:
    """The job definition (YAML) for `inputs` from the named template."""
    template = load_template(template_name)
    values = template_values(template_name, inputs.values)
    job = fill(template["job"], job_values(template, replace(inputs, values=values)))
    return dump(job)


def qemu_context(spec: QemuSpec, template_name: str = "qemu") -> dict[str, Any]:
    """The job context for LAVA's qemu device type from a QEMU table entry.

    LAVA's arch is the QEMU binary's (`qemu-system-aarch64` -> aarch64). Machine and CPU
    go where LAVA's device type takes them; KVM stays off, as in local runs (TCG).
    """
    arch = spec.qemu.removeprefix("qemu-system-")
    honoured = load_template(template_name).get("context_machine_cpu", [])
    extra = ["-smp", str(spec.smp), "-no-reboot", *spec.extra_args]
    context: dict[str, Any] = {"arch": arch, "memory": spec.memory, "no_kvm": "true"}
    if arch in honoured:
        context.update(machine=spec.machine, cpu=spec.cpu)
    else:
        extra = ["-machine", spec.machine, "-cpu", spec.cpu, *extra]
    context["extra_options"] = [" ".join(extra)]
    return context


def command_line(console: str, boot_args: str) -> str:
    """The kernel command line, as local QEMU runs give it (console, panic=-1, extras)."""
    line = " ".join(filter(None, [f"console={console}", "panic=-1", boot_args.strip()]))
    if '"' in line:
        raise UserError(f"kernel command line {line!r} has a double quote, which LAVA's "
                        "QEMU command cannot carry; drop it from --lkft-boot-args")
    return line


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (steps with here-documents) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(job: Any) -> str:
    """A job as YAML, in its keys' order, steps as literal blocks."""
    return str(yaml.dump(job, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         width=1000))
