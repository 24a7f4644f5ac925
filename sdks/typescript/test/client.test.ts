import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import { AssetpoolError, Client, VerifyError, createVerifier, retryDelayMs } from "../src/index.js";
import { AssetpoolServer, PASSWORD, countingFetch, json, sleep, stubServer, tokens } from "./support.js";

interface Resource {
  user: { id: string; email: string };
  apiKey: { id: string; environment: string };
}

describe("client against the real server", () => {
  let server: AssetpoolServer;
  let apiKey: string;

  before(async () => {
    server = await AssetpoolServer.start();
    apiKey = (await server.createKey()).key;
    await server.createUser("alice@example.com");
    await server.createUser("mallory@example.com");
  });
  after(async () => server?.stop());

  const client = (counting: ReturnType<typeof countingFetch>, overrides: Partial<ConstructorParameters<typeof Client>[0]> = {}) =>
    new Client({
      baseUrl: server.url,
      apiKey,
      username: "alice@example.com",
      password: PASSWORD,
      fetch: counting.fetch,
      ...overrides,
    });

  test("logs in lazily, at the first request, and sends the API key and the token", async () => {
    const counting = countingFetch();
    const alice = client(counting, { environment: "production" });
    assert.equal(counting.calls.length, 0, "constructing the client sends nothing");
    const resource = await alice.json<Resource>("/v1/resource");
    assert.equal(resource.user.email, "alice@example.com");
    assert.equal(resource.apiKey.environment, "production");
    assert.deepEqual(
      counting.calls.map((call) => `${call.method} ${call.path} ${call.status}`),
      ["POST /api/authentication/login 200", "GET /v1/resource 200"],
    );
    await alice.json("/v1/resource");
    assert.deepEqual(alice.stats, { logins: 1, refreshes: 0 });
  });

  test("100 concurrent first calls log in exactly once", async () => {
    const counting = countingFetch();
    const alice = client(counting);
    const answers = await Promise.all(Array.from({ length: 100 }, () => alice.json<Resource>("/v1/resource")));
    assert.ok(answers.every((answer) => answer.user.email === "alice@example.com"));
    const logins = counting.calls.filter((call) => call.path === "/api/authentication/login");
    assert.equal(logins.length, 1, "one login for 100 concurrent first calls");
    assert.equal(counting.calls.filter((call) => call.path === "/v1/resource").length, 100);
    assert.deepEqual(alice.stats, { logins: 1, refreshes: 0 });
  });

  test("a failed login is one attempt for all concurrent callers, and a typed error", async () => {
    const counting = countingFetch();
    const wrong = "not-the-password-31";
    const mallory = client(counting, { username: "mallory@example.com", password: wrong });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => mallory.request("/v1/resource")));
    assert.equal(counting.calls.length, 1, "one login attempt");
    for (const result of results) {
      assert.equal(result.status, "rejected");
      const error = (result as PromiseRejectedResult).reason as unknown;
      assert.ok(error instanceof AssetpoolError);
      assert.equal(error.kind, "api");
      assert.equal(error.status, 401);
      assert.equal(error.code, "invalid_credentials");
      assert.ok(error.message.length > 0);
      assert.ok(!JSON.stringify(error).includes(wrong));
      assert.ok(!inspect(error).includes(wrong));
    }
  });

  test("a bad API key is refused with its code", async () => {
    const counting = countingFetch();
    const bad = client(counting, { apiKey: "apk_prod_00000000000000000000000000000000000000" });
    await assert.rejects(bad.request("/v1/resource"), (error: unknown) => {
      assert.ok(error instanceof AssetpoolError);
      assert.equal(error.status, 401);
      assert.equal(error.code, "invalid_api_key");
      return true;
    });
  });

  test("a revoked token is renewed and the request retried once", async () => {
    const counting = countingFetch();
    const alice = client(counting);
    await alice.json("/v1/resource");
    const token = await alice.accessToken();
    // End the session behind the client's back: its access and refresh tokens stop working.
    const logout = await fetch(`${server.url}/api/authentication/logout`, {
      method: "POST",
      headers: { "x-api-key": apiKey, authorization: `Bearer ${token}` },
    });
    assert.equal(logout.status, 204);
    counting.calls.length = 0;
    const resource = await alice.json<Resource>("/v1/resource");
    assert.equal(resource.user.email, "alice@example.com");
    assert.deepEqual(
      counting.calls.map((call) => `${call.method} ${call.path} ${call.status}`),
      [
        "GET /v1/resource 401",
        "POST /api/authentication/refresh 401",
        "POST /api/authentication/login 200",
        "GET /v1/resource 200",
      ],
    );
    assert.deepEqual(alice.stats, { logins: 2, refreshes: 0 });
  });

  test("no secret in String, JSON or inspect of the client", async () => {
    const alice = client(countingFetch());
    await alice.json("/v1/resource");
    const token = await alice.accessToken();
    for (const shown of [String(alice), `${alice}`, JSON.stringify(alice), inspect(alice), inspect(alice, { showHidden: true, depth: 10 })]) {
      assert.ok(shown.includes("alice@example.com"), shown);
      for (const secret of [apiKey, PASSWORD, token]) {
        assert.ok(!shown.includes(secret), `a secret appears in ${shown}`);
      }
    }
    assert.deepEqual(Object.keys(alice), []);
  });

  test("requests stay on the server's origin", async () => {
    const counting = countingFetch();
    const alice = client(counting);
    for (const bad of ["v1/resource", "@evil.example/v1", "http://evil.example/v1/resource", ""]) {
      await assert.rejects(alice.request(bad), (error: unknown) => error instanceof AssetpoolError && error.kind === "config", bad);
    }
    assert.equal(counting.calls.length, 0);
    // An absolute URL on the server's origin is fine.
    assert.equal((await alice.json<Resource>(`${server.url}/v1/resource`)).user.email, "alice@example.com");
  });

  test("configuration mistakes are refused at construction", () => {
    const base = { baseUrl: server.url, apiKey, username: "alice@example.com", password: PASSWORD };
    for (const bad of [
      { ...base, baseUrl: "ftp://example.com" },
      { ...base, baseUrl: "http://example.com/?x=1" },
      { ...base, apiKey: "" },
      { ...base, password: "" },
      { ...base, environment: "staging" as const },
    ]) {
      assert.throws(() => new Client(bad), (error: unknown) => {
        assert.ok(error instanceof AssetpoolError);
        assert.equal(error.kind, "config");
        assert.ok(!error.message.includes(apiKey));
        return true;
      });
    }
  });

  test("fetch returns refusals as responses; request throws them", async () => {
    const alice = client(countingFetch());
    const response = await alice.fetch("/no/such/route");
    assert.equal(response.status, 404);
    await assert.rejects(alice.request("/no/such/route"), (error: unknown) => error instanceof AssetpoolError && error.status === 404);
  });
});

