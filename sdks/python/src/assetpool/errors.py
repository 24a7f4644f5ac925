"""Errors of the assetpool SDK.

Every error is an :class:`AssetpoolError` carrying ``status`` (the HTTP status,
``None`` when the server did not answer), ``code`` (the contract's error code,
``None`` when there was none) and ``message``. No error ever contains an API
key, a token or a password: the server's messages never echo submitted values,
and the SDK's own never name them.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "AssetpoolError",
    "ConfigError",
    "TransportError",
    "RedirectError",
    "DecodeError",
    "ApiError",
    "InvalidRequestError",
    "AuthenticationError",
    "TokenExpiredError",
    "TokenRevokedError",
    "PermissionDeniedError",
    "NotFoundError",
    "RateLimitedError",
    "UnavailableError",
    "api_error",
]


class AssetpoolError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP status {self.status}")
        if self.code:
            parts.append(self.code)
        parts.append(self.message)
        return ": ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class ConfigError(AssetpoolError, ValueError):
    """The client is misconfigured (a bad base URL, an empty API key, a bad path)."""


class TransportError(AssetpoolError):
    """The server could not be reached, or did not answer in time."""


class RedirectError(AssetpoolError):
    """The server answered with a redirect, which is never followed.

    Credentials go to the configured server only; ``location`` is the
    ``Location`` header, for a caller who trusts it and follows it without the
    client's credentials. The message does not show it.
    """

    def __init__(self, status: int, location: Optional[str]) -> None:
        super().__init__(
            "the server answered a redirect, which is not followed: "
            "credentials go to the configured server only",
            status=status,
        )
        self.location = location


class DecodeError(AssetpoolError):
    """The server's answer was not what the contract says."""


class ApiError(AssetpoolError):
    """The server refused the request with a status of 400 or more."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class InvalidRequestError(ApiError):
    """400: a malformed request (``invalid_request``, ``invalid_scope``, ...)."""


class AuthenticationError(ApiError):
    """401: a missing or bad API key, token or password."""


class TokenExpiredError(AuthenticationError):
    """401 ``token_expired`` (after the client's one renewal and retry)."""


class TokenRevokedError(AuthenticationError):
    """401 ``token_revoked`` (after the client's one renewal and retry)."""


class PermissionDeniedError(ApiError):
    """403: ``forbidden``, ``insufficient_scope``, ``address_not_allowed``."""


class NotFoundError(ApiError):
    """404."""


class RateLimitedError(ApiError):
    """429: ``too_many_attempts`` or ``rate_limited``; see ``retry_after``."""


class UnavailableError(ApiError):
    """503 (after the client's retries): ``overloaded`` or ``storage_unavailable``."""


def api_error(
    status: int, code: Optional[str], message: str, retry_after: Optional[float]
) -> ApiError:
    """The :class:`ApiError` subclass for a refusal."""
    kind: type[ApiError] = ApiError
    if code == "token_expired":
        kind = TokenExpiredError
    elif code == "token_revoked":
        kind = TokenRevokedError
    elif status == 400:
        kind = InvalidRequestError
    elif status == 401:
        kind = AuthenticationError
    elif status == 403:
        kind = PermissionDeniedError
    elif status == 404:
        kind = NotFoundError
    elif status == 429:
        kind = RateLimitedError
    elif status == 503:
        kind = UnavailableError
    return kind(message or f"HTTP status {status}", status=status, code=code, retry_after=retry_after)
