"""The clients against the real server (and a scripted stub for 503s and
answers the real server cannot be made to give on demand)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import assetpool
from assetpool import AsyncClient, Client, RetryPolicy

from conftest import Account, LoginCounter, Stub, tokens

LOGIN = "/api/authentication/login"
REFRESH = "/api/authentication/refresh"


def client_of(account: Account, counter: LoginCounter = None, **settings) -> Client:  # type: ignore[assignment]
    http = httpx.Client(event_hooks={"request": [counter]} if counter else {})
    return Client(
        account.server.url,
        account.api_key,
        account.username,
        account.password,
        http_client=http,
        **settings,
    )


def async_client_of(account: Account, counter: LoginCounter, **settings) -> AsyncClient:
    http = httpx.AsyncClient(event_hooks={"request": [counter.async_hook]})
    return AsyncClient(
        account.server.url,
        account.api_key,
        account.username,
        account.password,
        http_client=http,
        **settings,
    )


def test_a_protected_request_logs_in_lazily(account: Account, counter: LoginCounter) -> None:
    client = client_of(account, counter, environment="production")
    assert counter.count(LOGIN) == 0
    resource = client.get_json("/v1/resource")
    assert resource["user"]["email"] == account.username
    client.get("/v1/resource")
    assert counter.count(LOGIN) == 1
    assert client.stats.logins == 1


def test_a_hundred_concurrent_first_calls_log_in_once_threads(
    account: Account, counter: LoginCounter
) -> None:
    client = client_of(account, counter)
    barrier = threading.Barrier(100)

    def call(_: int) -> int:
        barrier.wait()
        return client.get("/v1/resource").status_code

    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(call, range(100)))
    assert statuses == [200] * 100
    assert counter.count(LOGIN) == 1
    assert counter.count("/v1/resource") == 100


def test_a_hundred_concurrent_first_calls_log_in_once_tasks(
    account: Account, counter: LoginCounter
) -> None:
    async def run() -> list:
        async with async_client_of(account, counter) as client:
            answers = await asyncio.gather(*(client.get("/v1/resource") for _ in range(100)))
            return [answer.status_code for answer in answers]

    assert asyncio.run(run()) == [200] * 100
    assert counter.count(LOGIN) == 1
    assert counter.count("/v1/resource") == 100


def test_tokens_are_renewed_with_the_refresh_token_across_a_short_ttl(
    short_account: Account, counter: LoginCounter
) -> None:
    client = client_of(short_account, counter)
    first = client.access_token()
    # 3 s tokens are renewed 0.3 s before they expire.
    time.sleep(3)
    assert client.get("/v1/resource").status_code == 200
    assert client.access_token() != first
    assert counter.count(LOGIN) == 1
    assert counter.count(REFRESH) == 1
    assert client.stats.refreshes == 1


def test_async_renewal_across_a_short_ttl(short_account: Account, counter: LoginCounter) -> None:
    async def run() -> None:
        async with async_client_of(short_account, counter) as client:
            await client.get("/v1/resource")
            await asyncio.sleep(3)
            answers = await asyncio.gather(*(client.get("/v1/resource") for _ in range(20)))
            assert [answer.status_code for answer in answers] == [200] * 20

    asyncio.run(run())
    assert counter.count(LOGIN) == 1
    assert counter.count(REFRESH) == 1


def test_a_revoked_token_is_renewed_and_the_request_retried_once(
    account: Account, counter: LoginCounter
) -> None:
    client = client_of(account, counter)
    token = client.access_token()
    # The session ends behind the client's back (its refresh token with it).
    logout = httpx.post(
        f"{account.server.url}/api/authentication/logout",
        headers={"x-api-key": account.api_key, "x-api-token": token},
    )
    assert logout.status_code == 204
    assert client.get("/v1/resource").status_code == 200
    # One refused call, one retry; the spent refresh token fell back to the password.
    assert counter.count("/v1/resource") == 2
    assert counter.count(REFRESH) == 1
    assert counter.count(LOGIN) == 2


def test_the_renew_and_retry_happens_once(stub: Stub) -> None:
    revoked = (401, {}, {"error": "token_revoked", "message": "the access token has been revoked"})
    stub.answers["/api/authentication/login"] = [(200, {}, tokens(1)), (200, {}, tokens(2))]
    stub.answers["/api/authentication/refresh"] = [
        (401, {}, {"error": "invalid_refresh_token", "message": "the refresh token is not valid"})
    ]
    stub.answers["/thing"] = [revoked]
    client = Client(stub.url, "apk_prod_x", "a@example.com", "password password")
    with pytest.raises(assetpool.TokenRevokedError) as raised:
        client.get("/thing")
    assert raised.value.status == 401
    assert raised.value.code == "token_revoked"
    assert len(stub.calls_to("/thing")) == 2
    tokens_sent = [call[2].get("x-api-token") for call in stub.calls_to("/thing")]
    assert tokens_sent == ["t1", "t2"]


def test_a_503_of_the_api_itself_is_not_retried(stub: Stub) -> None:
    """A 503 without assetpool's codes may come after the API acted: a POST is not repeated."""
    stub.answers["/api/authentication/login"] = [(200, {}, tokens(1))]
    stub.answers["/orders"] = [
        (503, {"retry-after": "0"}, {"error": "down", "message": "the API is down"}),
        (200, {}, {"ok": True}),
    ]
    client = Client(stub.url, "apk_prod_x", "a@example.com", "password password")
    with pytest.raises(assetpool.ApiError) as raised:
        client.post("/orders", json={"item": 1})
    assert raised.value.status == 503
    assert len(stub.calls_to("/orders")) == 1


