"""Packages, packaged data and the optional C modules; the rest is in pyproject.toml.

The suites of `testsuites/` ship inside the wheel as `pytest_lkft/testsuites/`, so an
installed plugin runs them from any directory. Where no C compiler or Python headers are
there, the build skips the C modules: the KTAP parser uses its regex fast path and `lkft
parse` its Python writer (same results, 2-3x and about 1.5x slower).
"""

from setuptools import Extension, find_namespace_packages, setup

setup(
    # namespace discovery: the data folders are packages too, or setuptools warns
    packages=[*find_namespace_packages(include=["pytest_lkft", "pytest_lkft.*"],
                                       exclude=["*.__pycache__"]),
              "pytest_lkft.testsuites"],
    package_dir={"pytest_lkft.testsuites": "testsuites"},
    package_data={"pytest_lkft.data": ["*.yaml", "*.sh"],
                  "pytest_lkft.data.kconfig": ["*.config"],
                  "pytest_lkft.data.lava": ["*.yaml"],
                  "pytest_lkft.testsuites": ["*.yaml"]},
    ext_modules=[
        Extension(
            "pytest_lkft.parsers._ktapscan",
            ["pytest_lkft/parsers/_ktapscan.c"],
            optional=True,
        ),
        Extension("pytest_lkft.cli._jsonrows", ["pytest_lkft/cli/_jsonrows.c"], optional=True),
    ],
)
