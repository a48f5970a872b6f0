"""Events as messages, in English or Chinese: a title, Markdown for IM channels, plain text and
HTML for email, a link to the ticket or the console, and the facts as fields."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

EVENTS = (
    "ticket.submitted",
    "ticket.approved",
    "ticket.rejected",
    "deploy.started",
    "rollout.paused",
    "deploy.succeeded",
    "deploy.failed",
    "rollback.succeeded",
    "rollback.failed",
    "rollback.forced",
    "lock.held_long",
)

# event -> language -> (title, body); fields are filled from the event's context
TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "ticket.submitted": {
        "en": (
            "Ticket #{ticket_id} needs your approval",
            "{actor} asks to ship {project} {ref} to {env}: {title}",
        ),
        "zh_CN": (
            "上线单 #{ticket_id} 等待你审核",
            "{actor} 申请把 {project} {ref} 发布到 {env}：{title}",
        ),
    },
    "ticket.approved": {
        "en": (
            "Ticket #{ticket_id} approved",
            "{actor} approved {project} {ref} to {env}. {comment}",
        ),
        "zh_CN": (
            "上线单 #{ticket_id} 已通过",
            "{actor} 通过了 {project} {ref} 发布到 {env}。{comment}",
        ),
    },
    "ticket.rejected": {
        "en": (
            "Ticket #{ticket_id} rejected",
            "{actor} rejected {project} {ref} to {env}: {comment}",
        ),
        "zh_CN": (
            "上线单 #{ticket_id} 被驳回",
            "{actor} 驳回了 {project} {ref} 发布到 {env}：{comment}",
        ),
    },
    "deploy.started": {
        "en": (
            "{kind} #{deploy_id} started",
            "{project} {ref} to {env} ({hosts} hosts) by {actor}",
        ),
        "zh_CN": (
            "{kind} #{deploy_id} 开始",
            "{actor} 正在把 {project} {ref} 发布到 {env}（{hosts} 台主机）",
        ),
    },
    "rollout.paused": {
        "en": (
            "Deploy #{deploy_id} is waiting for you",
            "The gray release of {project} {ref} to {env} paused after its canary: "
            "continue or abort it.",
        ),
        "zh_CN": (
            "部署 #{deploy_id} 等待处理",
            "{project} {ref} 发布到 {env} 的灰度发布在金丝雀批次后暂停：请继续或中止。",
        ),
    },
    "deploy.succeeded": {
        "en": ("Deploy #{deploy_id} succeeded", "{project} {ref} is live on {env} ({release})"),
        "zh_CN": ("部署 #{deploy_id} 成功", "{project} {ref} 已在 {env} 上线（{release}）"),
    },
    "deploy.failed": {
        "en": (
            "Deploy #{deploy_id} failed",
            "{project} {ref} to {env}: {error}\n{where}\n{stderr}",
        ),
        "zh_CN": (
            "部署 #{deploy_id} 失败",
            "{project} {ref} 发布到 {env}：{error}\n{where}\n{stderr}",
        ),
    },
    "rollback.succeeded": {
        "en": ("Rollback #{deploy_id} done", "{project} {env} is back on {release}"),
        "zh_CN": ("回滚 #{deploy_id} 完成", "{project} {env} 已回到 {release}"),
    },
    "rollback.failed": {
        "en": ("Rollback #{deploy_id} failed", "{project} {env}: {error}"),
        "zh_CN": ("回滚 #{deploy_id} 失败", "{project} {env}：{error}"),
    },
    "rollback.forced": {
        "en": (
            "{project} {env}: rollback forced across migrations",
            "{actor} forced a rollback to {release} across irreversible migrations: "
            "{migrations}\nReason: {reason}",
        ),
        "zh_CN": (
            "{project} {env}：强制回滚跨越了数据库迁移",
            "{actor} 强制回滚到 {release}，跨越了不可逆的迁移：{migrations}\n理由：{reason}",
        ),
    },
    "lock.held_long": {
        "en": ("{project} {env} is locked for {minutes} minutes", "deploy #{deploy_id} by {actor}"),
        "zh_CN": ("{project} {env} 已锁定 {minutes} 分钟", "部署 #{deploy_id}，发起人 {actor}"),
    },
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass
class Message:
    event: str
    title: str
    text: str  # plain text; also the Markdown body for IM (escaped where needed)
    link: str
    fields: dict[str, Any] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)  # email addresses from the event

    @property
    def markdown(self) -> str:
        lines = [f"### {self.title}", "", *self.text.splitlines()]
        if self.link:
            lines += ["", f"[{self.link}]({self.link})"]
        return "\n".join(lines)

    @property
    def html(self) -> str:
        body = "<br>".join(html.escape(line) for line in self.text.splitlines())
        link = f'<p><a href="{html.escape(self.link)}">{html.escape(self.link)}</a></p>'
        return f"<h3>{html.escape(self.title)}</h3><p>{body}</p>{link if self.link else ''}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(**data)


WHERE = {"en": ("host", "stage", "command"), "zh_CN": ("主机", "阶段", "命令")}


def render(event: str, context: dict[str, Any], language: str, link: str) -> Message:
    lang = language if language in ("en", "zh_CN") else "en"
    title, body = TEMPLATES[event][lang]
    values = _Blank({k: "" if v is None else v for k, v in context.items()})
    values["where"] = " · ".join(
        f"{label} {context[key]}"
        for label, key in zip(WHERE[lang], ("host", "stage", "command"), strict=True)
        if context.get(key)
    )
    text = "\n".join(line for line in body.format_map(values).splitlines() if line.strip())
    return Message(
        event=event,
        title=title.format_map(values),
        text=text.strip(),
        link=link,
        fields={k: v for k, v in context.items() if k != "recipients"},
        recipients=list(context.get("recipients", [])),
    )