def test_retry_after_is_honoured_on_503(stub: Stub) -> None:
    stub.answers["/api/authentication/login"] = [(200, {}, tokens(1))]
    stub.answers["/thing"] = [
        (503, {"retry-after": "1"}, {"error": "overloaded", "message": "the server is busy; retry later"}),
        (200, {}, {"ok": True}),
    ]
    client = Client(
        stub.url, "apk_prod_x", "a@example.com", "password password",
        retry=RetryPolicy(max_retries=3, initial_backoff=0.01, max_delay=5),
    )
    assert client.get_json("/thing") == {"ok": True}
    calls = stub.calls_to("/thing")
    assert len(calls) == 2
    assert calls[1][3] - calls[0][3] >= 1.0


def test_async_retry_after_is_honoured_on_503(stub: Stub) -> None:
    stub.answers["/api/authentication/login"] = [
        (503, {"retry-after": "1"}, {"error": "overloaded", "message": "busy"}),
        (200, {}, tokens(1)),
    ]
    stub.answers["/thing"] = [(200, {}, {"ok": True})]

    async def run() -> object:
        async with AsyncClient(stub.url, "apk_prod_x", "a@example.com", "password password") as client:
            return await client.get_json("/thing")

    assert asyncio.run(run()) == {"ok": True}
    logins = stub.calls_to("/api/authentication/login")
    assert len(logins) == 2
    assert logins[1][3] - logins[0][3] >= 1.0


def test_retries_are_bounded(stub: Stub) -> None:
    stub.answers["/api/authentication/login"] = [(200, {}, tokens(1))]
    stub.answers["/thing"] = [(503, {"retry-after": "0"}, {"error": "overloaded", "message": "busy"})]
    client = Client(
        stub.url, "apk_prod_x", "a@example.com", "password password",
        retry=RetryPolicy(max_retries=2, initial_backoff=0.01, max_delay=0.05),
    )
    with pytest.raises(assetpool.UnavailableError) as raised:
        client.get("/thing")
    assert raised.value.status == 503
    assert raised.value.code == "overloaded"
    assert len(stub.calls_to("/thing")) == 3


def test_retry_delays_are_jittered_within_bounds() -> None:
    policy = RetryPolicy(max_retries=3, initial_backoff=0.2, max_delay=30)
    delays = {policy.delay(0, 2.0) for _ in range(50)}
    assert all(2.0 <= delay <= 2.5 for delay in delays)
    assert len(delays) > 1
    assert all(30 <= policy.delay(0, 600) <= 37.5 for _ in range(20))


def test_redirects_are_not_followed(stub: Stub) -> None:
    stub.answers["/api/authentication/login"] = [(200, {}, tokens(1))]
    stub.answers["/thing"] = [(302, {"location": "http://elsewhere.example/"}, None)]
    client = Client(stub.url, "apk_prod_x", "a@example.com", "password password")
    with pytest.raises(assetpool.RedirectError) as raised:
        client.get("/thing")
    assert raised.value.status == 302
    assert "elsewhere" not in str(raised.value)


def test_typed_errors_carry_status_and_code(account: Account) -> None:
    wrong = Client(account.server.url, account.api_key, account.username, "not the password at all")
    with pytest.raises(assetpool.AuthenticationError) as raised:
        wrong.get("/v1/resource")
    assert (raised.value.status, raised.value.code) == (401, "invalid_credentials")
    client = client_of(account)
    with pytest.raises(assetpool.PermissionDeniedError) as denied:
        client.get("/admin/keys")
    assert (denied.value.status, denied.value.code) == (403, "forbidden")
    bad_key = Client(account.server.url, "apk_prod_" + "0" * 38, account.username, account.password)
    with pytest.raises(assetpool.AuthenticationError) as refused:
        bad_key.get("/v1/resource")
    assert refused.value.code == "invalid_api_key"


def test_no_secret_in_repr_str_or_errors(account: Account) -> None:
    client = client_of(account)
    token = client.access_token()
    wrong = Client(account.server.url, account.api_key, account.username, "not the password at all")
    try:
        wrong.get("/v1/resource")
    except assetpool.AssetpoolError as error:
        texts = [repr(error), str(error)]
    for text in [repr(client), str(client), *texts]:
        for secret in (account.api_key, account.password, "not the password at all", token):
            assert secret not in text


def test_bad_settings_are_config_errors(account: Account) -> None:
    with pytest.raises(assetpool.ConfigError):
        Client("ftp://example.com", "apk_prod_x", "a", "b")
    with pytest.raises(assetpool.ConfigError):
        Client("http://example.com?x=1", "apk_prod_x", "a", "b")
    with pytest.raises(assetpool.ConfigError):
        Client("http://example.com", "", "a", "b")
    with pytest.raises(assetpool.ConfigError):
        Client(account.server.url, account.api_key, "a", "b", environment="staging")
    client = client_of(account)
    for path in ["v1/resource", "@evil.example/v1", ".evil.example/v1", ":9090/v1", ""]:
        with pytest.raises(assetpool.ConfigError):
            client.get(path)


def test_unreachable_server_is_a_transport_error() -> None:
    client = Client("http://127.0.0.1:9", "apk_prod_x", "a@example.com", "password password")
    with pytest.raises(assetpool.TransportError) as raised:
        client.get("/v1/resource")
    assert raised.value.status is None
