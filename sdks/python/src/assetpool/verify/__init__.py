"""Offline verification of assetpool access tokens for Python backends.

A :class:`Verifier` fetches the server's public keys from
``/.well-known/jwks.json``, caches them, refetches when a token names an
unknown ``kid`` (a signing-key rotation; at most once per refetch interval, so
tokens with made-up ``kid``\\ s cannot make the backend hammer the server), and
checks what the Rust crate ``assetpool-verify`` checks: ``alg`` EdDSA only,
``typ`` ``at+jwt``, a ``kid`` of the server's Ed25519 keys, the signature,
``exp`` and ``nbf`` (with a leeway), ``iat`` not in the future, ``iss``,
``aud`` and ``env``; :meth:`Verifier.verify` then checks required scopes
(the token's ``scope`` claim; a token without one is unrestricted).

A signature says nothing about a logout before the token expires; ask the
server (``POST /oauth/introspect``) where that matters.

``assetpool.verify.fastapi`` has the FastAPI/Starlette dependency.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple

import httpx
import jwt
from jwt import PyJWK

__all__ = ["Verifier", "Claims", "VerifyError", "token_from_headers"]

#: Longest token looked at, in bytes (the server's own limit).
MAX_TOKEN_BYTES = 4096
#: Length of a raw Ed25519 public key.
ED25519_PUBLIC_KEY_BYTES = 32
#: Pause after a failed JWKS fetch before the next attempt.
RETRY_AFTER_FAILURE = 5.0
JWKS_PATH = "/.well-known/jwks.json"

_ENVIRONMENTS = {
    "development": "development",
    "dev": "development",
    "staging": "staging",
    "stg": "staging",
    "production": "production",
    "prod": "production",
}

_STATUS = {
    "missing_token": 401,
    "invalid_request": 400,
    "invalid_token": 401,
    "token_expired": 401,
    "token_revoked": 401,
    "insufficient_scope": 403,
    "upstream_unavailable": 502,
}

_MESSAGES = {
    "missing_token": "an access token is required in x-api-token or Authorization: Bearer",
    "invalid_request": "the request is malformed",
    "invalid_token": "the access token is not valid",
    "token_expired": "the access token has expired",
    "token_revoked": "the access token has been revoked",
    "insufficient_scope": "the token does not carry the scopes this request needs",
    "upstream_unavailable": "the upstream service is unavailable",
}


class VerifyError(Exception):
    """Why a token was refused: ``code`` is the contract's error code,
    ``status`` its HTTP status. Never contains the token."""

    def __init__(self, code: str, *, required: Iterable[str] = (), detail: str = "") -> None:
        self.code = code
        self.status = _STATUS.get(code, 401)
        self.message = _MESSAGES.get(code, "the access token is not valid")
        self.required: Tuple[str, ...] = tuple(required)
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)

    def __repr__(self) -> str:
        return f"VerifyError(code={self.code!r})"

    def body(self) -> Dict[str, str]:
        """The contract's error body, ``{"error", "message"}``."""
        return {"error": self.code, "message": self.message}

    def headers(self) -> Dict[str, str]:
        """``WWW-Authenticate`` (RFC 6750) and ``Cache-Control: no-store``, as the server sends them."""
        headers = {"Cache-Control": "no-store"}
        if self.code == "missing_token":
            headers["WWW-Authenticate"] = 'Bearer realm="assetpool"'
        elif self.code in ("invalid_token", "token_expired", "token_revoked"):
            headers["WWW-Authenticate"] = 'Bearer realm="assetpool", error="invalid_token"'
        elif self.code == "insufficient_scope":
            challenge = 'Bearer realm="assetpool", error="insufficient_scope"'
            if self.required:
                challenge += f', scope="{" ".join(self.required)}"'
            headers["WWW-Authenticate"] = challenge
        return headers


@dataclass(frozen=True)
class Claims:
    """The claims of a verified access token (RFC 9068 profile)."""

    sub: str
    email: str
    app: str
    env: str
    sid: str
    jti: str
    iss: str
    aud: str
    iat: int
    nbf: int
    exp: int
    client_id: Optional[str]
    key_id: Optional[str]
    #: The token's scopes; ``None`` when nothing restricted its login (it then
    #: meets every requirement).
    scopes: Optional[FrozenSet[str]]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    def has_scope(self, scope: str) -> bool:
        """Whether the token has ``scope`` (always, when it is unrestricted)."""
        return self.scopes is None or scope in self.scopes

    def has_scopes(self, scopes: Iterable[str]) -> bool:
        """Whether the token has every scope of ``scopes``."""
        return all(self.has_scope(scope) for scope in scopes)


