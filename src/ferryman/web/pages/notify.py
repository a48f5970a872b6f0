"""Notification channels of a space: list, add or replace, test, and the recent deliveries with
every attempt. Secrets are shown as ``***`` and kept when sent back so."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.domain.validate import is_digits
from ferryman.errors import FerrymanError, ValidationError
from ferryman.http_deps import DB, SettingsDep
from ferryman.notify.channels import CHANNELS
from ferryman.notify.message import EVENTS
from ferryman.outbound import Outbound
from ferryman.said import Said
from ferryman.services import notifications, summaries
from ferryman.web import i18n
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]


FIELDS = ("kind", "events", "language")  # a refusal ``kind: …`` is shown at its field


def _at(message: str) -> str:
    """The field of the channel form a refusal belongs at: its name (``invalid channel name
    …``), kind, events or language, else the settings (``url: …``, ``host: …``, a refused
    destination), or "" for one about the whole channel (it changed meanwhile)."""
    if isinstance(message, Said) and message.values.get("what") == "channel name":
        return "name"
    head, sep, _rest = message.partition(": ")
    if sep and head in FIELDS:
        return head
    if sep and head.isidentifier() and head not in ("channel",):
        return "settings"
    return ""


def _page(
    request: Request,
    web: Viewer,
    db: Any,
    space: str,
    error: str = "",
    values: dict[str, Any] | None = None,
    status: int = 200,
    summary_error: str = "",
    summary_values: dict[str, str] | None = None,
) -> HTMLResponse:
    channels = notifications.list_channels(db, web.actor, space)
    recent = {c["id"]: notifications.deliveries(db, web.actor, c["id"], 10) for c in channels}
    return page(
        request,
        web,
        "notify.html",
        status=status,
        channels=channels,
        recent=recent,
        kinds=sorted(CHANNELS),
        events=EVENTS,
        error="" if _at(error) else error,
        errors={_at(error): error} if _at(error) else {},
        values=values or {},
        summary=summaries.get_summary(db, web.actor, space),
        periods=summaries.PERIODS,
        summary_error=summary_error,
        summary_values=summary_values or {},
    )


@router.get("/s/{space}/notify", response_class=HTMLResponse)
def notify_page(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _page(request, web, db, space)


@router.post("/s/{space}/notify", response_model=None)
async def save(request: Request, space: str, db: DB, server: SettingsDep) -> Response:
    import asyncio

    web = await asyncio.to_thread(signed_in, request, db, space)
    form = await request.form()
    check_csrf(web, str(form.get("csrf", "")))
    values = {k: str(v) for k, v in form.items()}
    values["events"] = "\n".join(str(e) for e in form.getlist("events"))
    settings: dict[str, Any] = {}
    for line in values.get("settings", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            settings[key.strip()] = value.strip()
    if "port" in settings and is_digits(settings["port"]):
        settings["port"] = int(settings["port"])
    if values.get("to"):
        settings["to"] = [x.strip() for x in values["to"].replace(",", " ").split() if x.strip()]

    def lines(name: str) -> list[str]:
        return [x.strip() for x in values.get(name, "").splitlines() if x.strip()]

    try:
        await asyncio.to_thread(
            notifications.save_channel,
            db,
            web.actor,
            space,
            values.get("name", "").strip(),
            values.get("kind", ""),
            settings,
            language=values.get("language", "en"),
            events=[str(e) for e in form.getlist("events")],
            projects=lines("projects"),
            envs=lines("envs"),
            enabled=values.get("enabled") == "1",
            outbound=Outbound(allow=server.outbound_allow),
        )
    except FerrymanError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return await asyncio.to_thread(_page, request, web, db, space, exc.message, values, 422)
    return redirect(request, f"/s/{space}/notify", web._("Channel saved."))


@router.post("/s/{space}/notify/summary", response_model=None)
def save_summary(
    request: Request,
    space: str,
    db: DB,
    csrf: Csrf,
    channel: Annotated[str, Form()] = "",
    period: Annotated[str, Form()] = "",
    enabled: Annotated[str, Form()] = "",
) -> Response:
    """The space's scheduled summary (报表汇总): daily or weekly, to one of its channels
    (masters and owners; ``summaries.set_summary`` checks the role)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    typed = {"channel": channel, "period": period, "enabled": enabled}
    try:
        if not channel.strip():
            raise ValidationError(web._("Choose the channel the summary goes to."))
        if period not in summaries.PERIODS:
            raise ValidationError(web._("Choose daily or weekly."))
        summaries.set_summary(
            db, web.actor, space, channel=channel.strip(), period=period, enabled=enabled == "1"
        )
    except FerrymanError as exc:
        if exc.http_status in (401, 403):
            raise
        return _page(
            request,
            web,
            db,
            space,
            status=exc.http_status,
            summary_error=exc.message,
            summary_values=typed,
        )
    said = (
        web._(
            "The %(period)s summary goes to %(channel)s.",
            period=i18n.label(web.lang, period),
            channel=channel,
        )
        if enabled == "1"
        else web._("No scheduled summary is sent now.")
    )
    return redirect(request, f"/s/{space}/notify#summary", said)


@router.post("/s/{space}/notify/{channel_id}/{action}", response_model=None)
def channel_action(
    request: Request, space: str, channel_id: int, action: str, db: DB, csrf: Csrf
) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    if action == "test":
        notifications.test_channel(db, web.actor, channel_id)
        said = web._("A test message is on its way.")
    elif action == "delete":
        notifications.delete_channel(db, web.actor, channel_id)
        said = web._("Channel removed.")
    else:
        from ferryman.errors import NotFound

        raise NotFound(f"no channel action {action!r}")
    return redirect(request, f"/s/{space}/notify", said)