describe("renewal across a short token TTL", () => {
  let server: AssetpoolServer;
  let apiKey: string;

  before(async () => {
    server = await AssetpoolServer.start({ tokenTtl: 2 });
    apiKey = (await server.createKey()).key;
    await server.createUser("bob@example.com");
  });
  after(async () => server?.stop());

  test("the token is renewed with the refresh token before it expires", async () => {
    const counting = countingFetch();
    const bob = new Client({ baseUrl: server.url, apiKey, username: "bob@example.com", password: PASSWORD, fetch: counting.fetch });
    await bob.json("/v1/resource");
    const first = await bob.accessToken();
    await sleep(2200);
    await bob.json("/v1/resource");
    // Meanwhile the first token expired: a backend refuses it.
    const verifier = createVerifier({ issuer: server.url, environment: "production", leewaySeconds: 0 });
    await assert.rejects(verifier.verify(first), (error: unknown) => error instanceof VerifyError && error.code === "token_expired");
    assert.equal((await verifier.verify(await bob.accessToken())).email, "bob@example.com");
    assert.deepEqual(
      counting.calls.map((call) => `${call.method} ${call.path} ${call.status}`),
      [
        "POST /api/authentication/login 200",
        "GET /v1/resource 200",
        "POST /api/authentication/refresh 200",
        "GET /v1/resource 200",
      ],
    );
    assert.deepEqual(bob.stats, { logins: 1, refreshes: 1 });
  });

  test("the password is the fallback when the refresh token no longer works", async () => {
    const counting = countingFetch();
    const bob = new Client({ baseUrl: server.url, apiKey, username: "bob@example.com", password: PASSWORD, fetch: counting.fetch });
    await bob.json("/v1/resource");
    // Disabling the user revokes its sessions, refresh tokens included.
    await server.cli(["users", "disable", "bob@example.com"]);
    await server.cli(["users", "enable", "bob@example.com"]);
    await sleep(2200);
    await bob.json("/v1/resource");
    assert.deepEqual(
      counting.calls.map((call) => `${call.method} ${call.path} ${call.status}`),
      [
        "POST /api/authentication/login 200",
        "GET /v1/resource 200",
        "POST /api/authentication/refresh 401",
        "POST /api/authentication/login 200",
        "GET /v1/resource 200",
      ],
    );
  });
});

