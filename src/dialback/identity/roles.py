"""GES's four Callback UI roles, the permissions they grant, and the principal acting.

The one table (``ROLE_PERMISSIONS``) is what the server enforces on every admin route and UI
action, what the role matrix test walks and what docs/security.md is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """A Callback UI role (reference §7.4)."""

    MONITOR = "monitor"
    SUPERVISOR = "supervisor"
    ADMINISTRATOR = "administrator"
    DEVELOPER = "developer"


class Permission(StrEnum):
    """One thing a principal may do."""

    CALLBACKS_READ = "callbacks.read"
    CALLBACKS_USERDATA = "callbacks.userdata"
    CALLBACKS_WRITE = "callbacks.write"
    CALLBACKS_EXPORT = "callbacks.export"
    CALLBACKS_ERASE = "callbacks.erase"
    SERVICES_READ = "services.read"
    SERVICES_WRITE = "services.write"
    CALLINS_READ = "callins.read"
    CALLINS_WRITE = "callins.write"
    CALLINS_MATCH = "callins.match"
    TENANTS_READ = "tenants.read"
    TENANTS_WRITE = "tenants.write"
    API_KEYS_READ = "apikeys.read"
    API_KEYS_WRITE = "apikeys.write"
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    HEALTH_READ = "health.read"
    LOGGING_READ = "logging.read"
    LOGGING_WRITE = "logging.write"
    REQUESTS_LOOKUP = "requests.lookup"
    AUDIT_READ = "audit.read"


PERMISSION_TEXT: dict[Permission, str] = {
    Permission.CALLBACKS_READ: "view callbacks, their detail and timeline",
    Permission.CALLBACKS_USERDATA: "see a callback's userData",
    Permission.CALLBACKS_WRITE: "create, recreate, reschedule and cancel callbacks (single and bulk)",
    Permission.CALLBACKS_EXPORT: "export callbacks as CSV",
    Permission.CALLBACKS_ERASE: "erase callbacks and a tenant's personal data",
    Permission.SERVICES_READ: "view services, business hours, capacity and rules",
    Permission.SERVICES_WRITE: "create, change and delete services and their rules",
    Permission.CALLINS_READ: "view call-in groups and call-in records",
    Permission.CALLINS_WRITE: "create, change and delete call-in groups",
    Permission.CALLINS_MATCH: "claim a call-in request at dial-in (routing automation)",
    Permission.TENANTS_READ: "view tenants",
    Permission.TENANTS_WRITE: "create, change, disable tenants",
    Permission.API_KEYS_READ: "view a tenant's API keys (prefixes only)",
    Permission.API_KEYS_WRITE: "create and revoke API keys",
    Permission.USERS_READ: "view local users",
    Permission.USERS_WRITE: "create, change and remove local users",
    Permission.HEALTH_READ: "view dependency health and the backlog",
    Permission.LOGGING_READ: "read the run-time log level",
    Permission.LOGGING_WRITE: "change the run-time log level",
    Permission.REQUESTS_LOOKUP: "look up a request or callback by corrId",
    Permission.AUDIT_READ: "read the audit log and the erasure audit",
}

_VIEW = frozenset(
    {
        Permission.CALLBACKS_READ,
        Permission.SERVICES_READ,
        Permission.CALLINS_READ,
        Permission.TENANTS_READ,
        Permission.HEALTH_READ,
    }
)
_SUPERVISE = _VIEW | {
    Permission.CALLBACKS_USERDATA,
    Permission.CALLBACKS_WRITE,
    Permission.CALLBACKS_EXPORT,
}
_DEVELOP = _VIEW | {
    Permission.LOGGING_READ,
    Permission.LOGGING_WRITE,
    Permission.REQUESTS_LOOKUP,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.MONITOR: _VIEW,
    Role.SUPERVISOR: frozenset(_SUPERVISE),
    Role.DEVELOPER: frozenset(_DEVELOP),
    Role.ADMINISTRATOR: frozenset(Permission),
}
"""What each role may do; a principal with several roles may do what any of them may."""


def parse_role(text: str) -> Role:
    """The role named ``text`` (case-insensitive; GES's "Callback Administrator" spellings too)."""
    name = text.strip().lower().removeprefix("callback").strip(" _-")
    try:
        return Role(name)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {text!r}: use one of {allowed}") from None


@dataclass(frozen=True)
class Principal:
    """Who is acting: an admin token, a local user or an OIDC user, with roles and a scope.

    ``tenants`` None means every tenant; otherwise the names of the tenants it may see.
    """

    kind: str  # "token", "local", "oidc", "cli", "system"
    name: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None = None
    subject: str = field(default="", compare=False)

    @property
    def actor(self) -> str:
        """How the audit log and the timeline name it (never secret material)."""
        return f"{self.kind}:{self.name}"

    @property
    def permissions(self) -> frozenset[Permission]:
        """Everything any of its roles grants."""
        granted: set[Permission] = set()
        for role in self.roles:
            granted |= ROLE_PERMISSIONS[role]
        return frozenset(granted)

    def can(self, permission: Permission) -> bool:
        """Whether one of its roles grants ``permission``."""
        return any(permission in ROLE_PERMISSIONS[r] for r in self.roles)

    def sees_tenant(self, tenant: str) -> bool:
        """Whether ``tenant`` is within its scope."""
        return self.tenants is None or tenant in self.tenants

    @property
    def unscoped(self) -> bool:
        """Whether it may see every tenant (and act on what belongs to none)."""
        return self.tenants is None
