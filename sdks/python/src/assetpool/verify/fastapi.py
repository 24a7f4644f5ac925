"""The FastAPI (Starlette) side of :mod:`assetpool.verify`.

::

    from fastapi import Depends, FastAPI
    from assetpool.verify import Claims, Verifier
    from assetpool.verify.fastapi import add_refusal_handler, require

    verifier = Verifier("https://auth.example.com", "production")
    app = FastAPI()
    add_refusal_handler(app)

    @app.get("/orders")
    def orders(claims: Claims = Depends(require(verifier, scopes=["orders:read"]))):
        return {"user": claims.email}

A refused request gets the contract's answer: its status, the
``{"error", "message"}`` body, ``WWW-Authenticate`` and ``Cache-Control:
no-store``. :func:`add_refusal_handler` installs the handler that writes it;
without it a refusal would be an unhandled exception.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import Claims, Verifier, VerifyError

__all__ = ["require", "add_refusal_handler", "refusal_response"]


def require(verifier: Verifier, scopes: Iterable[str] = ()) -> Callable[[Request], Claims]:
    """A dependency that verifies the request's token and requires ``scopes``.

    It returns the token's :class:`~assetpool.verify.Claims`. It is a plain
    function, which FastAPI runs in its thread pool: the rare JWKS fetch never
    blocks the event loop.
    """
    required = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)

    def verified_claims(request: Request) -> Claims:
        return verifier.verify_headers(request.headers, required)

    return verified_claims


def refusal_response(_request: Request, error: Any) -> JSONResponse:
    """The contract's answer to a :class:`~assetpool.verify.VerifyError`."""
    if not isinstance(error, VerifyError):  # pragma: no cover - registered for VerifyError only
        raise error
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


def add_refusal_handler(app: Any) -> None:
    """Makes ``app`` (FastAPI or Starlette) answer a :class:`~assetpool.verify.VerifyError`
    as the contract says."""
    app.add_exception_handler(VerifyError, refusal_response)
