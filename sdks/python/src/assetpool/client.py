"""The assetpool clients: :class:`Client` (threads) and :class:`AsyncClient` (asyncio).

Both log in lazily with the password grant at the first request, attach
``x-api-key`` and a fresh access token (``x-api-token``) to every request,
renew the token before it expires (the refresh token first, the password as
fallback) with one renewal for all threads or tasks at once, renew and retry
once on ``token_expired`` and ``token_revoked``, and retry a 503 after the
server's ``Retry-After`` (with jitter, a bounded number of times).

Credentials never leave the server's origin: paths must start with ``/``, a
request is sent only to the base URL's scheme, host and port, and no redirect
is followed (:class:`~assetpool.errors.RedirectError`).
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import httpx

from .errors import (
    ApiError,
    ConfigError,
    DecodeError,
    RedirectError,
    TransportError,
    api_error,
)

__all__ = ["Client", "AsyncClient", "RetryPolicy", "RenewalPolicy", "ClientStats"]

LOGIN_PATH = "/api/authentication/login"
REFRESH_PATH = "/api/authentication/refresh"
LOGOUT_PATH = "/api/authentication/logout"
API_KEY_HEADER = "x-api-key"
API_TOKEN_HEADER = "x-api-token"

#: Codes after which the client renews its token and retries once.
RENEW_CODES = frozenset({"token_expired", "token_revoked"})
#: Codes of a 503 worth retrying: assetpool answers them before the request
#: reaches the protected API, so a retry never repeats its effect. A 503
#: without one of these codes (from the API itself, or a proxy) is not retried.
RETRY_CODES = frozenset({"overloaded", "storage_unavailable"})
#: Refusals of a refresh token after which the password is used instead.
REFRESH_FALLBACK_CODES = frozenset({"invalid_refresh_token", "invalid_request"})

ENVIRONMENTS = {
    "development": "dev",
    "dev": "dev",
    "staging": "stg",
    "stg": "stg",
    "production": "prod",
    "prod": "prod",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of requests refused with 503.

    Each wait is the larger of the exponential backoff (``initial_backoff``,
    doubled each retry) and the server's ``Retry-After``, at most
    ``max_delay``, plus a random jitter of up to a quarter of it, so that
    clients refused together do not come back together.
    """

    max_retries: int = 3
    initial_backoff: float = 0.2
    max_delay: float = 30.0

    def delay(self, retry: int, retry_after: Optional[float]) -> float:
        """The wait in seconds before retry number ``retry`` (0 for the first)."""
        backoff = self.initial_backoff * (2 ** min(retry, 16))
        base = min(max(backoff, retry_after or 0.0), self.max_delay)
        return base + random.uniform(0.0, base / 4)


@dataclass(frozen=True)
class RenewalPolicy:
    """When a token is renewed: ``fraction`` of its lifetime before it
    expires, but at most ``max_margin`` seconds before (defaults: 10 %, 30 s)."""

    fraction: float = 0.1
    max_margin: float = 30.0

    def margin(self, lifetime: float) -> float:
        """Seconds before expiry at which a token of ``lifetime`` seconds is renewed."""
        return min(lifetime * min(max(self.fraction, 0.0), 1.0), self.max_margin)


@dataclass(frozen=True)
class ClientStats:
    """How many times the client obtained tokens, by which grant."""

    logins: int
    refreshes: int


@dataclass
class _AccessToken:
    value: str
    renew_at: float
    scope: Optional[str]


class _TokenState:
    """The tokens; guarded by the client's lock."""

    def __init__(self) -> None:
        self.access: Optional[_AccessToken] = None
        self.refresh_token: Optional[str] = None

    def fresh(self) -> Optional[str]:
        if self.access is not None and time.monotonic() < self.access.renew_at:
            return self.access.value
        return None

    def store(self, tokens: Mapping[str, Any], renewal: RenewalPolicy, started: float) -> None:
        lifetime = float(tokens["expiresIn"])
        self.access = _AccessToken(
            value=tokens["accessToken"],
            renew_at=started + lifetime - renewal.margin(lifetime),
            scope=tokens.get("scope"),
        )
        self.refresh_token = tokens["refreshToken"]

    def invalidate(self, failed: str) -> None:
        if self.access is not None and self.access.value == failed:
            self.access = None


