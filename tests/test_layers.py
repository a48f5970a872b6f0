"""The layers of ``src/ferryman`` hold: which package may import which, read from the source
(every import, at the top or inside a function, type-only ones too).

- ``domain/`` and ``commands/`` are pure: they import nothing that does I/O.
- ``pipeline/`` (the engine) reaches the database only through its store port: no import of
  ``db/`` or ``services/``. The imports that exist today are listed below, one by one; the
  list only shrinks (an entry that is no longer needed fails the test until it is removed).
- ``web/`` and ``api/`` meet only in the modules both share (``http_deps``, ``services``, …):
  no page imports the API, and the API imports no page.
- ``web/`` and ``api/`` never open SSH (``remote/``) or build a pipeline context: checks go
  through ``services/checks.py``.
- No ``assert`` in production code: ``python -O`` drops them, and a failed one reaches a user as a
  bare ``AssertionError``. Check and raise from ``ferryman.errors`` (``InternalError`` when
  Ferryman contradicts itself, ``NotFound`` when a row vanished), or write code whose types need
  no assert. The files still being converted are listed with their count, which only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ferryman"

# pipeline/ → db/ and services/: none (the callers hand the engine its store and writer).
PIPELINE_STORAGE_TODAY: set[tuple[str, str]] = set()

# api/ → web/: none (ferryman/app.py builds the server from both).
API_TO_WEB_TODAY: set[tuple[str, str]] = set()

# api/ → pipeline/ and remote/: none (checks go through ``services/checks.py``).
API_TO_ENGINE_TODAY: set[tuple[str, str]] = set()

# Files allowed to hold ``assert`` statements (file → at most this many): none.
ASSERTS_TODAY: dict[str, int] = {}

PURE_MAY_IMPORT = (
    "ferryman.domain",
    "ferryman.commands",
    "ferryman.errors",
    "ferryman.said",  # a str that remembers its template: no I/O
    "ferryman.config",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every ``ferryman`` module ``path`` imports; ``from X import Y`` counts as ``X.Y`` when
    ``Y`` is a module (so ``from ferryman.services import queue`` names ``services.queue``)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("ferryman"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("ferryman"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    SRC.parent / Path(*sub.split(".")) / "__init__.py"
                ).exists()
                yield sub if is_module else base


def _edges(package: str) -> set[tuple[str, str]]:
    """(file relative to src/ferryman, module) for every import in ``package``."""
    return {
        (path.relative_to(SRC).as_posix(), module)
        for path in sorted((SRC / package).rglob("*.py"))
        for module in _imports(path)
    }


def _into(edges: set[tuple[str, str]], *targets: str) -> set[tuple[str, str]]:
    return {(f, m) for f, m in edges if any(m == t or m.startswith(t + ".") for t in targets)}


def _allowed(found: set[tuple[str, str]], today: set[tuple[str, str]], rule: str) -> None:
    new = sorted(found - today)
    gone = sorted(today - found)
    assert not new, f"{rule}: new imports {new}"
    assert not gone, f"{rule}: no longer imported, remove from the list in this test: {gone}"


def test_the_import_reader_sees_top_level_function_level_and_relative_imports(tmp_path):
    assert ("web/pages/space.py", "ferryman.services.checks") in _edges("web")
    assert ("pipeline/prepare.py", "ferryman.commands.probe") in _edges("pipeline")
    # an import inside a function body counts the same as one at the top
    assert ("web/pages/space.py", "ferryman.services.host_keys") in _edges("web")
    assert ("api/app.py", "ferryman.jobs.worker") in _edges("api")


@pytest.mark.parametrize("package", ["domain", "commands"])
def test_pure_packages_import_nothing_that_does_io(package):
    edges = _edges(package)
    assert edges, "the reader found no import at all"
    impure = sorted((f, m) for f, m in edges if not any(m.startswith(p) for p in PURE_MAY_IMPORT))
    assert not impure, f"{package}/ must stay pure: {impure}"


def test_the_engine_reaches_the_database_only_through_its_store_port():
    found = _into(_edges("pipeline"), "ferryman.db", "ferryman.services")
    _allowed(found, PIPELINE_STORAGE_TODAY, "pipeline/ → db/, services/")


def test_pages_never_import_the_api_and_the_api_imports_no_page():
    assert not sorted(_into(_edges("web"), "ferryman.api")), "web/ imports api/"
    _allowed(_into(_edges("api"), "ferryman.web"), API_TO_WEB_TODAY, "api/ → web/")


def test_pages_and_routes_never_open_ssh_or_build_a_pipeline_context():
    engine = ("ferryman.remote", "ferryman.pipeline")
    assert not sorted(_into(_edges("web"), *engine)), "web/ reaches remote/ or pipeline/"
    _allowed(_into(_edges("api"), *engine), API_TO_ENGINE_TODAY, "api/ → remote/, pipeline/")


def _asserts(path: Path) -> int:
    return sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(path.read_text())))


def test_the_assert_counter_sees_asserts_anywhere_in_a_module(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "assert True\n"
        "def f(x):\n"
        "    if x:\n"
        "        assert x, 'nested'\n"
        "    class C:\n"
        "        def g(self):\n"
        "            assert (\n"
        "                self\n"
        "            )\n"
        "    return 'assert x'  # a string or a comment is no assert\n"
    )
    assert _asserts(module) == 3


def test_production_code_uses_no_assert_for_control_flow():
    found = {
        path.relative_to(SRC).as_posix(): count
        for path in sorted(SRC.rglob("*.py"))
        if (count := _asserts(path))
    }
    more = {f: n for f, n in found.items() if n > ASSERTS_TODAY.get(f, 0)}
    assert not more, (
        f"assert statements in production code (file: count): {more}; raise an error from "
        "ferryman.errors instead (InternalError, NotFound), or make the types need none"
    )
