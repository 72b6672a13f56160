from typing import Any

def scan(
    data: bytes, pos: int, number: int, stack: list[Any], context: tuple[Any, ...]
) -> tuple[int, int, list[Any], bool]: ...