class _Base:
    """What both clients share: settings, URLs and the reading of answers."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        username: str,
        password: str,
        *,
        environment: Optional[str],
        scope: Optional[str],
        retry: Optional[RetryPolicy],
        renewal: Optional[RenewalPolicy],
    ) -> None:
        self._base_url = _check_base_url(base_url)
        self._origin = _origin(self._base_url)
        if not api_key:
            raise ConfigError("the API key is empty")
        if environment is not None:
            short = ENVIRONMENTS.get(environment)
            if short is None:
                raise ConfigError(
                    "environment must be development, staging or production (or dev, stg, prod)"
                )
            if not api_key.startswith(f"apk_{short}_"):
                raise ConfigError(f"the API key is not a key of the {environment} environment")
        if not username:
            raise ConfigError("the username is empty")
        self._api_key = api_key
        self._username = username
        self._password = password
        self._scope = scope
        self._retry = retry or RetryPolicy()
        self._renewal = renewal or RenewalPolicy()
        self._state = _TokenState()
        self._logins = 0
        self._refreshes = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r}, username={self._username!r})"

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing ``/``."""
        return self._base_url

    @property
    def stats(self) -> ClientStats:
        """Token counts so far."""
        return ClientStats(logins=self._logins, refreshes=self._refreshes)

    @property
    def granted_scope(self) -> Optional[str]:
        """The current token's scopes (``None`` before a login, or when unrestricted)."""
        access = self._state.access
        return access.scope if access else None

    def url(self, path: str) -> str:
        """The absolute URL of ``path``, which must start with ``/``."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("a request path must start with `/`")
        url = f"{self._base_url}{path}"
        if _origin(url) != self._origin:
            raise ConfigError(
                "the request is not for the server's origin; credentials are sent there only"
            )
        return url

    def _login_body(self) -> Dict[str, str]:
        body = {"username": self._username, "password": self._password}
        if self._scope is not None:
            body["scope"] = self._scope
        return body

    def _headers(self, extra: Any, token: Optional[str]) -> httpx.Headers:
        headers = httpx.Headers(extra)
        headers[API_KEY_HEADER] = self._api_key
        if token is not None:
            headers[API_TOKEN_HEADER] = token
            if "authorization" in headers:
                del headers["authorization"]
        return headers

    def _should_retry(self, error: ApiError, retries: int) -> bool:
        return (
            error.status == 503
            and error.code in RETRY_CODES
            and retries < self._retry.max_retries
        )


class Client(_Base):
    """A client for a protected API behind assetpool, safe to share between threads.

    ``Client(base_url, api_key, username, password)`` sends nothing until the
    first request, which logs in. ``environment`` (optional) checks that the
    API key belongs to that environment; ``scope`` (space-separated) asks for
    those scopes at login. ``http_client`` is an ``httpx.Client`` of your own
    (a proxy, a private CA, event hooks); redirects are never followed, whatever
    its settings.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        username: str,
        password: str,
        *,
        environment: Optional[str] = None,
        scope: Optional[str] = None,
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
        renewal: Optional[RenewalPolicy] = None,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            username,
            password,
            environment=environment,
            scope=scope,
            retry=retry,
            renewal=renewal,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._counter_lock = threading.Lock()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the HTTP client (when the client made it)."""
        if self._owns_http:
            self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Sends ``method path`` with the API key and a fresh token.

        ``kwargs`` are those of ``httpx.Client.request`` (``json``, ``params``,
        ``headers``, ``content``, ...). Returns the response of a status below
        400 (or 304); raises an :class:`~assetpool.errors.ApiError` subclass
        otherwise, after one renew-and-retry on ``token_expired`` or
        ``token_revoked`` and the retries of a 503.
        """
        url = self.url(path)
        extra_headers = kwargs.pop("headers", None)
        renewed = False
        retries = 0
        while True:
            token = self.access_token()
            try:
                return self._execute(method, url, self._headers(extra_headers, token), kwargs)
            except ApiError as error:
                if error.code in RENEW_CODES and not renewed:
                    renewed = True
                    with self._lock:
                        self._state.invalidate(token)
                elif self._should_retry(error, retries):
                    time.sleep(self._retry.delay(retries, error.retry_after))
                    retries += 1
                else:
                    raise

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """``GET path`` (see :meth:`request`)."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """``POST path`` (see :meth:`request`)."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PUT path`` (see :meth:`request`)."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PATCH path`` (see :meth:`request`)."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """``DELETE path`` (see :meth:`request`)."""
        return self.request("DELETE", path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """``GET path``, its JSON body decoded."""
        response = self.get(path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise DecodeError("the answer is not JSON", status=response.status_code) from None

    def access_token(self) -> str:
        """A fresh access token; renews it (once for all threads) when needed."""
        with self._lock:
            token = self._state.fresh()
            if token is not None:
                return token
            self._renew()
            assert self._state.access is not None
            return self._state.access.value

    def login(self) -> Dict[str, Any]:
        """Logs in with the password now and returns the server's token response."""
        with self._lock:
            started = time.monotonic()
            tokens = self._password_login()
            self._state.store(tokens, self._renewal, started)
            return tokens

    def logout(self) -> None:
        """Ends the session on the server (if there is one) and forgets the tokens."""
        with self._lock:
            access = self._state.access
            self._state.access = None
            self._state.refresh_token = None
            if access is not None:
                self._execute(
                    "POST", self.url(LOGOUT_PATH), self._headers(None, access.value), {}
                )

    def _renew(self) -> None:
        started = time.monotonic()
        refresh_token = self._state.refresh_token
        self._state.refresh_token = None
        if refresh_token is not None:
            try:
                tokens = self._post_for_tokens(REFRESH_PATH, {"refreshToken": refresh_token})
            except ApiError as error:
                # Spent, expired or its session revoked: log in again. Any other
                # failure is raised, and the refresh token is not put back: it
                # may have been spent, and presenting it again would look like
                # reuse and revoke the session.
                if error.code not in REFRESH_FALLBACK_CODES:
                    raise
            else:
                with self._counter_lock:
                    self._refreshes += 1
                self._state.store(tokens, self._renewal, started)
                return
        self._state.store(self._password_login(), self._renewal, started)

    def _password_login(self) -> Dict[str, Any]:
        tokens = self._post_for_tokens(LOGIN_PATH, self._login_body())
        with self._counter_lock:
            self._logins += 1
        return tokens

    def _post_for_tokens(self, path: str, body: Dict[str, str]) -> Dict[str, Any]:
        retries = 0
        while True:
            try:
                response = self._execute(
                    "POST", self.url(path), self._headers(None, None), {"json": body}
                )
                return _token_response(response)
            except ApiError as error:
                if not self._should_retry(error, retries):
                    raise
                time.sleep(self._retry.delay(retries, error.retry_after))
                retries += 1

    def _execute(
        self, method: str, url: str, headers: httpx.Headers, kwargs: Mapping[str, Any]
    ) -> httpx.Response:
        if _origin(url) != self._origin:
            raise ConfigError("the request is not for the server's origin")
        try:
            response = self._http.request(
                method, url, headers=headers, follow_redirects=False, **kwargs
            )
        except httpx.HTTPError as error:
            raise TransportError(f"cannot reach the server: {type(error).__name__}") from None
        if response.status_code >= 400:
            response.read()
        return _check(response)


