"""No function in the package is longer than 80 lines (the developer guide's limit; ruff's
C901 holds every function's complexity to 15, but ruff has no rule for length)."""

import ast
from pathlib import Path

import tennis_assets

LIMIT = 80


def function_lengths(root: Path) -> dict[str, int]:
    """Every function and method under ``root``, by 'path:line name', with its length in lines
    (decorators excluded, docstring and body included)."""
    lengths = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
                lengths[where] = node.end_lineno - node.lineno + 1
    return lengths


def test_no_function_in_the_package_is_over_80_lines():
    lengths = function_lengths(Path(tennis_assets.__file__).parent)
    assert len(lengths) > 500  # the walk found the code it is about
    assert any(where.startswith("defs/") for where in lengths)
    assert {k: v for k, v in lengths.items() if v > LIMIT} == {}
