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