def token_from_headers(headers: Mapping[str, str]) -> str:
    """A request's token as the server reads it: ``x-api-token`` or
    ``Authorization: Bearer``, the same token if both are present.

    ``headers`` may be any mapping; for repeated headers pass an object with
    ``getlist`` or ``get_list`` (Starlette's and httpx's headers), so that a
    repeated header is refused as the server refuses it.
    """

    def values(name: str) -> list:
        for getter in ("getlist", "get_list"):
            if hasattr(headers, getter):
                return list(getattr(headers, getter)(name))
        for key, value in headers.items():
            if key.lower() == name:
                return [value]
        return []

    header_tokens = values("x-api-token")
    authorizations = values("authorization")
    if len(header_tokens) > 1 or len(authorizations) > 1:
        raise VerifyError("invalid_request", detail="repeated token header")
    bearer: Optional[str] = None
    if authorizations:
        scheme, _, rest = authorizations[0].partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            bearer = rest.strip()
    header_token = header_tokens[0] if header_tokens else None
    if header_token is not None and bearer is not None and header_token != bearer:
        raise VerifyError("invalid_request", detail="conflicting token headers")
    token = header_token if header_token is not None else bearer
    if not token:
        raise VerifyError("missing_token")
    return token


class _Jwks:
    """The server's keys, cached (see the module documentation)."""

    def __init__(
        self, url: str, http: httpx.Client, max_age: float, refetch_interval: float
    ) -> None:
        self.url = url
        self.http = http
        self.max_age = max_age
        self.refetch_interval = refetch_interval
        self.keys: Dict[str, PyJWK] = {}
        self.fetched_at: Optional[float] = None
        self.unknown_kid_fetch: Optional[float] = None
        self.failure: Optional[float] = None
        self.fetches = 0
        self.lock = threading.Lock()

    def fresh(self) -> bool:
        return self.fetched_at is not None and time.monotonic() - self.fetched_at < self.max_age

    def key(self, kid: str) -> PyJWK:
        if self.fresh() and kid in self.keys:
            return self.keys[kid]
        with self.lock:
            fresh = self.fresh()
            known = self.keys.get(kid)
            if fresh and known is not None:
                return known
            now = time.monotonic()
            if self.failure is not None and now - self.failure < RETRY_AFTER_FAILURE:
                if known is not None:
                    return known
                raise VerifyError("upstream_unavailable", detail="JWKS: the last fetch failed")
            may_refetch = (
                self.unknown_kid_fetch is None
                or now - self.unknown_kid_fetch >= self.refetch_interval
            )
            if not fresh or may_refetch:
                if fresh:
                    self.unknown_kid_fetch = now
                try:
                    self._fetch()
                except VerifyError:
                    self.failure = time.monotonic()
                    if known is not None:
                        return known
                    raise
                self.failure = None
            key = self.keys.get(kid)
            if key is None:
                raise VerifyError("invalid_token", detail="unknown kid")
            return key

    def _fetch(self) -> None:
        self.fetches += 1
        try:
            response = self.http.get(self.url, follow_redirects=False)
        except httpx.HTTPError as error:
            raise VerifyError(
                "upstream_unavailable", detail=f"JWKS: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            raise VerifyError(
                "upstream_unavailable", detail=f"JWKS: HTTP status {response.status_code}"
            )
        try:
            document = response.json()
        except ValueError:
            raise VerifyError("upstream_unavailable", detail="JWKS: not JSON") from None
        keys: Dict[str, PyJWK] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(jwk, dict):
                continue
            if (jwk.get("kty"), jwk.get("crv"), jwk.get("alg")) != ("OKP", "Ed25519", "EdDSA"):
                continue
            kid = jwk.get("kid")
            if not isinstance(kid, str):
                continue
            try:
                key = PyJWK(jwk, algorithm="EdDSA")
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue
            raw = getattr(key.key, "public_bytes_raw", None)
            if raw is not None and len(raw()) != ED25519_PUBLIC_KEY_BYTES:
                continue
            keys[kid] = key
        self.keys = keys
        self.fetched_at = time.monotonic()


