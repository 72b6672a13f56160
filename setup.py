"""Packages, packaged data and the optional C scanner; the rest is in pyproject.toml.

The suites of `testsuites/` ship inside the wheel as `pytest_lkft/testsuites/`, so an
installed plugin runs them from any directory. Where no C compiler or Python headers are
there, the build skips the scanner and the KTAP parser uses its regex fast path (same
results, 2-3x slower).
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=[*find_packages(include=["pytest_lkft", "pytest_lkft.*"]), "pytest_lkft.testsuites"],
    package_dir={"pytest_lkft.testsuites": "testsuites"},
    package_data={"pytest_lkft": ["data/*.yaml", "data/*.sh", "data/kconfig/*.config",
                                  "data/lava/*.yaml"],
                  "pytest_lkft.testsuites": ["*.yaml"]},
    ext_modules=[
        Extension(
            "pytest_lkft.parsers._ktapscan",
            ["pytest_lkft/parsers/_ktapscan.c"],
            optional=True,
        )
    ],
)
