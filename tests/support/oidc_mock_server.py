"""Runs oidc-provider-mock on 127.0.0.1 (a subprocess of the tests: tests/support/oidc_provider.py).

Usage: ``python oidc_mock_server.py --port N [--require-registration] [--require-nonce]
[--token-max-age S] [--access-token-audience AUD] [--token-auth-methods M1,M2]``.

The mock is the real provider of the suite (authlib's authorization server behind Flask). Two
things are added here, as a real provider does them: it binds 127.0.0.1 (never "localhost"),
and with ``--access-token-audience`` its access tokens are JWTs (RFC 9068, ``typ: at+jwt``) signed
by its own key — the mock's are opaque strings, while Keycloak, Okta and Entra ID issue JWTs.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from typing import Any


def _jwt_access_tokens(audience: str, max_age: int) -> Any:
    import flask
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    def generate(*, client: Any, grant_type: str, user: Any, scope: str) -> str:
        storage = flask.g.oidc_provider_mock_storage
        key = RSAKey.import_key(storage.jwk.as_dict(is_private=True))
        now = int(time.time())
        claims = {
            "iss": flask.request.host_url.rstrip("/"),
            "sub": user.sub,
            "aud": audience,
            "client_id": client.get_client_id(),
            "scope": scope,
            "iat": now,
            "exp": now + max_age,
            "jti": secrets.token_hex(8),
            **{k: v for k, v in user.claims.items() if k not in ("iss", "aud", "exp", "iat")},
        }
        header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(header, claims, key)

    return generate


def main(argv: list[str] | None = None) -> None:
    """Parse the options and serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--require-registration", action="store_true")
    parser.add_argument("--require-nonce", action="store_true")
    parser.add_argument("--token-max-age", type=int, default=3600)
    parser.add_argument("--access-token-audience", default="")
    # Published as token_endpoint_auth_methods_supported (the mock's discovery omits it,
    # which means client_secret_basic only).
    parser.add_argument("--token-auth-methods", default="")
    args = parser.parse_args(argv)

    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    import flask
    import werkzeug.serving
    from oidc_provider_mock import init_app

    app = flask.Flask("oidc_provider_mock")
    if args.access_token_audience:
        app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = _jwt_access_tokens(
            args.access_token_audience, args.token_max_age
        )
    init_app(
        app,
        require_client_registration=args.require_registration,
        require_nonce=args.require_nonce,
        access_token_max_age=timedelta(seconds=args.token_max_age),
    )
    app.secret_key = secrets.token_bytes(16)
    if args.token_auth_methods:
        methods = args.token_auth_methods.split(",")

        @app.after_request
        def advertise(response: Any) -> Any:
            if flask.request.path == "/.well-known/openid-configuration":
                doc = response.get_json()
                doc["token_endpoint_auth_methods_supported"] = methods
                response.set_data(flask.json.dumps(doc))
            return response

    server = werkzeug.serving.make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
