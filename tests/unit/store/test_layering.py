"""The store sits below configuration: it never imports config, the service or shipping."""

import ast
from pathlib import Path

import pylog.store

FORBIDDEN = ("config", "service", "driver", "shipper", "api", "server", "metrics")


def test_the_store_imports_nothing_above_it() -> None:
    store = Path(pylog.store.__file__).parent
    found = []
    for path in sorted(store.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                top = (node.module or "").split(".")[0]
                names = [top] if top else [a.name for a in node.names]
                found += [f"{path.name}: {n}" for n in names if n in FORBIDDEN]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pylog."):
                top = node.module.split(".")[1]  # type: ignore[union-attr]
                if top in FORBIDDEN:
                    found.append(f"{path.name}: {top}")
    assert found == []
