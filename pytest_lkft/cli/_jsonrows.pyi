from collections.abc import Callable
from typing import Any

def rows(
    cases: list[Any], prefix: str, middle: str, suffix: str, quote: Callable[[str], str]
) -> str: ...
