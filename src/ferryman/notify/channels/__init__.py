"""The channels: each a module with ``KIND``, ``SECRET_KEYS``, ``check(settings, out)`` and
``async send(message, settings, out)``, where ``out`` (``ferryman.outbound.Outbound``) is the
only way a channel reaches the network: it refuses internal destinations and pins the resolved
address. Adding one is one module here and its tests."""

from __future__ import annotations

from types import ModuleType

from ferryman.notify.channels import dingtalk, email, feishu, slack, webhook, wecom

CHANNELS: dict[str, ModuleType] = {
    m.KIND: m for m in (email, dingtalk, wecom, feishu, slack, webhook)
}
