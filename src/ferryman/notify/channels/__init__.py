"""The channels: each a module with ``KIND``, ``SECRET_KEYS``, ``check(settings)`` and
``async send(message, settings, http)``. Adding one is one module here and its tests."""

from __future__ import annotations

from types import ModuleType

from ferryman.notify.channels import dingtalk, email, feishu, slack, webhook, wecom

CHANNELS: dict[str, ModuleType] = {
    m.KIND: m for m in (email, dingtalk, wecom, feishu, slack, webhook)
}
