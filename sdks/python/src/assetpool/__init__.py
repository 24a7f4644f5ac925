"""The Python SDK of assetpool.

:class:`Client` and :class:`AsyncClient` call an API protected by assetpool:
they log in lazily, keep a fresh access token and retry as the contract
allows. :mod:`assetpool.verify` verifies access tokens in Python backends.
"""

from .client import AsyncClient, Client, ClientStats, RenewalPolicy, RetryPolicy
from .errors import (
    ApiError,
    AssetpoolError,
    AuthenticationError,
    ConfigError,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RedirectError,
    TokenExpiredError,
    TokenRevokedError,
    TransportError,
    UnavailableError,
)

__all__ = [
    "Client",
    "AsyncClient",
    "ClientStats",
    "RenewalPolicy",
    "RetryPolicy",
    "AssetpoolError",
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "DecodeError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RedirectError",
    "TokenExpiredError",
    "TokenRevokedError",
    "TransportError",
    "UnavailableError",
]

__version__ = "0.1.0"
