"""LAVA's own checks of a job, run by Debian's python3 (where LAVA's packages are).

    /usr/bin/python3 tests/lava_validate.py schema JOB
    /usr/bin/python3 tests/lava_validate.py device DEVICES_DIR NAME JOB > DEVICE.yaml
    /usr/bin/python3 tests/lava_validate.py pipeline TFTP_DIR JOB_ID OUT DEVICE.yaml JOB
    /usr/bin/python3 tests/lava_validate.py run TFTP_DIR JOB_ID OUT DEVICE.yaml JOB DISPATCHER

`schema`: lava_common's job schema, strict (LAVA's submission check). `device`: the device
dictionary DEVICES_DIR/NAME.jinja2 rendered as lava-server renders it for a job (its
sandboxed Jinja environment over the devices and device-types directories, the job's
context as variables). `pipeline`: `lava-run --validate` itself, its TFTP directory
(/etc/default/tftpd-hpa's TFTP_DIRECTORY on a worker) set to TFTP_DIR; the result is
OUT/result.yaml. `run`: `lava-run` running the job, likewise, with a dispatcher
configuration (a worker's dispatcher.yaml).
"""

from __future__ import annotations

import runpy
import sys

import yaml

DEVICE_TYPES = ["/etc/lava-server/dispatcher-config/device-types",
                "/usr/share/lava-server/device-types"]


def schema(job: str) -> None:
    from lava_common.schemas import validate

    with open(job) as f:
        validate(yaml.safe_load(f), strict=True)


def device(devices: str, name: str, job: str) -> None:
    from jinja2 import FileSystemLoader
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(loader=FileSystemLoader([devices, *DEVICE_TYPES]),
                               autoescape=False, trim_blocks=True)
    with open(job) as f:
        context = yaml.safe_load(f).get("context") or {}
    print(env.get_template(f"{name}.jinja2").render(**context))


def lava_run(tftp: str, arguments: list[str]) -> None:
    import lava_dispatcher.utils.filesystem as filesystem

    filesystem.tftpd_dir = lambda: tftp
    sys.argv = ["lava-run", *arguments]
    runpy.run_path("/usr/bin/lava-run", run_name="__main__")


def pipeline(tftp: str, job_id: str, out: str, device_file: str, job: str) -> None:
    lava_run(tftp, ["--validate", "--job-id", job_id, "--output-dir", out, "--device",
                    device_file, job])


def run(tftp: str, job_id: str, out: str, device_file: str, job: str, dispatcher: str) -> None:
    lava_run(tftp, ["--job-id", job_id, "--output-dir", out, "--device", device_file,
                    "--dispatcher", dispatcher, job])


if __name__ == "__main__":
    {"schema": schema, "device": device, "pipeline": pipeline,
     "run": run}[sys.argv[1]](*sys.argv[2:])
