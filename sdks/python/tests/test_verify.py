"""`assetpool.verify` against the real server's tokens and JWKS, and the
FastAPI dependency with Starlette's TestClient."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from assetpool import Client
from assetpool.verify import Claims, Verifier, VerifyError, token_from_headers
from assetpool.verify.fastapi import add_refusal_handler, require

from conftest import Account, Server


def token_of(account: Account) -> str:
    return Client(account.server.url, account.api_key, account.username, account.password).access_token()


def refusal(verifier: Verifier, token: str, scopes=()) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(VerifyError) as raised:
        verifier.verify(token, scopes)
    return raised.value.code


def test_a_good_token_is_verified(account: Account) -> None:
    verifier = Verifier(account.server.url, "prod")
    claims = verifier.verify(token_of(account))
    assert claims.email == account.username
    assert claims.env == "production"
    assert claims.scopes is None
    assert claims.has_scopes(["anything"])
    assert verifier.jwks_fetches == 1
    verifier.verify(token_of(account))
    assert verifier.jwks_fetches == 1


def test_refusals(account: Account, server: Server) -> None:
    token = token_of(account)
    url = server.url
    assert refusal(Verifier(url, "production", audience="another"), token) == "invalid_token"
    assert refusal(Verifier(url, "staging"), token) == "invalid_token"
    assert refusal(Verifier(url, "production", issuer="http://another.example"), token) == "invalid_token"
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    verifier = Verifier(url, "production")
    assert refusal(verifier, f"{header}.{payload}.{forged}") == "invalid_token"
    # Claims changed under the original signature.
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["env"] = "production"
    claims["sub"] = "someone-else"
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(verifier, f"{header}.{changed}.{signature}") == "invalid_token"
    # HS256 with the public key, and alg none.
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = httpx.get(f"{url}/.well-known/jwks.json").json()
    public_x = next(key["x"] for key in jwks["keys"] if key["kid"] == kid)
    hmac = jwt.encode(claims, public_x, algorithm="HS256", headers={"kid": kid, "typ": "at+jwt"})
    assert refusal(verifier, hmac) == "invalid_token"
    none = jwt.encode(claims, None, algorithm="none", headers={"kid": kid, "typ": "at+jwt"})
    assert refusal(verifier, none) == "invalid_token"
    assert refusal(verifier, "not a jwt") == "invalid_token"
    assert refusal(verifier, "x" * 5000) == "invalid_token"


def test_tokens_of_another_application_are_refused_when_one_is_named(
    account: Account, server: Server
) -> None:
    token = token_of(account)
    own = jwt.decode(token, options={"verify_signature": False})["app"]
    other = token_of(Account(server, server.create_key(), server.create_user()))
    assert jwt.decode(other, options={"verify_signature": False})["app"] != own
    named = Verifier(server.url, "production", application=own)
    assert named.verify(token).app == own
    assert refusal(named, other) == "invalid_token"
    # Without an application, any application's token passes (documented).
    assert Verifier(server.url, "production").verify(other).app != own


def test_required_scopes_may_be_one_space_separated_string(server: Server) -> None:
    scoped = Account(server, server.create_key("--scope", "orders:read"), server.create_user())
    token = token_of(scoped)
    verifier = Verifier(server.url, "production")
    assert verifier.verify(token, "orders:read").scopes == frozenset({"orders:read"})
    assert refusal(verifier, token, "orders:read orders:write") == "insufficient_scope"


def test_an_expired_token_is_refused(short_account: Account) -> None:
    token = token_of(short_account)
    verifier = Verifier(short_account.server.url, "production", leeway=0)
    verifier.verify(token)
    time.sleep(4)
    assert refusal(verifier, token) == "token_expired"


def test_a_missing_scope_is_refused(server: Server) -> None:
    scoped = Account(server, server.create_key("--scope", "orders:read"), server.create_user())
    token = token_of(scoped)
    verifier = Verifier(server.url, "production")
    claims = verifier.verify(token, ["orders:read"])
    assert claims.scopes == frozenset({"orders:read"})
    with pytest.raises(VerifyError) as raised:
        verifier.verify(token, ["orders:read", "orders:write"])
    assert raised.value.code == "insufficient_scope"
    assert raised.value.status == 403
    assert raised.value.headers()["WWW-Authenticate"] == (
        'Bearer realm="assetpool", error="insufficient_scope", scope="orders:read orders:write"'
    )


def test_unknown_kids_refetch_at_most_once_per_interval(account: Account) -> None:
    token = token_of(account)
    verifier = Verifier(account.server.url, "production", refetch_interval=3600)
    verifier.verify(token)
    _, payload, signature = token.split(".")
    for number in range(5):
        header = {"alg": "EdDSA", "typ": "at+jwt", "kid": f"made-up-{number}"}
        encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        assert refusal(verifier, f"{encoded}.{payload}.{signature}") == "invalid_token"
    # The first unknown kid refetched; the others waited for the interval.
    assert verifier.jwks_fetches == 2


def test_an_unreachable_server_is_upstream_unavailable() -> None:
    verifier = Verifier("http://127.0.0.1:9", "production")
    header = base64.urlsafe_b64encode(b'{"alg":"EdDSA","typ":"at+jwt","kid":"k"}').rstrip(b"=").decode()
    assert refusal(verifier, f"{header}.e30.c2ln") == "upstream_unavailable"


def test_tokens_are_read_from_headers_like_the_server_does() -> None:
    with pytest.raises(VerifyError) as missing:
        token_from_headers({})
    assert missing.value.code == "missing_token"
    assert token_from_headers({"Authorization": "Bearer abc"}) == "abc"
    assert token_from_headers({"x-api-token": "abc", "authorization": "Bearer abc"}) == "abc"
    with pytest.raises(VerifyError) as conflicting:
        token_from_headers({"x-api-token": "abc", "authorization": "Bearer other"})
    assert conflicting.value.code == "invalid_request"
    repeated = httpx.Headers([("x-api-token", "a"), ("x-api-token", "a")])
    with pytest.raises(VerifyError):
        token_from_headers(repeated)


def test_the_fastapi_dependency(server: Server) -> None:
    plain = Account(server, server.create_key(), server.create_user())
    scoped = Account(server, server.create_key("--scope", "orders:read"), server.create_user())
    verifier = Verifier(server.url, "production")
    app = FastAPI()
    add_refusal_handler(app)

    @app.get("/me")
    def me(claims: Claims = Depends(require(verifier))) -> dict:
        return {"email": claims.email}

    @app.post("/orders")
    def write(claims: Claims = Depends(require(verifier, scopes=["orders:write"]))) -> dict:
        return {"email": claims.email}

    token = token_of(plain)
    scoped_token = token_of(scoped)
    with TestClient(app) as backend:
        assert backend.get("/me", headers={"Authorization": f"Bearer {token}"}).json() == {
            "email": plain.username
        }
        assert backend.get("/me", headers={"x-api-token": scoped_token}).status_code == 200
        assert backend.post("/orders", headers={"x-api-token": token}).status_code == 200

        missing = backend.get("/me")
        assert missing.status_code == 401
        assert missing.json()["error"] == "missing_token"
        assert missing.headers["www-authenticate"] == 'Bearer realm="assetpool"'
        assert missing.headers["cache-control"] == "no-store"

        invalid = backend.get("/me", headers={"x-api-token": token + "x"})
        assert invalid.status_code == 401
        assert invalid.json() == {"error": "invalid_token", "message": "the access token is not valid"}
        assert invalid.headers["www-authenticate"] == 'Bearer realm="assetpool", error="invalid_token"'

        conflicting = backend.get("/me", headers={"x-api-token": token, "authorization": "Bearer other"})
        assert conflicting.status_code == 400
        assert conflicting.json()["error"] == "invalid_request"

        insufficient = backend.post("/orders", headers={"x-api-token": scoped_token})
        assert insufficient.status_code == 403
        assert insufficient.json()["error"] == "insufficient_scope"
        assert 'scope="orders:write"' in insufficient.headers["www-authenticate"]
        for answer in (missing, invalid, insufficient):
            assert token not in answer.text and scoped_token not in answer.text
