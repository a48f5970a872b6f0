"""Session 12 review of renaming a space in the browser (93a5841, 108c8d0, 1af1ad2), attacked
the way an owner of one space, a member of it, a signed-out client or a forged form would.

Held: a signed-out client, another session's CSRF token, a body of megabytes, a name of
10,000 characters — each changes nothing stored and answers without a 500.
Found: the display-name rule refuses bidirectional overrides and the LRM/RLM marks "which
would make a name read as another", but lets the Arabic letter mark (U+061C, the third
bidirectional mark) and names made only of invisible characters through; and an owner may give
their space the very name another space is shown by, so a member of both sees two identical
entries in the space switcher."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ferryman.app import create_app
from ferryman.db.models import AuditEntry, Space
from ferryman.services import spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser, csrf_of

URL = f"/spaces/{SPACE}/rename"
SWITCHER = re.compile(r'<select id="space-switch" name="space">(.*?)</select>', re.S)
OPTION = re.compile(r'<option value="([^"]*)"[^>]*>([^<]*)</option>')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("rename12"))


def stored(world: World, name: str = SPACE) -> str:
    with world.db.read() as s:
        shown = s.scalar(select(Space.display_name).where(Space.name == name))
    assert shown is not None, name
    return shown


def renames(world: World) -> int:
    with world.db.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "space.update")
            )
            or 0
        )


def named(world: World, display_name: str, name: str = SPACE) -> None:
    spaces.update_space(world.db, SYSTEM, name, display_name=display_name)
    assert stored(world, name) == display_name


def test_a_signed_out_client_can_neither_open_nor_post_the_rename_form(world):
    named(world, "Kept")
    before = renames(world)
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    form = client.get(URL, follow_redirects=False)
    assert form.status_code in (303, 401, 403), form.status_code
    assert "display_name" not in form.text
    posted = client.post(
        URL, data={"csrf": "x", "display_name": "Signed out"}, follow_redirects=False
    )
    assert posted.status_code in (303, 401, 403), posted.status_code
    assert stored(world) == "Kept" and renames(world) == before


def test_another_users_csrf_token_does_not_rename_an_owners_space(world):
    named(world, "Kept")
    before = renames(world)
    developer = browser(world, "developer")
    owner = browser(world, "owner")
    theirs = csrf_of(developer)  # what an attacker holding a developer account knows
    forged = owner.post(URL, data={"csrf": theirs, "display_name": "Forged"})
    assert forged.status_code == 403
    assert stored(world) == "Kept" and renames(world) == before


def test_ten_thousand_characters_are_refused_and_nothing_is_stored(world):
    named(world, "Kept")
    before = renames(world)
    owner = browser(world, "owner")
    refused = owner.post(URL, data={"csrf": csrf_of(owner, URL), "display_name": "x" * 10_000})
    assert refused.status_code == 422
    assert stored(world) == "Kept" and renames(world) == before


def test_a_body_of_megabytes_is_refused_without_a_500_and_nothing_is_stored(world):
    named(world, "Kept")
    before = renames(world)
    owner = browser(world, "owner")
    huge = owner.post(
        URL, data={"csrf": csrf_of(owner, URL), "display_name": "y" * (8 * 1024 * 1024)}
    )
    assert 400 <= huge.status_code < 500, huge.status_code
    assert stored(world) == "Kept" and renames(world) == before


def test_the_arabic_letter_mark_is_refused_like_the_other_direction_marks(world):
    named(world, "Kept")
    owner = browser(world, "owner")
    for mark in ("\u200f", "\u061c"):  # RLM is refused today; ALM is the same kind of mark
        refused = owner.post(
            URL, data={"csrf": csrf_of(owner, URL), "display_name": f"Acme{mark} 1-2"}
        )
        assert refused.status_code == 422, repr(mark)
        assert stored(world) == "Kept"


INVISIBLE = {
    "zero width space": "\u200b",
    "word joiner and byte order mark": "\u2060\ufeff",
    "tag characters": "\U000e0041\U000e0063\U000e006d\U000e0065",
    "soft hyphen": "\u00ad",
}


@pytest.mark.parametrize("case", sorted(INVISIBLE))
def test_a_name_of_only_invisible_characters_never_hides_the_space(world, case):
    named(world, "Kept")
    owner = browser(world, "owner")
    answer = owner.post(URL, data={"csrf": csrf_of(owner, URL), "display_name": INVISIBLE[case]})
    assert answer.status_code < 500
    # refused (the name stays), or shown by its slug as an empty name is: never blank
    shown = stored(world)
    assert shown in ("Kept", ""), repr(shown)


def test_an_owner_cannot_make_their_space_read_as_another_in_the_switcher(world):
    named(world, "Acme production")
    named(world, "", name="other")
    other_owner = world.actors["other"]
    spaces.set_member(world.db, SYSTEM, SPACE, other_owner.username, "developer")
    attacker = browser(world, "other")
    url = "/spaces/other/rename"
    answer = attacker.post(
        url, data={"csrf": csrf_of(attacker, url), "display_name": "Acme production"}
    )
    assert answer.status_code < 500
    victim = browser(world, "developer")  # sees only acme: add them to "other" as well
    spaces.set_member(world.db, SYSTEM, "other", world.actors["developer"].username, "developer")
    page = victim.get(f"/s/{SPACE}/")
    switcher = SWITCHER.search(page.text)
    assert switcher is not None, "no space switcher"
    options = OPTION.findall(switcher.group(1))
    assert {value for value, _ in options} >= {SPACE, "other"}, options
    texts = [text.strip() for _, text in options]
    assert len(texts) == len(set(texts)), options  # each space reads as itself
