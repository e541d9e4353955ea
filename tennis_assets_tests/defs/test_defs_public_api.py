"""No module of tennis_assets/ reaches into Dagster's private modules (``dagster._...``, or the
private modules of dagster-graphql, dagster-docker, ...): they change without notice between
releases. Read from the source, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tennis_assets"


def _dagster_package(name: str) -> bool:
    return name.split(".")[0] in {"dagster"} or name.startswith("dagster_")


def private_dagster_uses(source: str) -> list[str]:
    """Each private Dagster name the source imports or reaches through an imported module."""
    tree = ast.parse(source)
    aliases: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _dagster_package(alias.name):
                    aliases.add(alias.asname or alias.name.split(".")[0])
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and \
                _dagster_package(node.module):
            private = [a.name for a in node.names if a.name.startswith("_")]
            if any(part.startswith("_") for part in node.module.split(".")) or private:
                found.append(f"line {node.lineno}: from {node.module} import "
                             + ", ".join(a.name for a in node.names))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in aliases and node.attr.startswith("_"):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_check_finds_private_imports():
    assert private_dagster_uses("from dagster._core.event_api import EventLogCursor") == [
        "line 1: from dagster._core.event_api import EventLogCursor"]
    assert private_dagster_uses("def f():\n    from dagster._cli.job import _create_run\n")
    assert private_dagster_uses("import dagster as dg\nx = dg._core.storage\n") == [
        "line 2: dg._core"]
    assert private_dagster_uses("from dagster_graphql._client import x\n")
    assert private_dagster_uses("import dagster as dg\nfrom dagster import AssetKey\n"
                                "dg.asset\n") == []


def test_no_module_in_tennis_assets_imports_a_private_dagster_name():
    found = {str(path.relative_to(PACKAGE.parent)): uses
             for path in sorted(PACKAGE.rglob("*.py"))
             if (uses := private_dagster_uses(path.read_text()))}
    assert found == {}, found
