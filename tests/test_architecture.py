"""The code's cut (docs/architecture.md), checked on the source: no import cycle, each rule in one place.

Read with ``ast`` and regular expressions; nothing of the app is imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("casvault", "web", "cli")
BACKENDS = ("FileBlobStore", "S3BlobStore", "PostgresIndex", "FileRecords", "PostgresRecords")


def sources() -> dict[str, Path]:
    """Module name -> file, for every module of the app."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The app modules ``name`` imports, at top level or in a function (TYPE_CHECKING blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def test_no_import_cycle():
    modules = sources()
    graph = {name: imports(name, path, modules) for name, path in modules.items()}
    cycles = []

    def visit(node: str, trail: list[str], done: set[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, trail + [nxt], done)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name], done)
    assert cycles == []


def test_no_isinstance_on_a_backend_outside_the_backends():
    pattern = re.compile(r"isinstance\([^)]*\b(" + "|".join(BACKENDS) + r")\b")
    found = [f"{path.relative_to(ROOT)}:{n}" for name, path in sources().items()
             if not name.startswith("casvault.backends") and name != "casvault.blobs"
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_no_reach_into_the_store_parts():
    pattern = re.compile(r"\bstore\.(locks\b|record_index\b|_[a-z])")
    found = [f"{path.relative_to(ROOT)}:{n}" for name, path in sources().items()
             if name not in ("casvault.store", "casvault.writer") and not name.startswith("casvault.backends")
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_each_rule_lives_in_one_place():
    def where(pattern: str) -> set[str]:
        rx = re.compile(pattern)
        return {name for name, path in sources().items() if rx.search(path.read_text())}

    assert where(r"make_thumbnail\(") == {"casvault.thumbs"}
    assert where(r'thumb/\{') == {"casvault.thumbs"}
    # the sidecar write; backup encodes records into its archive, PostgreSQL into a row
    assert where(r"encode_record\(") == {"casvault.sidecars", "casvault.records", "casvault.backup",
                                         "casvault.backends.postgres"}
    # the write order's points; update_meta's sidecar rewrite is not a new record's write
    order = where(r'faults\.point\(f?"[a-z_{}]+\.(after_sidecar|after_projection|after_thumb|before_manifest)"\)')
    assert order == {"casvault.writer", "casvault.store"}
    store = (ROOT / "casvault" / "store.py").read_text()
    assert set(re.findall(r'faults\.point\("([a-z_.]+_(?:sidecar|projection|thumb)|[a-z_.]+before_manifest)"\)',
                          store)) == {"meta.after_sidecar"}
    assert where(r"by_sha\b") <= {"casvault.index", "casvault.backends.records", "casvault.snapshot",
                                  "casvault.secondary"}