class AsyncClient(_Base):
    """The asyncio client: the same as :class:`Client`, with ``await``.

    One renewal at a time for all tasks (an ``asyncio.Lock``); use one
    ``AsyncClient`` per event loop. ``http_client`` is an ``httpx.AsyncClient``
    of your own.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        username: str,
        password: str,
        *,
        environment: Optional[str] = None,
        scope: Optional[str] = None,
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
        renewal: Optional[RenewalPolicy] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            username,
            password,
            environment=environment,
            scope=scope,
            retry=retry,
            renewal=renewal,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._lock: Optional[asyncio.Lock] = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the HTTP client (when the client made it)."""
        if self._owns_http:
            await self._http.aclose()

    def _token_lock(self) -> asyncio.Lock:
        # Made on first use, inside the running loop (Python 3.9 binds a lock
        # to the loop current at its creation).
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Sends ``method path`` with the API key and a fresh token (see :meth:`Client.request`)."""
        url = self.url(path)
        extra_headers = kwargs.pop("headers", None)
        renewed = False
        retries = 0
        while True:
            token = await self.access_token()
            try:
                return await self._execute(
                    method, url, self._headers(extra_headers, token), kwargs
                )
            except ApiError as error:
                if error.code in RENEW_CODES and not renewed:
                    renewed = True
                    async with self._token_lock():
                        self._state.invalidate(token)
                elif self._should_retry(error, retries):
                    await asyncio.sleep(self._retry.delay(retries, error.retry_after))
                    retries += 1
                else:
                    raise

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """``GET path``."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """``POST path``."""
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PUT path``."""
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PATCH path``."""
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """``DELETE path``."""
        return await self.request("DELETE", path, **kwargs)

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """``GET path``, its JSON body decoded."""
        response = await self.get(path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise DecodeError("the answer is not JSON", status=response.status_code) from None

    async def access_token(self) -> str:
        """A fresh access token; renews it (once for all tasks) when needed."""
        async with self._token_lock():
            token = self._state.fresh()
            if token is not None:
                return token
            await self._renew()
            assert self._state.access is not None
            return self._state.access.value

    async def login(self) -> Dict[str, Any]:
        """Logs in with the password now and returns the server's token response."""
        async with self._token_lock():
            started = time.monotonic()
            tokens = await self._password_login()
            self._state.store(tokens, self._renewal, started)
            return tokens

    async def logout(self) -> None:
        """Ends the session on the server (if there is one) and forgets the tokens."""
        async with self._token_lock():
            access = self._state.access
            self._state.access = None
            self._state.refresh_token = None
            if access is not None:
                await self._execute(
                    "POST", self.url(LOGOUT_PATH), self._headers(None, access.value), {}
                )

    async def _renew(self) -> None:
        started = time.monotonic()
        refresh_token = self._state.refresh_token
        self._state.refresh_token = None
        if refresh_token is not None:
            try:
                tokens = await self._post_for_tokens(
                    REFRESH_PATH, {"refreshToken": refresh_token}
                )
            except ApiError as error:
                if error.code not in REFRESH_FALLBACK_CODES:
                    raise
            else:
                self._refreshes += 1
                self._state.store(tokens, self._renewal, started)
                return
        self._state.store(await self._password_login(), self._renewal, started)

    async def _password_login(self) -> Dict[str, Any]:
        tokens = await self._post_for_tokens(LOGIN_PATH, self._login_body())
        self._logins += 1
        return tokens

    async def _post_for_tokens(self, path: str, body: Dict[str, str]) -> Dict[str, Any]:
        retries = 0
        while True:
            try:
                response = await self._execute(
                    "POST", self.url(path), self._headers(None, None), {"json": body}
                )
                return _token_response(response)
            except ApiError as error:
                if not self._should_retry(error, retries):
                    raise
                await asyncio.sleep(self._retry.delay(retries, error.retry_after))
                retries += 1

    async def _execute(
        self, method: str, url: str, headers: httpx.Headers, kwargs: Mapping[str, Any]
    ) -> httpx.Response:
        if _origin(url) != self._origin:
            raise ConfigError("the request is not for the server's origin")
        try:
            response = await self._http.request(
                method, url, headers=headers, follow_redirects=False, **kwargs
            )
        except httpx.HTTPError as error:
            raise TransportError(f"cannot reach the server: {type(error).__name__}") from None
        if response.status_code >= 400:
            await response.aread()
        return _check(response)


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
        raise ConfigError("the base URL must start with http:// or https://")
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise ConfigError("the base URL has no host")
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise ConfigError("the base URL must not have a query or a fragment")
    if parts.username or parts.password:
        raise ConfigError("the base URL must not carry credentials")
    return base_url.rstrip("/")


def _origin(url: str) -> Tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("the URL has a bad port") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _check(response: httpx.Response) -> httpx.Response:
    """The response of a success; the matching error otherwise."""
    status = response.status_code
    if 300 <= status < 400 and status != 304:
        raise RedirectError(status, response.headers.get("location"))
    if status < 400:
        return response
    code: Optional[str] = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_code = body.get("error")
        if isinstance(raw_code, str):
            code = raw_code
        raw_message = body.get("message", body.get("error_description"))
        if isinstance(raw_message, str):
            message = raw_message
    raise api_error(status, code, message, _retry_after(response))


def _token_response(response: httpx.Response) -> Dict[str, Any]:
    try:
        tokens = response.json()
    except ValueError:
        raise DecodeError("not a token response", status=response.status_code) from None
    if (
        not isinstance(tokens, dict)
        or not isinstance(tokens.get("accessToken"), str)
        or not isinstance(tokens.get("refreshToken"), str)
        or not isinstance(tokens.get("expiresIn"), (int, float))
        or isinstance(tokens.get("expiresIn"), bool)
    ):
        raise DecodeError("not a token response", status=response.status_code)
    return tokens
