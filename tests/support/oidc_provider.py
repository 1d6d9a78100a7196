"""A real OIDC provider for the tests: oidc-provider-mock in a subprocess on 127.0.0.1.

``OidcProvider(...).start()`` runs ``tests/support/oidc_mock_server.py`` on a free port and
waits for its discovery document; ``stop()`` kills it by PID; ``start()`` again brings it back
on the same port (with a new signing key: the mock makes one per start, as a key rotation).
``sign_in()`` drives the provider's authorization page the way a browser does. The fixture
``oidc_provider`` (tests/conftest.py) is one per module with user claims reset by each test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from testbed.servers import free_port

RUNNER = Path(__file__).with_name("oidc_mock_server.py")
INSTALL_HINT = "pip install oidc-provider-mock (it is in the dev extras: make venv)"


@dataclass
class OidcProvider:
    """One oidc-provider-mock process (see tests/support/oidc_mock_server.py for the options)."""

    require_registration: bool = False
    require_nonce: bool = True
    token_max_age: int = 3600
    access_token_audience: str = "dialback-api"
    token_auth_methods: str = ""
    port: int = field(default_factory=free_port)
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="oidc-mock-", suffix=".log")[1])
    )
    proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        """The issuer URL (the mock's is its host URL without a trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> OidcProvider:
        """Start the provider and wait until it serves its discovery document."""
        # Not imported here: it imports authlib.jose, whose deprecation warning is an error.
        if importlib.util.find_spec("oidc_provider_mock") is None:
            raise RuntimeError(f"oidc-provider-mock is missing; {INSTALL_HINT}")
        args = [sys.executable, str(RUNNER), "--port", str(self.port)]
        args += ["--token-max-age", str(self.token_max_age)]
        if self.require_registration:
            args.append("--require-registration")
        if self.require_nonce:
            args.append("--require-nonce")
        if self.access_token_audience:
            args += ["--access-token-audience", self.access_token_audience]
        if self.token_auth_methods:
            args += ["--token-auth-methods", self.token_auth_methods]
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        url = f"{self.issuer}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"oidc-provider-mock exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"oidc-provider-mock not up in {timeout}s: {self.log_path.read_text()}")

    def stop(self) -> None:
        """Kill the provider by its PID and wait for it to end."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Create or replace the user ``sub`` with ``claims`` (the mock's ``PUT /users/{sub}``)."""
        httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=5).raise_for_status()

    def register_client(
        self, redirect_uri: str, auth_method: str = "client_secret_basic"
    ) -> tuple[str, str]:
        """Register a client (dynamic registration): its id and secret."""
        r = httpx.post(
            f"{self.issuer}/oauth2/clients",
            json={"redirect_uris": [redirect_uri], "token_endpoint_auth_method": auth_method},
            timeout=5,
        )
        r.raise_for_status()
        body = r.json()
        return body["client_id"], body["client_secret"]

    def issue_tokens(
        self,
        sub: str,
        *,
        client_id: str = "dialback",
        client_secret: str = "any",
        nonce: str = "n-0",
        redirect_uri: str = "https://dialback.example/ui/auth/callback",
    ) -> dict[str, Any]:
        """The provider's token response (id_token, access_token) for ``sub`` signing in to
        ``client_id``: the code flow driven directly, without dialback's client."""
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": "s-0",
            "nonce": nonce,
        }
        with httpx.Client(timeout=5) as http:
            answer = http.post(f"{self.issuer}/oauth2/authorize", params=query, data={"sub": sub})
            assert answer.status_code == 302, answer.text[:500]
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            token = http.post(
                f"{self.issuer}/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                },
                auth=(client_id, client_secret),
            )
            token.raise_for_status()
            body: dict[str, Any] = token.json()
        return body

    def requests_to(self, path: str) -> int:
        """How many requests for ``path`` the provider has logged (all its starts)."""
        return self.log_path.read_text().count(f'"GET {path} HTTP/')

    def jwks(self) -> dict[str, Any]:
        """The provider's published keys."""
        return httpx.get(f"{self.issuer}/jwks", timeout=5).json()


async def sign_in(authorization_url: str, sub: str) -> dict[str, str]:
    """Act as the browser: open the authorization page, submit ``sub`` as the mock's form
    expects, and return the query of the redirect back to the redirect URI (code, state)."""
    async with httpx.AsyncClient(timeout=5, follow_redirects=False) as browser:
        page = await browser.get(authorization_url)
        assert page.status_code == 200, page.text[:500]
        assert 'name="sub"' in page.text, page.text[:500]
        answer = await browser.post(authorization_url, data={"sub": sub})
        assert answer.status_code == 302, answer.text[:500]
        location = answer.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()} | {
        "_redirect": location.split("?")[0]
    }


CLIENT_ID = "dialback"
CLIENT_SECRET = "dialback-client-secret"
REDIRECT_URI = "https://dialback.example/ui/auth/callback"


def oidc_settings(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    """The DIALBACK_OIDC_* settings (as Settings keyword arguments) for ``provider``."""
    return {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_audience": provider.access_token_audience,
        **overrides,
    }
