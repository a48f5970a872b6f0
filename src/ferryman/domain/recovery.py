"""What recovery does with a deploy whose worker died — a pure decision from what every host
serves now, what it served before the deploy, and which releases are complete on it.

The rule is all-or-nothing: every host ends on one complete release, and the record says
which.

- A deploy or config-only deploy that had committed (it reached its cleanup: every host
  switched, ``post_release`` done) and whose new release every host serves is a success
  that only missed its last write: it is recorded as one, nothing is touched.
- Otherwise a deploy is undone: each host goes back to what it served before (its release,
  the foreign link it had, or no webroot at all for a first deploy), and the new release dir
  is removed where it is not served.
- A rollback goes forward when it can: its target release is known good and complete, so
  every host is switched to it (the site was being taken off a bad release; putting it back
  would be the worst outcome). When the target is not complete on every host, it is undone
  like a deploy (its target is an old release: never removed).
- A host whose release to go to is not complete on it is a problem, named in the outcome;
  the others still go to their releases.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

SUCCESS = "success"  # the deploy had finished: record it
REVERT = "revert"  # every host back to what it served before
FORWARD = "forward"  # every host on the rollback's target


@dataclass(frozen=True)
class HostView:
    """One host as the recovery's probe found it, and what it served before the deploy."""

    live: str | None  # the release name the webroot points into (None: no link or foreign)
    link: str | None  # the raw link target (None: no webroot link)
    before: str  # a release name, a raw foreign link target, or "" (no webroot before)
    complete: frozenset[str]  # release names whose manifest is on the host
    present: frozenset[str] = frozenset()  # every release dir on the host, complete or not


@dataclass
class Plan:
    outcome: str
    switch: dict[str, str] = field(default_factory=dict)  # host -> path to link to
    unlink: list[str] = field(default_factory=list)  # hosts whose webroot link goes
    remove: dict[str, str] = field(default_factory=dict)  # host -> release dir name to drop
    live: dict[str, str | None] = field(default_factory=dict)  # host -> release served after
    problems: dict[str, str] = field(default_factory=dict)  # host -> why it is not in order


def plan(
    kind: str,
    releases_dir: str,
    new: str,
    target: str,
    committed: bool,
    hosts: dict[str, HostView],
) -> Plan:
    """``new``: the release the deploy made (deploy, config); ``target``: the one release a
    rollback went to ("" when it went to several); ``committed``: the record shows it had
    finished its hosts' work."""
    if kind == "rollback":
        if target and all(target in view.complete for view in hosts.values()):
            if committed and all(view.live == target for view in hosts.values()):
                return Plan(SUCCESS, live={k: target for k in hosts})
            return _forward(releases_dir, target, hosts)
        return _revert(releases_dir, "", hosts)
    if new and committed and all(view.live == new for view in hosts.values()):
        return Plan(SUCCESS, live={k: new for k in hosts})
    return _revert(releases_dir, new, hosts)


def _forward(releases_dir: str, target: str, hosts: dict[str, HostView]) -> Plan:
    out = Plan(FORWARD)
    for key, view in hosts.items():
        if view.live != target:
            out.switch[key] = posixpath.join(releases_dir, target)
        out.live[key] = target
    return out


def _revert(releases_dir: str, new: str, hosts: dict[str, HostView]) -> Plan:
    out = Plan(REVERT)
    for key, view in hosts.items():
        before = view.before
        if not before:  # a first deploy: no webroot before
            if view.link is not None and view.live == new and new:
                out.unlink.append(key)  # what this deploy linked goes; anything else stays
            out.live[key] = None if key in out.unlink or view.link is None else view.live
        elif "/" in before:  # a link that is not one of our releases: put it back as it was
            if view.link != before:
                out.switch[key] = before
            out.live[key] = None
        elif before in view.complete:
            if view.live != before:
                out.switch[key] = posixpath.join(releases_dir, before)
            out.live[key] = before
        else:
            out.problems[key] = f"its release before the deploy, {before}, is not complete"
            out.live[key] = view.live
        if new and (new in view.present or new in view.complete) and out.live.get(key) != new:
            out.remove[key] = new
    return out


def describe(decided: Plan) -> str:
    """What the hosts serve after the recovery, in a few words for the deploy's error (it
    follows "the worker running this deploy stopped"). Hosts that are not in order (one could
    not be reached, say) are named, and the rest is never said of "every host"."""
    names = sorted({v or "no release" for v in decided.live.values()})
    which = "the other hosts" if decided.problems else "every host"
    if decided.outcome == FORWARD:
        what = f"; the rollback was completed on {which}, without its hooks"
    elif decided.outcome == SUCCESS:
        what = f"; {which} had finished this deploy"
    elif decided.problems:
        what = "; the other hosts were put back on the releases they served before"
    else:
        what = "; every host was put back on the release it served before"
    text = what + f" (now: {', '.join(names)})"
    if decided.problems:
        text += "; not in order: " + "; ".join(
            f"{host}: {why}" for host, why in sorted(decided.problems.items())
        )
    return text
