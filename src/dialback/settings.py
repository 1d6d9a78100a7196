"""Settings read from the environment (prefix ``DIALBACK_``) with embedded defaults."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dialback.identity.admin_tokens import AdminTokens
from dialback.identity.roles import Role, parse_role
from dialback.kit.addresses import parse_networks

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
# Other spellings of the same levels (GES's Helm sample is "DEBUG"; Python and log4js say
# WARNING, CRITICAL, FATAL): read case-insensitively, answered as the canonical name.
_LEVEL_ALIASES = {"warning": "warn", "critical": "error", "fatal": "error"}


def canonical_log_level(value: Any) -> Any:
    """The canonical lower-case level for any accepted spelling; anything else unchanged."""
    if not isinstance(value, str):
        return value
    name = value.strip().lower()
    return _LEVEL_ALIASES.get(name, name)


LogLevel = Annotated[
    Literal["trace", "debug", "info", "warn", "error"], BeforeValidator(canonical_log_level)
]


def _valid_admin_tokens(value: SecretStr) -> SecretStr:
    AdminTokens([t.strip() for t in value.get_secret_value().split(",") if t.strip()])
    return value


def _valid_ui_url(url: str | None) -> str | None:
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or any(c in url for c in "?# "):
        raise ValueError("must be an http(s) URL without query or fragment")
    return url.rstrip("/")


def _valid_networks(text: str) -> str:
    parse_networks(text)
    return text


def parse_role_map(text: str) -> dict[str, frozenset[Role]]:
    """``"group=role,group2=role2"`` as a map (a value may be named twice, for two roles)."""
    mapping: dict[str, set[Role]] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        value, sep, role = item.rpartition("=")
        if not sep or not value.strip():
            raise ValueError(f"role map entry {item.strip()!r} is not of the form value=role")
        mapping.setdefault(value.strip(), set()).add(parse_role(role))
    return {k: frozenset(v) for k, v in mapping.items()}


def _valid_role_map(text: str) -> str:
    parse_role_map(text)
    return text


def _valid_issuer(text: str | None) -> str | None:
    if not text:
        return None
    from urllib.parse import urlsplit

    url = urlsplit(text)
    loopback = url.hostname in ("127.0.0.1", "::1", "localhost")
    if url.scheme != "https" and not (url.scheme == "http" and loopback):
        raise ValueError(f"OIDC issuer {text!r} must be an https:// URL (http only on loopback)")
    if url.query or url.fragment:
        raise ValueError(f"OIDC issuer {text!r} must have no query or fragment")
    return text


class Settings(BaseSettings):
    """Every runtime setting of a dialback process."""

    # A refused value is never echoed: it may be a token, a password or a URL with one in it.
    model_config = SettingsConfigDict(
        env_prefix="DIALBACK_", extra="ignore", hide_input_in_errors=True
    )

    host: str = "127.0.0.1"
    public_port: int = 3005
    internal_port: int = 3050

    database_url: str = "sqlite+aiosqlite:///./var/dialback.db"
    migrate_on_start: bool = True
    db_pool_size: int = 10
    # Every PostgreSQL wait is bounded; past it the request answers 503 (docs/configuration.md).
    db_connect_timeout_seconds: float = Field(5.0, gt=0)
    db_statement_timeout_seconds: float = Field(5.0, gt=0)
    db_lock_timeout_seconds: float = Field(2.0, gt=0)
    db_idle_in_transaction_timeout_seconds: float = Field(30.0, gt=0)
    db_pool_timeout_seconds: float = Field(3.0, gt=0)

    # dialback's own Redis (throttle counters, caches). None = in-process memory.
    redis_url: SecretStr | None = None
    # While it is unreachable throttles count in each replica's memory; Redis is tried again
    # after this long. A command unanswered this long counts as Redis down.
    redis_fallback_retry_seconds: float = 5.0
    redis_command_timeout_seconds: float = 1.0
    # The routing Redis (GES "ORS Redis"). None = in-process memory transport.
    routing_redis_url: SecretStr | None = None
    routing_stream: str = "NewCallbackStream"
    outcome_stream: str = "CallbackOutcomeStream"
    outcome_group: str = "dialback"
    routing_group: str = "routing-engine"
    dedup_ttl_seconds: int = 7 * 24 * 3600

    simulator: Literal["auto", "on", "off"] = "auto"
    sim_agents: int = 5
    sim_handle_seconds: float = 2.0
    sim_answer_probability: float = 0.9
    sim_ring_seconds: float = 0.5

    monitor_enabled: bool = True
    monitor_poll_seconds: float = 0.5
    monitor_batch_size: int = 1000
    monitor_lease_seconds: float = 30.0
    monitor_lagging_threshold_seconds: float = 5.0
    monitor_stats_seconds: float = 5.0
    # Deadlines of the routed states (docs/routing.md#deadlines), checked every sweep.
    queued_republish_seconds: float = 60.0
    queued_max_republishes: int = 5
    queued_timeout_seconds: float = 4 * 3600.0
    routing_timeout_seconds: float = 900.0
    processing_timeout_seconds: float = 4 * 3600.0
    deadline_sweep_seconds: float = 5.0
    deadline_batch_size: int = 200
    monitor_stall_seconds: float = 120.0

    # Comma-separated bearer tokens for the admin API on the internal port.
    # Each entry: a bare token (an administrator) or NAME:ROLE[@TENANT+...]:TOKEN, where TOKEN
    # may be sha256:<hex> (identity/admin_tokens.py).
    admin_tokens: Annotated[SecretStr, AfterValidator(_valid_admin_tokens)] = SecretStr("")
    demo: bool = False
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses or CIDRs); the
    # audit log and the brute-force limits key on that address. Empty: the peer is the client.
    trusted_proxies: Annotated[str, AfterValidator(_valid_networks)] = ""
    demo_api_key: SecretStr | None = None
    # Brute-force limits (identity/bruteforce.py): failed authentications allowed per client
    # address and fixed window, for API keys and admin tokens, and for operator sign-ins.
    auth_failure_limit: int = Field(20, ge=1)
    login_failure_limit: int = Field(10, ge=1)
    auth_failure_window_seconds: int = Field(300, ge=1, le=86400)

    # Operators of the Callback UI (docs/security.md "Local users and passwords", "Sessions
    # and CSRF"). The demo administrator exists only with DIALBACK_DEMO.
    demo_admin_user: str = Field("admin", min_length=1, max_length=64)
    demo_admin_password: SecretStr | None = None
    session_secret: SecretStr | None = None
    session_idle_minutes: float = Field(20.0, gt=0)
    session_max_hours: float = Field(12.0, gt=0)
    session_cookie_secure: bool = False
    ui_url: Annotated[str | None, AfterValidator(_valid_ui_url)] = None

    max_body_bytes: int = 64 * 1024
    immediate_window_seconds: int = 60
    booking_horizon_days: int = 90
    api_key_cache_seconds: float = 30.0
    # Click-To-Call-In requests a tenant may create per window (a tenant's
    # settings.throttle.maxCallIns overrides the count).
    callin_max_per_window: int = 500
    callin_window_seconds: int = 60

    # The HTTP edge of both listeners (web/edge.py; docs/performance.md "The HTTP edge").
    http_max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0)
    http_keepalive_timeout_seconds: float = Field(default=20.0, gt=0)
    http_max_connections: int = Field(default=2048, ge=1)
    http_backlog: int = Field(default=2048, ge=1)

    # A create's Idempotency-Key answers its first booking for this long (then it is purged).
    idempotency_window_seconds: int = 24 * 3600

    # Health checker and external (GWS-style) dependencies; unset URLs are not checked.
    health_check_min_seconds: float = 15.0
    health_check_max_seconds: float = 20.0
    health_check_timeout_seconds: float = 3.0
    routing_engine_idle_seconds: float = 30.0
    auth_health_url: str | None = None
    tenant_directory_health_url: str | None = None
    config_source_health_url: str | None = None
    data_dir: str = "./var"

    # Thresholds exported as GES `_tolerance` gauges (per pod, per alert window).
    http_400_tolerance: float = 50
    http_401_tolerance: float = 20
    http_404_tolerance: float = 50
    http_500_tolerance: float = 0
    rbac_create_vq_proxy_error_tolerance: float = 5
    invalid_content_length_tolerance: float = 5

    # Retention and erasure (docs/security.md): completed callbacks (with their history) and
    # call-in requests are purged this many days after completion / creation; a tenant's
    # settings.retention overrides each. The sweeper runs every interval, in small batches.
    retention_enabled: bool = True
    retention_callback_days: int = Field(30, ge=1, le=3650)
    retention_callin_days: int = Field(30, ge=1, le=3650)
    # The audit log (operators' actions, failed sign-ins) is kept longer: a year by default.
    retention_audit_days: int = Field(365, ge=1, le=3650)
    retention_interval_seconds: float = Field(300.0, gt=0)
    retention_batch_size: int = Field(500, ge=1, le=10_000)
    retention_batch_pause_seconds: float = Field(0.05, ge=0)
    retention_stream_margin_entries: int = Field(1000, ge=0)
    retention_stream_margin_seconds: float = Field(3600.0, ge=0)
    retention_consumer_idle_seconds: float = Field(86400.0, gt=0)
    erasure_hash_key: SecretStr | None = None

    # Operators' OpenID Connect provider (identity/oidc.py; docs/security.md "OIDC sign-in").
    # Unset issuer: no OIDC (local users and admin tokens only), and no GWS_AUTH_STATUS gauge.
    oidc_issuer: Annotated[str | None, AfterValidator(_valid_issuer)] = None
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_scopes: str = "openid profile email"
    # The claim the roles are read from (dotted path: "groups", "roles", "realm_access.roles"),
    # and how its values map to roles ("value=role,..."; empty: the values are role names).
    oidc_role_claim: str = "groups"
    oidc_role_map: Annotated[str, AfterValidator(_valid_role_map)] = ""
    # The claim naming the tenants an operator may see (empty: not scoped, every tenant).
    oidc_tenant_claim: str = ""
    # The audience bearer access tokens must carry (empty: the client id).
    oidc_audience: str = ""
    oidc_clock_skew_seconds: int = Field(60, ge=0, le=600)
    oidc_cache_seconds: float = Field(300.0, gt=0)
    oidc_display_name: str = "Single sign-on"
    oidc_timeout_seconds: float = Field(5.0, gt=0, le=60)

    log_level: LogLevel = "info"
    log_max_len: int = 2048
    log_format: Literal["auto", "json", "console"] = "auto"

    @model_validator(mode="after")
    def _oidc_client_complete(self) -> Settings:
        if self.oidc_issuer and not (
            self.oidc_client_id and self.oidc_client_secret.get_secret_value()
        ):
            raise ValueError(
                "DIALBACK_OIDC_ISSUER is set but DIALBACK_OIDC_CLIENT_ID or "
                "DIALBACK_OIDC_CLIENT_SECRET is not: dialback is a confidential client and "
                "needs both"
            )
        if self.oidc_issuer and "openid" not in self.oidc_scopes.split():
            raise ValueError("DIALBACK_OIDC_SCOPES must include 'openid'")
        return self

    @cached_property
    def is_sqlite(self) -> bool:
        """True when the store is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    def simulator_enabled(self) -> bool:
        """Whether this process runs the in-process routing simulator."""
        if self.simulator == "auto":
            return self.routing_redis_url is None
        return self.simulator == "on"

    def admin_token_list(self) -> list[str]:
        """The configured admin tokens, blanks dropped."""
        return [t.strip() for t in self.admin_tokens.get_secret_value().split(",") if t.strip()]

    @cached_property
    def trusted_proxy_networks(self) -> tuple[Any, ...]:
        """``trusted_proxies`` parsed (web.client)."""
        return parse_networks(self.trusted_proxies)

    def gws_configured(self) -> bool:
        """Whether a GWS-style dependency is configured (the OIDC provider or a health URL):
        its gauges and the GWS alarm counters are exported only then."""
        return bool(
            self.oidc_issuer
            or self.auth_health_url
            or self.tenant_directory_health_url
            or self.config_source_health_url
        )

    def tolerances(self) -> dict[str, float]:
        """The `_tolerance` gauges and their values."""
        names = (
            "http_400_tolerance",
            "http_401_tolerance",
            "http_404_tolerance",
            "http_500_tolerance",
            "rbac_create_vq_proxy_error_tolerance",
            "invalid_content_length_tolerance",
        )
        return {n: float(getattr(self, n)) for n in names}