describe("retries and refusals (a local server of the test's own)", () => {
  test("503 with Retry-After is retried after at least that long", async () => {
    let busy = 0;
    const stub = await stubServer((request, response) => {
      if (request.url === "/api/authentication/login") return json(response, 200, tokens(1));
      busy += 1;
      if (busy === 1) {
        return json(response, 503, { error: "overloaded", message: "the server is busy; retry later" }, { "retry-after": "1" });
      }
      return json(response, 200, { ok: true });
    });
    try {
      const client = new Client({ baseUrl: stub.url, apiKey: "apk_prod_x", username: "a@example.com", password: "p", retry: { initialBackoffMs: 10 } });
      const started = performance.now();
      assert.deepEqual(await client.json("/busy"), { ok: true });
      const elapsed = performance.now() - started;
      assert.equal(busy, 2);
      assert.ok(elapsed >= 1000, `retried after ${elapsed} ms, before the Retry-After of 1 s`);
    } finally {
      await stub.close();
    }
  });

  test("503 retries are bounded, and the login is retried too", async () => {
    let logins = 0;
    let attempts = 0;
    const stub = await stubServer((request, response) => {
      if (request.url === "/api/authentication/login") {
        logins += 1;
        if (logins === 1) return json(response, 503, { error: "overloaded", message: "busy" }, { "retry-after": "0" });
        return json(response, 200, tokens(1));
      }
      attempts += 1;
      return json(response, 503, { error: "storage_unavailable", message: "storage is unavailable; retry later" }, { "retry-after": "0" });
    });
    try {
      const client = new Client({
        baseUrl: stub.url,
        apiKey: "apk_prod_x",
        username: "a@example.com",
        password: "p",
        retry: { maxRetries: 2, initialBackoffMs: 5 },
      });
      await assert.rejects(client.request("/always-busy"), (error: unknown) => {
        assert.ok(error instanceof AssetpoolError);
        assert.equal(error.status, 503);
        assert.equal(error.code, "storage_unavailable");
        assert.equal(error.retryAfter, 0);
        return true;
      });
      assert.equal(logins, 2);
      assert.equal(attempts, 3, "the first attempt and two retries");
    } finally {
      await stub.close();
    }
  });

  test("a token refused twice is renewed and retried exactly once", async () => {
    const seen: string[] = [];
    let issued = 0;
    const stub = await stubServer((request, response) => {
      seen.push(`${request.method} ${request.url} ${request.headers.authorization ?? ""}`);
      if (request.url === "/api/authentication/login" || request.url === "/api/authentication/refresh") {
        issued += 1;
        return json(response, 200, tokens(issued));
      }
      return json(response, 401, { error: "token_revoked", message: "the access token has been revoked" }, { "www-authenticate": 'Bearer realm="assetpool", error="invalid_token"' });
    });
    try {
      const client = new Client({ baseUrl: stub.url, apiKey: "apk_prod_x", username: "a@example.com", password: "p" });
      await assert.rejects(client.request("/x", { method: "POST", body: "payload" }), (error: unknown) => error instanceof AssetpoolError && error.code === "token_revoked");
      assert.deepEqual(seen, [
        "POST /api/authentication/login ",
        "POST /x Bearer at-1",
        "POST /api/authentication/refresh ",
        "POST /x Bearer at-2",
      ]);
    } finally {
      await stub.close();
    }
  });

  test("redirects are not followed: credentials stay on their origin", async () => {
    let elsewhereHits = 0;
    const elsewhere = await stubServer((_request, response) => {
      elsewhereHits += 1;
      json(response, 200, tokens(9));
    });
    const stub = await stubServer((request, response) => {
      response.writeHead(307, { location: `${elsewhere.url}${request.url ?? "/"}` });
      response.end();
    });
    try {
      const client = new Client({ baseUrl: stub.url, apiKey: "apk_prod_x", username: "a@example.com", password: "p" });
      await assert.rejects(client.request("/x"), (error: unknown) => error instanceof AssetpoolError && error.kind === "redirect" && error.status === 307);
      assert.equal(elsewhereHits, 0);
    } finally {
      await stub.close();
      await elsewhere.close();
    }
  });

  test("a server that does not answer in time: a transport error of code timeout", async () => {
    const stub = await stubServer(() => {
      // Never answers.
    });
    try {
      const client = new Client({ baseUrl: stub.url, apiKey: "apk_prod_x", username: "a@example.com", password: "p", timeoutMs: 200 });
      await assert.rejects(client.request("/x"), (error: unknown) => {
        assert.ok(error instanceof AssetpoolError);
        assert.equal(error.kind, "transport");
        assert.equal(error.code, "timeout");
        assert.equal(error.status, 0);
        return true;
      });
    } finally {
      await stub.close();
    }
  });

  test("the retry delay honours Retry-After, adds bounded jitter and is capped", () => {
    const policy = { initialBackoffMs: 200, maxDelayMs: 30_000, jitter: 0.2 };
    assert.equal(retryDelayMs(policy, 0, undefined, 0), 200);
    assert.equal(retryDelayMs(policy, 1, undefined, 0), 400);
    assert.equal(retryDelayMs(policy, 0, 2, 0), 2000);
    assert.equal(retryDelayMs(policy, 0, 2, 0.999999), 2000 + 2000 * 0.2 * 0.999999);
    assert.equal(retryDelayMs(policy, 0, 600, 0.5), 30_000);
    for (let i = 0; i < 100; i += 1) {
      const delay = retryDelayMs(policy, 0, 1);
      assert.ok(delay >= 1000 && delay <= 1200, String(delay));
    }
  });
});
