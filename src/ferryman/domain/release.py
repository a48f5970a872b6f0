"""Release names and the choice of which releases to prune — pure functions.

A release name is one path-safe component: ``[A-Za-z0-9._-]``, never starting with ``.`` or
``-`` (Ferryman's own entries in a releases dir start with ``.``), at most ``MAX_NAME``
characters. The default is ``YYYYmmdd-HHMMSS_<ref>_<commit7>``; an environment's
``release_name`` template (``{project}_{env}_{version}_{branch}_{time}_{user}``) makes others.
Which release is older is the records' order (``order``: name -> when the records first saw
it), not the name's: a template need not sort by time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from ferryman.errors import ValidationError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME = re.compile(r"^\d{8}-\d{6}_[A-Za-z0-9._-]*_[A-Za-z0-9]+(-\d+)?$")
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_FIELD = re.compile(r"\{([^{}]*)\}")
MAX_NAME = 128  # the whole name, a ``-<deploy id>`` suffix included
MAX_RENDERED = 100  # a template's result, before any suffix
MAX_FIELD = 40  # one field's value
FIELDS = ("project", "env", "version", "branch", "time", "user", "commit7", "ref", "deploy_id")
_SEPARATORS = "_.-"


def sanitise_ref(ref: str) -> str:
    """``feature/login`` → ``feature-login``: only ``[A-Za-z0-9._-]`` survive, at most 60."""
    return _UNSAFE.sub("-", ref).strip("-.")[:60] or "ref"


def release_name(when: datetime, ref: str, commit: str) -> str:
    """``YYYYmmdd-HHMMSS_<ref>_<commit7>``, computed once per deploy, same on every host."""
    return f"{when:%Y%m%d-%H%M%S}_{sanitise_ref(ref)}_{sanitise_ref(commit)[:7]}"


def is_release_name(name: str) -> bool:
    """A name in the default format (what pruning recognises without the records)."""
    return bool(_NAME.match(name))


def is_safe_name(name: str) -> bool:
    """One path component a release may be named: safe charset, no leading ``.``/``-``."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME
        and bool(_SAFE.match(name))
        and ".." not in name
    )


def check_template(template: str) -> str:
    """A ``release_name`` template: ``{field}``s of ``FIELDS`` and literal text of the safe
    charset, at least one field; raises ``ValidationError`` naming what is wrong."""
    if not isinstance(template, str) or not template or len(template) > MAX_RENDERED:
        raise ValidationError(f"release_name: 1 to {MAX_RENDERED} characters")
    fields = _FIELD.findall(template)
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise ValidationError(
            f"release_name: unknown field {{{unknown[0]}}} (known: "
            + ", ".join("{" + f + "}" for f in FIELDS)
            + ")"
        )
    if not fields:
        raise ValidationError("release_name: give at least one field, e.g. {time}")
    literal = _FIELD.sub("", template)
    if "{" in literal or "}" in literal or _UNSAFE.search(literal):
        raise ValidationError(
            f"release_name: {template!r}: outside the fields only letters, digits, . _ -"
        )
    if template[0] in ".-" or ".." in literal:
        raise ValidationError(f"release_name: {template!r} may not start with . or - nor hold ..")
    return template


def safe_component(value: str) -> str:
    """One field's value made path-safe: ``feature/x`` → ``feature-x``; a value with nothing
    safe in it (``张三``) becomes ``x`` and a short hash of it, so it is never lost silently."""
    safe = _UNSAFE.sub("-", value).replace("..", ".").strip("-.")[:MAX_FIELD].strip("-.")
    if not safe and value:
        return "x" + hashlib.sha256(value.encode()).hexdigest()[:8]
    return safe


def render_name(template: str, values: Mapping[str, str]) -> str:
    """The release name ``template`` gives with ``values`` (raw; each made safe here). An
    empty field drops the separator after it, so ``{branch}_{time}`` of a tag is the time."""
    pieces: list[str] = []
    position = 0
    for match in _FIELD.finditer(template):
        pieces.append(template[position : match.start()])
        pieces.append(safe_component(values.get(match.group(1), "")))
        position = match.end()
    pieces.append(template[position:])
    text = ""
    for index, piece in enumerate(pieces):
        if index % 2 and not piece:  # an empty field
            following = pieces[index + 1] if index + 1 < len(pieces) else ""
            if following[:1] in _SEPARATORS and following:
                pieces[index + 1] = following[1:]
            elif text[-1:] in _SEPARATORS and text:
                text = text[:-1]
            continue
        text += piece
    name = text.replace("..", ".")[:MAX_RENDERED].lstrip("._-").rstrip(".-")
    if not is_safe_name(name):
        raise ValidationError(f"release_name: {template!r} gave no usable name here")
    return name


def unique_name(name: str, taken: Iterable[str], deploy_id: int) -> str:
    """``name``, or ``name-<deploy id>`` when a release of that name exists already (on a
    host, or in the records): two deploys never share a release name."""
    return f"{name}-{deploy_id}" if name in set(taken) else name


def oldest_first(names: Iterable[str], order: Mapping[str, int] | None = None) -> list[str]:
    """``names`` from oldest to newest: by the records' ``order`` where it knows them (names
    it does not know are older), else by name (default names sort by time)."""
    known = order or {}
    return sorted(set(names), key=lambda n: (known.get(n, -1), n))


def choose_prunable(
    on_host: Iterable[str],
    keep: int,
    live: str | None,
    previous_good: str | None,
    complete: set[str],
    order: Mapping[str, int] | None = None,
) -> list[str]:
    """Which release directories on a host to remove so that at most ``keep`` remain.

    Never the live release, never the previous good one. Directories that are not complete
    releases (failed or unfinished transfers) go first, then the oldest complete ones
    (``oldest_first``: the records' ``order``, else the name's).
    """
    names = oldest_first(on_host, order)
    protected = {n for n in (live, previous_good) if n}
    unfinished = [n for n in names if n not in complete and n not in protected]
    good = [n for n in names if n in complete and n not in protected]
    remove = list(unfinished)
    remaining = len(names) - len(remove)
    for name in good:  # oldest first
        if remaining <= keep:
            break
        remove.append(name)
        remaining -= 1
    return remove


def previous_release(
    history: Sequence[str], current: str | None, order: Mapping[str, int] | None = None
) -> str | None:
    """The newest release older than ``current`` in ``history`` (names, any order), older by
    the records' ``order`` when it knows ``current``, else by name."""
    ranked = oldest_first(history, order)
    if current is not None:
        if order and current in order:
            ranked = [n for n in ranked if order.get(n, -1) < order[current]]
        else:
            ranked = [n for n in ranked if n < current]
    return ranked[-1] if ranked else None


def rollback_target(
    good: Mapping[str, set[str]],
    hosts: Sequence[str],
    live: Mapping[str, str | None],
    exclude: set[str],
    order: Mapping[str, int] | None = None,
) -> str | None:
    """The one release a rollback of ``hosts`` goes to: the newest release, older than the
    newest one they serve, that a successful deploy completed on any of them (``good``:
    per host), leaving out ``exclude`` (releases marked bad). Whether every host can reach
    it is checked by the caller, which refuses naming the hosts that cannot: a rollback
    never sends hosts to different releases."""
    serving = [name for name in (live.get(h) for h in hosts) if name]
    current = oldest_first(serving, order)[-1] if serving else None
    known = set().union(*(good.get(h, set()) for h in hosts)) if hosts else set()
    return previous_release(sorted(known - exclude), current, order)
