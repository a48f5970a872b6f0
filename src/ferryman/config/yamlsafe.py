"""YAML from people, safely: PyYAML's ``SafeLoader`` (no tags) with bounded size and nesting.
PyYAML composes and constructs nodes recursively, so 5,000 ``[`` would exhaust the stack;
here that is a ``yaml.YAMLError`` like any other bad document, never a ``RecursionError``."""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 32  # nested collections (a project file needs about 6)


class _BoundedLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", None
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str, max_chars: int) -> Any:
    if len(text) > max_chars:
        raise yaml.YAMLError(f"longer than {max_chars} characters")
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None
    finally:
        loader.dispose()


def describe(exc: yaml.YAMLError, source: str) -> str:
    """One line for a YAML error: ``SOURCE:LINE:COLUMN: problem`` (from 1, as editors count)
    where PyYAML knows the place, else ``SOURCE: problem``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}"
        problem = exc.problem or "not valid YAML"
        if exc.context:
            problem = f"{problem} ({exc.context}"
            if exc.context_mark is not None and exc.context_mark.line != mark.line:
                problem += f" at line {exc.context_mark.line + 1}"
            problem += ")"
        return f"{where}: {problem}"
    return f"{source}: {exc}"
