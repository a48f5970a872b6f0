"""Setup steps in a real Chromium that the Walle workflow does not take, in English and in
Chinese: an owner disables a space (the dialog says its members, the owner too, will no
longer see it) and a superuser enables it again; a master sets a project's secret (its value
never shown again); the owner gives a developer a role on that project, then takes it back.
Each step is checked in the database too."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.db.models import Space
from ferryman.db.session import Database
from ferryman.services import projects, secrets, spaces, users
from ferryman.services.audit import SYSTEM
from tests.helpers import allow_local_repos, running_server
from tests.web.test_browser import PASSWORD, chromium  # noqa: F401 - a fixture
from tests.web.test_browser_walle import LOCALES, browser_for, said

SPACE = "crew"
SECRET = "s3cr3t-value-7f2a"
WARNING = (
    "Disable %(name)s? Its projects stop deploying, and its members (you too) no longer see it "
    "until a superuser enables it again."
)


@pytest.fixture
def setup_server(settings, tmp_path) -> Iterator[str]:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=30)
    db = prepare_home(settings)
    spaces.create_space(db, SYSTEM, SPACE)
    allow_local_repos(db, SPACE)
    users.create_user(db, "root", PASSWORD, superuser=True)
    for name, role in (("olga", "owner"), ("mia", "master"), ("dev", "developer")):
        users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, SPACE, name, role)
    env = {"hosts": ["127.0.110.250:22"], "webroot": "/srv/www/app", "releases": "/srv/rel/app"}
    config = {"project": "app", "space": SPACE, "repo": f"file://{repo}"}
    projects.apply_project(db, SYSTEM, parse_project(config | {"environments": {"staging": env}}))
    db.dispose()
    with running_server(settings.home) as url:
        yield url


def submit(page, button: str) -> None:
    """Click a form's button and wait for the page the form leads to."""
    with page.expect_navigation():
        page.click(button)


def overrides(settings) -> dict[str, str]:
    db = Database(settings.database_url)
    try:
        listed = projects.list_project_members(db, SYSTEM, f"{SPACE}:app")
    finally:
        db.dispose()
    return {m["username"]: m["role"] for m in listed}


def active(settings) -> bool:
    db = Database(settings.database_url)
    try:
        with db.read() as s:
            return bool(s.scalar(select(Space.is_active).where(Space.name == SPACE)))
    finally:
        db.dispose()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_space_is_disabled_a_secret_set_and_a_project_role_given_in_the_browser(
    lang,
    setup_server,
    chromium,  # noqa: F811
    settings,
):
    olga = browser_for(chromium, setup_server, "olga", locale=LOCALES[lang])
    olga.goto("/spaces")
    row = f"tr[data-space='{SPACE}']"
    asked: list[str] = []

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    olga.once("dialog", accept)
    submit(olga, f"{row} form[action$='/active'] button[type=submit]")
    assert not active(settings)
    # a disabled space is hidden from its members: the dialog told the owner so beforehand
    assert asked == [said(lang, WARNING) % {"name": SPACE}]
    assert olga.locator(row).count() == 0
    root = browser_for(chromium, setup_server, "root", locale=LOCALES[lang])
    root.goto("/spaces")
    assert root.locator(f"{row} .badge.s-cancelled").count() == 1
    submit(root, f"{row} form[action$='/active'] button[type=submit]")  # enabling asks nothing
    assert root.locator(f"{row} .badge.s-success").count() == 1
    assert active(settings)
    olga.goto("/spaces")
    assert olga.locator(f"{row} .badge.s-success").count() == 1

    mia = browser_for(chromium, setup_server, "mia", locale=LOCALES[lang])
    mia.goto(f"/s/{SPACE}/projects/app/access")
    mia.fill("#secret-form input[name=secret]", "API_TOKEN")
    mia.fill("#secret-form input[name=value]", SECRET)
    submit(mia, "#secret-form button[type=submit]")
    assert "API_TOKEN" in mia.inner_text("#secrets table")
    assert SECRET not in mia.content()
    db = Database(settings.database_url)
    try:
        listed = secrets.list_secrets(db, SYSTEM, f"{SPACE}:app", "staging")
    finally:
        db.dispose()
    assert [x["name"] for x in listed] == ["API_TOKEN"]

    olga.goto(f"/s/{SPACE}/projects/app/access")  # roles on a project: an owner's
    olga.select_option("#member-form select[name=username]", "dev")
    olga.select_option("#member-form select[name=role]", "master")
    submit(olga, "#member-form button[type=submit]")
    assert said(lang, "master") in olga.inner_text("#members table")
    assert overrides(settings) == {"dev": "master"}
    olga.select_option("#member-form select[name=username]", "dev")
    olga.select_option("#member-form select[name=role]", "")
    submit(olga, "#member-form button[type=submit]")
    assert olga.locator("#members table").count() == 0  # everyone has their space role again
    assert overrides(settings) == {}