class Verifier:
    """Verifies access tokens of the server at ``base_url`` running in ``environment``.

    ``issuer`` defaults to the base URL (what a server records unless
    configured otherwise), ``audience`` to ``assetpool``. ``application``
    (an ``app_…`` id) is the application whose tokens this backend accepts:
    set it unless the backend serves every application of the server, since
    all of them share the issuer and the audience, so that a user of another
    application (whose key may ship inside a client) is refused, as the
    server itself refuses them. ``http_client`` is an ``httpx.Client`` of
    your own (a private CA, a proxy); redirects are never followed. Safe to
    share between threads.
    """

    def __init__(
        self,
        base_url: str,
        environment: str,
        *,
        issuer: Optional[str] = None,
        audience: str = "assetpool",
        leeway: float = 5.0,
        jwks_max_age: float = 300.0,
        refetch_interval: float = 60.0,
        timeout: float = 10.0,
        http_client: Optional[httpx.Client] = None,
        application: Optional[str] = None,
    ) -> None:
        normalised = _ENVIRONMENTS.get(environment)
        if normalised is None:
            raise ValueError("environment must be development, staging or production")
        base = base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ValueError("the base URL must start with http:// or https://")
        self.environment = normalised
        self.issuer = issuer if issuer is not None else base
        self.audience = audience
        self.application = application
        self.leeway = leeway
        http = http_client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._jwks = _Jwks(base + JWKS_PATH, http, jwks_max_age, refetch_interval)

    def __repr__(self) -> str:
        return f"Verifier(issuer={self.issuer!r}, environment={self.environment!r})"

    @property
    def jwks_fetches(self) -> int:
        """How many times the JWKS has been fetched."""
        return self._jwks.fetches

    def verify_headers(
        self, headers: Mapping[str, str], scopes: Iterable[str] = ()
    ) -> Claims:
        """Verifies the token of a request's headers (see :func:`token_from_headers`)."""
        return self.verify(token_from_headers(headers), scopes)

    def verify(self, token: str, scopes: Iterable[str] = ()) -> Claims:
        """Verifies ``token`` and that it carries every scope of ``scopes``.

        Raises :class:`VerifyError`: ``invalid_token``, ``token_expired``,
        ``insufficient_scope`` (403), or ``upstream_unavailable`` when the keys
        cannot be fetched.
        """
        required = _scope_list(scopes)
        if not isinstance(token, str) or len(token.encode()) > MAX_TOKEN_BYTES:
            raise VerifyError("invalid_token", detail="too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise VerifyError("invalid_token", detail="malformed") from None
        typ = header.get("typ")
        if header.get("alg") != "EdDSA" or not isinstance(typ, str) or typ.lower() not in (
            "at+jwt",
            "application/at+jwt",
        ):
            raise VerifyError("invalid_token", detail="algorithm or type")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise VerifyError("invalid_token", detail="no kid")
        key = self._jwks.key(kid)
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise VerifyError("token_expired") from None
        except jwt.PyJWTError as error:
            raise VerifyError("invalid_token", detail=type(error).__name__) from None
        claims = _claims(payload)
        if claims.env != self.environment:
            raise VerifyError("invalid_token", detail="environment")
        if self.application is not None and claims.app != self.application:
            raise VerifyError("invalid_token", detail="application")
        if claims.iat > time.time() + self.leeway:
            raise VerifyError("invalid_token", detail="issued in the future")
        if not claims.has_scopes(required):
            raise VerifyError("insufficient_scope", required=required)
        return claims


def _scope_list(scopes: Iterable[str]) -> Tuple[str, ...]:
    """Required scopes as a tuple: a string is a space-separated list."""
    if isinstance(scopes, str):
        return tuple(scopes.split())
    return tuple(scopes)


def _claims(payload: Mapping[str, Any]) -> Claims:
    def text(name: str, required: bool = True) -> Optional[str]:
        value = payload.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise VerifyError("invalid_token", detail=f"claim {name}")
        return value

    def number(name: str) -> int:
        value = payload.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise VerifyError("invalid_token", detail=f"claim {name}")
        return value

    scope = text("scope", required=False)
    return Claims(
        sub=text("sub") or "",
        email=text("email") or "",
        app=text("app") or "",
        env=text("env") or "",
        sid=text("sid") or "",
        jti=text("jti") or "",
        iss=text("iss") or "",
        aud=text("aud") or "",
        iat=number("iat"),
        nbf=number("nbf"),
        exp=number("exp"),
        client_id=text("client_id", required=False),
        key_id=text("key_id", required=False),
        scopes=frozenset(scope.split()) if scope is not None else None,
        raw=dict(payload),
    )
