"""The team server as an OpenID Connect relying party: it sends a browser to the
identity provider (authorization code with PKCE, through Authlib's OAuth 2 client),
exchanges the code the browser brings back, and checks the ID token (its signature by
the provider's published keys, issuer, audience, expiry and nonce) before anyone is
signed in.

Between the two legs the state, the nonce and the PKCE verifier travel in a cookie
the server signs (HMAC-SHA256 under a key derived from the client secret, so that
every worker can check it) and that expires after :data:`FLOW_LIFETIME`; the browser
holds it but cannot forge or alter it, and the callback trusts nothing else it brings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from trenches.errors import InvalidInput, NotAuthenticated
from trenches.team.accounts import Identity

#: How long a browser has to come back from the provider.
FLOW_LIFETIME = 600
#: Where the client secret is read when no file is given.
SECRET_ENV = "TRENCHES_OIDC_CLIENT_SECRET"
#: What the server asks the provider for: who signed in, and names for a new account.
SCOPE = "openid profile email"
#: Clock difference tolerated between the provider and the server, in seconds.
LEEWAY = 60
#: Signatures the server accepts (never "none", never a shared-secret HMAC).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
REFUSED = "the sign-in with the identity provider failed; start again"
_TIMEOUT = 10.0


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through an identity provider: its issuer URL, the client the provider
    registered for the server, and the server's callback URL. The client secret is read
    from ``client_secret_file``, else from ``$TRENCHES_OIDC_CLIENT_SECRET``; it is
    never a setting itself."""

    issuer: str
    client_id: str
    redirect_url: str
    client_secret_file: str | None = None

    def client_secret(self) -> str:
        """The client secret, from its file or the environment."""
        if self.client_secret_file is not None:
            try:
                secret = Path(self.client_secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise InvalidInput(
                    f"cannot read the OIDC client secret file {self.client_secret_file}: "
                    f"{exc.strerror}"
                ) from None
        else:
            secret = os.environ.get(SECRET_ENV, "").strip()
        if not secret:
            raise InvalidInput(
                f"the OIDC client secret is missing: give --oidc-client-secret-file or set "
                f"{SECRET_ENV}"
            )
        return secret


@dataclass(frozen=True)
class Flow:
    """One sign-in under way: what the callback must see again."""

    state: str
    nonce: str
    verifier: str
    expires: int


@dataclass
class Provider:
    """The identity provider of :class:`OidcSettings`, as the server talks to it."""

    settings: OidcSettings
    secret: str = field(repr=False)
    _metadata: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: OidcSettings) -> Provider:
        return cls(settings, settings.client_secret())

    @property
    def _key(self) -> bytes:
        return hmac.new(self.secret.encode(), b"trenches oidc flow cookie", "sha256").digest()

    def start(self) -> tuple[str, str]:
        """Where to send the browser, and the signed cookie that remembers the flow."""
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            expires=int(time.time()) + FLOW_LIFETIME,
        )
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"],
                state=flow.state,
                code_verifier=flow.verifier,
                nonce=flow.nonce,
            )
        return str(url), self._sign(flow)

    def finish(self, cookie: str | None, *, code: str, state: str) -> Identity:
        """Who signed in: the flow of ``cookie`` must be the one of ``state``; the code
        is exchanged (with the PKCE verifier) and the ID token checked."""
        flow = self._unsign(cookie)
        if not hmac.compare_digest(flow.state.encode(), state.encode()):
            raise NotAuthenticated(f"{REFUSED} (the state does not match this browser's)")
        from authlib.integrations.base_client.errors import OAuthError

        try:
            with self._client() as client:
                token = client.fetch_token(
                    self.metadata()["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=flow.verifier,
                )
        except OAuthError as exc:
            detail = f"{REFUSED} (the provider refused the code: {exc.error})"
            raise NotAuthenticated(detail) from None
        except httpx.HTTPError:
            raise NotAuthenticated(f"{REFUSED} (the provider did not answer)") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise NotAuthenticated(f"{REFUSED} (the provider sent no ID token)")
        return self.check_id_token(id_token, nonce=flow.nonce)

    def check_id_token(self, id_token: str, *, nonce: str) -> Identity:
        """The identity of an ID token signed by one of the provider's keys, issued by
        it, for this client, not expired, and carrying ``nonce``."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        claims = jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            keys = KeySet.import_key_set(self._get(self.metadata()["jwks_uri"]))  # type: ignore[arg-type]
            decoded = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
            claims.validate(decoded.claims)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise NotAuthenticated(f"{REFUSED} (the ID token is not valid: {exc})") from None
        found = decoded.claims
        audience = found["aud"]
        several = isinstance(audience, list) and len(audience) > 1
        if several and found.get("azp") != self.settings.client_id:
            raise NotAuthenticated(f"{REFUSED} (the ID token is for another client)")
        return Identity(
            issuer=self.settings.issuer,
            subject=str(found["sub"]),
            preferred_username=found.get("preferred_username"),
            email=found.get("email"),
        )

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (read once), checked to be its own."""
        if self._metadata is None:
            issuer = self.settings.issuer.rstrip("/")
            found = self._get(f"{issuer}/.well-known/openid-configuration")
            if found.get("issuer") != self.settings.issuer:
                raise NotAuthenticated(
                    f"the identity provider calls itself {found.get('issuer')!r}, not "
                    f"{self.settings.issuer!r} (check --oidc-issuer)"
                )
            self._metadata = found
        return self._metadata

    def _get(self, url: str) -> dict[str, Any]:
        try:
            answer = httpx.get(url, timeout=_TIMEOUT)
            answer.raise_for_status()
            found = answer.json()
        except (httpx.HTTPError, ValueError):
            raise NotAuthenticated(f"{REFUSED} (the provider did not answer {url})") from None
        if not isinstance(found, dict):
            raise NotAuthenticated(f"{REFUSED} ({url} is not a JSON object)")
        return found

    def _client(self) -> Any:
        from authlib.integrations.httpx_client import OAuth2Client

        return OAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.secret,
            redirect_uri=self.settings.redirect_url,
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=_TIMEOUT,
        )

    def _sign(self, flow: Flow) -> str:
        body = base64.urlsafe_b64encode(orjson.dumps(flow.__dict__)).decode().rstrip("=")
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def _unsign(self, cookie: str | None) -> Flow:
        body, _, mac = (cookie or "").partition(".")
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        if not body or not hmac.compare_digest(mac.encode(), expected.encode()):
            raise NotAuthenticated(f"{REFUSED} (this browser did not start it here)")
        try:
            fields = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            flow = Flow(**fields)
        except (ValueError, TypeError):
            raise NotAuthenticated(f"{REFUSED} (this browser did not start it here)") from None
        if flow.expires < time.time():
            raise NotAuthenticated(f"{REFUSED} (it took longer than {FLOW_LIFETIME} s)")
        return flow
