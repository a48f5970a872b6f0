"""How ``--help`` reads: every argument and option shows a metavar a person understands
(``PROJECT``, ``ENV``, ``N``) instead of the type typer would print (``<str>``, ``<int>``),
and a flag shows none. Commands set the ones that matter (``cli/options.py``); this fills
in the rest from the parameter's name, so no ``<str>`` or ``{name}`` ever reaches the help."""

from __future__ import annotations

from typing import Any

# Off a terminal, help is as wide as its lines: a command's summary is never cut to "...".
UNWRAPPED = 10_000


def readable_metavars(command: Any) -> None:
    """Set a metavar on every parameter of ``command`` and its subcommands that has none;
    arguments read ``NAME`` (required) or ``[NAME]`` in the usage line and show no type."""
    for param in command.params:
        if param.metavar is None:
            if param.param_type_name == "option" and (param.is_flag or param.count):
                param.metavar = ""
            else:
                param.metavar = (param.name or "value").upper()
        if param.param_type_name == "argument":
            usage = param.metavar if param.required else f"[{param.metavar}]"
            if param.nargs != 1:
                usage += "..."
            # typer 0.29 prints "{NAME} <str>": instance attributes shadow those methods
            param._usage_display_name = lambda usage=usage: usage
            param.display_type_rich = lambda ctx: None
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)


def walk(command: Any, path: tuple[str, ...] = ("ferryman",)) -> list[tuple[tuple[str, ...], Any]]:
    """Every command of the tree with its path, the root first."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += walk(sub, (*path, name))
    return found
