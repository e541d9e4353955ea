"""No function in the learners and the training loop is longer than 80 lines (the developer
guide's limit; ruff's C901 holds their complexity to 15, but ruff has no rule for length)."""

import ast
from pathlib import Path

import tennis_assets

LIMIT = 80
PACKAGES = ("agents", "training")


def test_no_function_in_agents_or_training_is_over_80_lines():
    root = Path(tennis_assets.__file__).parent
    lengths = {}
    for package in PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    where = f"{package}/{path.name}:{node.lineno} {node.name}"
                    lengths[where] = node.end_lineno - node.lineno + 1
    assert len(lengths) > 100  # the walk found the code it is about
    assert {k: v for k, v in lengths.items() if v > LIMIT} == {}
