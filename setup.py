"""The optional C scanner of the KTAP parser; everything else is in pyproject.toml.

Where no C compiler or Python headers are there, the build skips it and the parser
uses its regex fast path (same results, 2-3x slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pytest_lkft.parsers._ktapscan",
            ["pytest_lkft/parsers/_ktapscan.c"],
            optional=True,
        )
    ]
)
