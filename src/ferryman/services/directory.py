"""Optional LDAP / Active Directory sign-in (ldap3), configured in ``$FERRYMAN_HOME/ldap.yaml``:

```yaml
url: ldaps://ldap.example.com          # or ldap://…; several servers: a list
bind_dn: cn=ferryman,ou=services,dc=example,dc=com
bind_password: …
user_base: ou=people,dc=example,dc=com
user_filter: "(uid={username})"        # AD: "(sAMAccountName={username})"
attributes: {email: mail}
group_base: ou=groups,dc=example,dc=com
group_filter: "(member={dn})"
groups:                                # group cn -> space -> role
  developers: {shop: developer}
  ops: {shop: master, default: master}
timeout: 5
```

The service account finds the user's entry; the user's own password is checked by binding as
that entry. Local accounts always sign in with their local password, so the local admin keeps
working when the directory is down; directory accounts then get a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferryman.errors import ConfigError

ROLE_ORDER = ("reporter", "developer", "master", "owner")


class DirectoryDown(Exception):
    """The directory cannot be reached (or the service account cannot bind)."""


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    email: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Directory:
    url: str | list[str]
    user_base: str
    bind_dn: str = ""
    bind_password: str = ""
    user_filter: str = "(uid={username})"
    attributes: dict[str, str] = field(default_factory=lambda: {"email": "mail"})
    group_base: str = ""
    group_filter: str = "(member={dn})"
    groups: dict[str, dict[str, str]] = field(default_factory=dict)
    timeout: float = 5.0

    @classmethod
    def load(cls, path: Path) -> Directory | None:
        if not path.exists():
            return None
        try:
            data = yaml.safe_load(path.read_text()) or {}
            found = cls(**data)
        except (yaml.YAMLError, TypeError) as exc:
            raise ConfigError(f"{path}: not a valid LDAP configuration: {exc}") from None
        for group, spaces in found.groups.items():
            for space, role in spaces.items():
                if role not in ROLE_ORDER:
                    raise ConfigError(f"{path}: groups/{group}/{space}: not a role: {role!r}")
        return found

    def _server(self) -> Any:
        import ldap3

        urls = [self.url] if isinstance(self.url, str) else list(self.url)
        servers = [ldap3.Server(u, connect_timeout=self.timeout, get_info=ldap3.NONE) for u in urls]
        return ldap3.ServerPool(servers, ldap3.FIRST, active=1, exhaust=True)

    def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        """The user's entry when the password is right, None when it is not (or no such
        user); ``DirectoryDown`` when the directory cannot answer."""
        import ldap3
        from ldap3.core.exceptions import LDAPException
        from ldap3.utils.conv import escape_filter_chars

        if not password:  # an empty password would be an anonymous bind
            return None
        try:
            server = self._server()
            service = ldap3.Connection(
                server,
                self.bind_dn or None,
                self.bind_password or None,
                receive_timeout=self.timeout,
                raise_exceptions=False,
            )
            try:  # closed on every way out: a failed bind or search leaves its socket open
                if not service.bind():
                    raise DirectoryDown(f"the service account cannot bind: {service.result}")
                email_attr = self.attributes.get("email", "mail")
                service.search(
                    self.user_base,
                    self.user_filter.format(username=escape_filter_chars(username)),
                    attributes=[email_attr],
                    size_limit=2,
                )
                if len(service.entries) != 1:
                    return None
                entry = service.entries[0]
                dn = entry.entry_dn
                user = ldap3.Connection(
                    server, dn, password, receive_timeout=self.timeout, raise_exceptions=False
                )
                try:
                    if not user.bind():
                        return None
                finally:
                    _close(user)
                groups: list[str] = []
                if self.group_base:
                    service.search(
                        self.group_base,
                        self.group_filter.format(
                            dn=escape_filter_chars(dn), username=escape_filter_chars(username)
                        ),
                        attributes=["cn"],
                    )
                    groups = [str(g.cn.value) for g in service.entries if "cn" in g]
                email = str(entry[email_attr].value) if email_attr in entry else ""
            finally:
                _close(service)
            return DirectoryUser(dn=dn, email=email or "", groups=tuple(groups))
        except LDAPException as exc:
            raise DirectoryDown(f"{type(exc).__name__}: {exc}") from None

    def roles(self, groups: tuple[str, ...]) -> dict[str, str | None]:
        """{space: role} for every space the mapping names: the highest role of the user's
        groups there, or None (not a member any more)."""
        out: dict[str, str | None] = {}
        for spaces in self.groups.values():
            for space in spaces:
                out.setdefault(space, None)
        for group in groups:
            for space, role in self.groups.get(group, {}).items():
                current = out.get(space)
                if current is None or ROLE_ORDER.index(role) > ROLE_ORDER.index(current):
                    out[space] = role
        return out


def _close(connection: Any) -> None:
    """Unbind ``connection`` and close its socket, whatever state it is in (never bound, a
    failed bind, a directory gone away: its socket is closed all the same)."""
    from ldap3.core.exceptions import LDAPException

    try:
        connection.unbind()
    except LDAPException:
        connection.strategy.close()  # closes the socket without a word to the directory
