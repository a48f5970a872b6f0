"""User groups (Walle 2's 用户组): the groups page (everyone reads it; superusers create and
delete groups and choose their members) and a space's groups on its members page (owners
give a group a role in the space). Every form calls ``services/groups.py``, which checks the
role again: a form posted without it gets the same 403 as the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.db.session import Database
from ferryman.errors import FerrymanError, ValidationError
from ferryman.http_deps import DB
from ferryman.services import groups, spaces
from ferryman.web import i18n
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]
Text = Annotated[str, Form()]
Optional = Annotated[str, Form()]
ROLES = ("owner", "master", "developer", "reporter")


def _refused(exc: FerrymanError) -> bool:
    """Who may not do it: an error page (403), never a form to try again."""
    return exc.http_status in (401, 403)


def _groups_page(
    request: Request,
    web: Viewer,
    db: Database,
    error: str = "",
    form: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """``form`` names the form ``error`` belongs to (``create`` or ``member:GROUP``), so the
    message is shown at it with what was typed."""
    return page(
        request,
        web,
        "groups.html",
        status=status,
        groups=groups.list_groups(db, web.actor),
        error=error,
        form=form,
        values=values or {},
    )


@router.get("/groups", response_class=HTMLResponse)
def group_list(request: Request, db: DB) -> HTMLResponse:
    web = signed_in(request, db)
    return _groups_page(request, web, db)


@router.post("/groups", response_model=None)
def create_group(
    request: Request,
    db: DB,
    csrf: Csrf,
    name: Optional = "",
    display_name: Optional = "",
    description: Optional = "",
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    values = {"name": name, "display_name": display_name, "description": description}
    try:
        if not name.strip():
            raise ValidationError(web._("Give the group a name."))
        if len(description) > 500:
            raise ValidationError(web._("The description is at most 500 characters."))
        made = groups.create_group(db, web.actor, name.strip(), display_name, description.strip())
    except FerrymanError as exc:
        if _refused(exc):
            raise
        return _groups_page(request, web, db, exc.message, "create", values, exc.http_status)
    return redirect(request, "/groups", web._("Group %(name)s created.", name=made["name"]))


@router.post("/groups/{group}/edit", response_model=None)
def edit_group(
    request: Request,
    group: str,
    db: DB,
    csrf: Csrf,
    name: Optional = "",
    display_name: Optional = "",
    description: Optional = "",
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    values = {"name": name, "display_name": display_name, "description": description}
    try:
        if not name.strip():
            raise ValidationError(web._("Give the group a name."))
        if len(description) > 500:
            raise ValidationError(web._("The description is at most 500 characters."))
        changed = groups.update_group(
            db,
            web.actor,
            group,
            name=name.strip(),
            display_name=display_name,
            description=description,
        )
    except FerrymanError as exc:
        if _refused(exc):
            raise
        return _groups_page(request, web, db, exc.message, f"edit:{group}", values, exc.http_status)
    return redirect(request, "/groups", web._("Group %(name)s saved.", name=changed["name"]))


@router.post("/groups/{group}/delete", response_model=None)
def delete_group(request: Request, group: str, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    groups.delete_group(db, web.actor, group)
    return redirect(request, "/groups", web._("Group %(name)s deleted.", name=group))


@router.post("/groups/{group}/members", response_model=None)
def add_member(
    request: Request, group: str, db: DB, csrf: Csrf, username: Optional = ""
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    try:
        if not username.strip():
            raise ValidationError(web._("Give the user name of the member to add."))
        groups.add_member(db, web.actor, group, username.strip())
    except FerrymanError as exc:
        if _refused(exc):
            raise
        return _groups_page(
            request,
            web,
            db,
            exc.message,
            f"member:{group}",
            {"username": username},
            exc.http_status,
        )
    return redirect(
        request,
        "/groups",
        web._("%(user)s added to %(group)s.", user=username.strip(), group=group),
    )


@router.post("/groups/{group}/members/{username}/remove", response_model=None)
def remove_member(request: Request, group: str, username: str, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    groups.remove_member(db, web.actor, group, username)
    return redirect(
        request, "/groups", web._("%(user)s removed from %(group)s.", user=username, group=group)
    )


# --- a space's groups (on its members page) -----------------------------------------------


def members_page(
    request: Request,
    web: Viewer,
    db: Database,
    space: str,
    error: str = "",
    form: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The members page: the space's members, its groups with their roles, and (for owners)
    the groups it could add. ``form`` is ``member`` or ``group``: where ``error`` is shown."""
    in_space = groups.list_space_groups(db, web.actor, space)
    taken = {g["group"] for g in in_space}
    every = groups.list_groups(db, web.actor) if web.can("member.manage") else []
    others = [g for g in every if g["name"] not in taken]
    return page(
        request,
        web,
        "members.html",
        status=status,
        members=spaces.list_members(db, web.actor, space),
        space_groups=in_space,
        other_groups=others,
        any_group=bool(every),
        roles=ROLES,
        error=error,
        form=form,
        values=values or {},
    )


@router.post("/s/{space}/groups", response_model=None)
def set_space_group(
    request: Request, space: str, db: DB, csrf: Csrf, group: Optional = "", role: Optional = ""
) -> Response:
    """Add a group to the space with a role, or change its role there (owners)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    try:
        if not group.strip():
            raise ValidationError(web._("Choose a group."))
        if role not in ROLES:
            raise ValidationError(web._("Choose a role: owner, master, developer or reporter."))
        done = groups.set_space_group(db, web.actor, space, group.strip(), role)
    except FerrymanError as exc:
        if _refused(exc):
            raise
        return members_page(
            request,
            web,
            db,
            space,
            exc.message,
            "group",
            {"group": group, "role": role},
            exc.http_status,
        )
    return redirect(
        request,
        f"/s/{space}/members",
        web._(
            "Members of %(group)s are now at least %(role)s here.",
            group=done["group"],
            role=i18n.label(web.lang, done["role"]),
        ),
    )


@router.post("/s/{space}/groups/{group}/remove", response_model=None)
def remove_space_group(request: Request, space: str, group: str, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    groups.remove_space_group(db, web.actor, space, group)
    return redirect(
        request,
        f"/s/{space}/members",
        web._("%(group)s no longer gives a role here.", group=group),
    )
