import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import express from "express";
import type { Request } from "express";
import { SignJWT, decodeProtectedHeader, exportJWK, generateKeyPair } from "jose";
import { Client, VerifyError, createVerifier, tokenFromHeaders } from "../src/index.js";
import type { AccessClaims, Verifier } from "../src/index.js";
import { AssetpoolServer, PASSWORD, json, stubServer } from "./support.js";

function refusedWith(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof VerifyError, String(error));
    assert.equal(error.code, code);
    return true;
  };
}

/** A raw HTTP/1.1 GET with exactly these header lines (repeated ones included); status and headers. */
function rawGet(port: number, path: string, headerLines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write([`GET ${path} HTTP/1.1`, "host: 127.0.0.1", "connection: close", ...headerLines, "", ""].join("\r\n"));
    });
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
  });
}

describe("verification against the real server", () => {
  let server: AssetpoolServer;
  let scopedKey: string;
  let openKey: string;
  let scopedToken: string;
  let openToken: string;

  before(async () => {
    server = await AssetpoolServer.start();
    const scoped = await server.createKey(["--scope", "orders:read"]);
    scopedKey = scoped.key;
    // The same application, so that introspection with this key answers for both keys' tokens.
    openKey = (await server.createKey(["--application", scoped.application])).key;
    await server.createUser("carol@example.com");
    const login = (apiKey: string) =>
      new Client({ baseUrl: server.url, apiKey, username: "carol@example.com", password: PASSWORD }).accessToken();
    scopedToken = await login(scopedKey);
    openToken = await login(openKey);
  });
  after(async () => server?.stop());

  const verifier = (overrides: Partial<Parameters<typeof createVerifier>[0]> = {}): Verifier =>
    createVerifier({ issuer: server.url, environment: "production", ...overrides });

  test("a good token is accepted, with its claims", async () => {
    const claims = await verifier().verify(scopedToken);
    assert.equal(claims.email, "carol@example.com");
    assert.equal(claims.env, "production");
    assert.equal(claims.scope, "orders:read");
    const viaJwks = await createVerifier({ jwksUrl: `${server.url}/.well-known/jwks.json`, environment: "production" }).verify(openToken);
    assert.equal(viaJwks.scope, undefined, "an unrestricted token has no scope claim");
  });

  test("wrong audience, environment or issuer: invalid_token", async () => {
    await assert.rejects(verifier({ audience: "another-api" }).verify(scopedToken), refusedWith("invalid_token"));
    await assert.rejects(verifier({ environment: "staging" }).verify(scopedToken), refusedWith("invalid_token"));
    await assert.rejects(
      createVerifier({ issuer: "https://other.example", jwksUrl: `${server.url}/.well-known/jwks.json`, environment: "production" }).verify(scopedToken),
      refusedWith("invalid_token"),
    );
  });

  test("a token of another application: invalid_token when the verifier names its application", async () => {
    const own = (await verifier().verify(scopedToken)).app;
    const other = await new Client({
      baseUrl: server.url,
      apiKey: (await server.createKey([])).key,
      username: "carol@example.com",
      password: PASSWORD,
    }).accessToken();
    const named = verifier({ application: own });
    assert.equal((await named.verify(scopedToken)).app, own);
    await assert.rejects(named.verify(other), refusedWith("invalid_token"));
    // Without an application, any application's token passes (documented).
    assert.notEqual((await verifier().verify(other)).app, own);
  });

  test("a bad signature (same kid, another key): invalid_token", async () => {
    const { kid } = decodeProtectedHeader(scopedToken);
    const payload = JSON.parse(Buffer.from(scopedToken.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const forged = await new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", ...(kid ? { kid } : {}) }).sign(privateKey);
    await assert.rejects(verifier().verify(forged), refusedWith("invalid_token"));
    const [header, body, signature] = scopedToken.split(".");
    const flipped = `${header}.${body}.${signature!.startsWith("A") ? "B" : "A"}${signature!.slice(1)}`;
    await assert.rejects(verifier().verify(flipped), refusedWith("invalid_token"));
    const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt", kid })).toString("base64url")}.${body}.`;
    await assert.rejects(verifier().verify(none), refusedWith("invalid_token"));
    await assert.rejects(verifier().verify("not a jwt"), refusedWith("invalid_token"));
  });

  test("missing scope: insufficient_scope naming the requirement; unrestricted tokens meet any", async () => {
    await assert.rejects(verifier().verify(scopedToken, "orders:read orders:write"), (error: unknown) => {
      assert.ok(error instanceof VerifyError);
      assert.equal(error.code, "insufficient_scope");
      assert.equal(error.status, 403);
      assert.equal(error.wwwAuthenticate, 'Bearer realm="assetpool", error="insufficient_scope", scope="orders:read orders:write"');
      return true;
    });
    await assert.rejects(verifier({ scopes: ["orders:write"] }).verify(scopedToken), refusedWith("insufficient_scope"));
    assert.equal((await verifier().verify(openToken, ["orders:write"])).email, "carol@example.com");
    assert.throws(() => verifier({ scopes: "Orders" }), TypeError);
  });

  test("the JWKS unreachable: upstream_unavailable (fails closed)", async () => {
    const down = createVerifier({ jwksUrl: "http://127.0.0.1:9/.well-known/jwks.json", issuer: server.url, environment: "production", timeoutMs: 2000 });
    await assert.rejects(down.verify(scopedToken), (error: unknown) => {
      assert.ok(error instanceof VerifyError);
      assert.equal(error.code, "upstream_unavailable");
      assert.equal(error.status, 502);
      return true;
    });
  });

  test("introspection sees a revoked session", async () => {
    const client = new Client({ baseUrl: server.url, apiKey: openKey, username: "carol@example.com", password: PASSWORD });
    const token = await client.accessToken();
    const checking = verifier({ introspection: { apiKey: openKey, cacheTtlMs: 0 } });
    assert.equal((await checking.verify(token)).email, "carol@example.com");
    assert.ok(!JSON.stringify(checking).includes(openKey));
    await client.logout();
    await assert.rejects(checking.verify(token), refusedWith("token_revoked"));
    // Without introspection, the signature alone still passes until expiry.
    assert.equal((await verifier().verify(token)).email, "carol@example.com");
  });

  describe("Express middleware on a real Express app", () => {
    let app: ReturnType<typeof express>;
    let listening: ReturnType<ReturnType<typeof express>["listen"]>;
    let base: string;
    let port: number;

    before(async () => {
      const auth = createVerifier({ issuer: server.url, environment: "production", introspection: { apiKey: openKey, cacheTtlMs: 0 } });
      app = express();
      app.get("/orders", auth.requireAuth({ scopes: "orders:read" }), (req: Request, res) => {
        const claims = (req as Request & { auth: AccessClaims }).auth;
        res.json({ email: claims.email, scope: claims.scope ?? null, viaLocals: (res.locals.auth as AccessClaims).sub === claims.sub });
      });
      app.post("/orders", auth.requireAuth({ scopes: ["orders:read", "orders:write"] }), (_req, res) => {
        res.status(201).json({ created: true });
      });
      app.get("/public", (_req, res) => {
        res.json({ open: true });
      });
      await new Promise<void>((resolve) => {
        listening = app.listen(0, "127.0.0.1", () => resolve());
      });
      port = (listening.address() as AddressInfo).port;
      base = `http://127.0.0.1:${port}`;
    });
    after(async () => {
      listening.closeAllConnections();
      await new Promise((resolve) => listening.close(resolve));
    });

    test("a client with a good token gets through, claims in req.auth", async () => {
      const client = new Client({ baseUrl: server.url, apiKey: scopedKey, username: "carol@example.com", password: PASSWORD, trustedOrigins: [base] });
      assert.deepEqual(await client.json(`${base}/orders`), { email: "carol@example.com", scope: "orders:read", viaLocals: true });
      assert.deepEqual(await (await fetch(`${base}/public`)).json(), { open: true });
    });

    test("no token: 401 missing_token with the bare challenge", async () => {
      const response = await fetch(`${base}/orders`);
      assert.equal(response.status, 401);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="assetpool"');
      assert.equal(response.headers.get("cache-control"), "no-store");
      assert.deepEqual(await response.json(), { error: "missing_token", message: "an access token is required in x-api-token or Authorization: Bearer" });
    });

    test("a bad token: 401 invalid_token with the invalid_token challenge", async () => {
      const response = await fetch(`${base}/orders`, { headers: { authorization: "Bearer abc.def.ghi" } });
      assert.equal(response.status, 401);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="assetpool", error="invalid_token"');
      assert.equal(((await response.json()) as { error: string }).error, "invalid_token");
    });

    test("two different tokens, or a repeated header: 400 invalid_request", async () => {
      const response = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${scopedToken}`, "x-api-token": openToken } });
      assert.equal(response.status, 400);
      assert.equal(((await response.json()) as { error: string }).error, "invalid_request");
      const same = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${scopedToken}`, "x-api-token": scopedToken } });
      assert.equal(same.status, 200);
      const repeated = await rawGet(port, "/orders", [`x-api-token: ${scopedToken}`, `x-api-token: ${scopedToken}`]);
      assert.match(repeated, /^HTTP\/1\.1 400 /);
      const repeatedAuthorization = await rawGet(port, "/orders", [`authorization: Bearer ${scopedToken}`, `authorization: Bearer ${openToken}`]);
      assert.match(repeatedAuthorization, /^HTTP\/1\.1 400 /);
    });

    test("a missing scope: 403 insufficient_scope naming the whole requirement", async () => {
      const response = await fetch(`${base}/orders`, { method: "POST", headers: { authorization: `Bearer ${scopedToken}` } });
      assert.equal(response.status, 403);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="assetpool", error="insufficient_scope", scope="orders:read orders:write"');
      assert.equal(((await response.json()) as { error: string }).error, "insufficient_scope");
      const open = await fetch(`${base}/orders`, { method: "POST", headers: { authorization: `Bearer ${openToken}` } });
      assert.equal(open.status, 201, "an unrestricted token meets every requirement");
    });

    test("a revoked token (introspection): the client renews and retries once", async () => {
      const client = new Client({ baseUrl: server.url, apiKey: openKey, username: "carol@example.com", password: PASSWORD, trustedOrigins: [base] });
      const first = await client.accessToken();
      assert.equal(((await client.json(`${base}/orders`)) as { email: string }).email, "carol@example.com");
      const logout = await fetch(`${server.url}/api/authentication/logout`, { method: "POST", headers: { "x-api-key": openKey, authorization: `Bearer ${first}` } });
      assert.equal(logout.status, 204);
      const stale = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${first}` } });
      assert.equal(stale.status, 401);
      assert.equal(((await stale.json()) as { error: string }).error, "token_revoked");
      assert.equal(((await client.json(`${base}/orders`)) as { email: string }).email, "carol@example.com");
      assert.notEqual(await client.accessToken(), first);
      assert.equal(client.stats.logins, 2);
    });
  });
});

describe("verification of tokens signed by a key of the test's own", () => {
  let jwks: Awaited<ReturnType<typeof stubServer>>;
  let sign: (claims: Record<string, unknown>, header?: Record<string, unknown>) => Promise<string>;
  let verifier: Verifier;
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (overrides: Record<string, unknown> = {}) => ({
    iss: "https://auth.example.test",
    aud: "assetpool",
    sub: "usr_1",
    iat: now(),
    nbf: now(),
    exp: now() + 600,
    jti: "jti_1",
    sid: "ses_1",
    app: "app_1",
    env: "production",
    client_id: "app_1",
    email: "dave@example.com",
    ...overrides,
  });

  before(async () => {
    const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" };
    jwks = await stubServer((_request, response) => json(response, 200, { keys: [jwk] }));
    sign = (payload, header = {}) => new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "k1", ...header }).sign(privateKey);
    verifier = createVerifier({ jwksUrl: `${jwks.url}/.well-known/jwks.json`, issuer: "https://auth.example.test", environment: "production", leewaySeconds: 5 });
  });
  after(async () => jwks?.close());

  test("a well-formed token passes", async () => {
    assert.equal((await verifier.verify(await sign(claims()))).email, "dave@example.com");
    assert.equal((await verifier.verify(await sign(claims()), [])).sub, "usr_1");
  });

  test("expired (beyond the leeway): token_expired; within it: accepted", async () => {
    await assert.rejects(verifier.verify(await sign(claims({ iat: now() - 120, nbf: now() - 120, exp: now() - 60 }))), refusedWith("token_expired"));
    assert.ok(await verifier.verify(await sign(claims({ exp: now() - 1 }))));
  });

  test("not yet valid, issued in the future, wrong typ, wrong env, unknown kid: invalid_token", async () => {
    await assert.rejects(verifier.verify(await sign(claims({ nbf: now() + 120 }))), refusedWith("invalid_token"));
    await assert.rejects(verifier.verify(await sign(claims({ iat: now() + 120 }))), refusedWith("invalid_token"));
    await assert.rejects(verifier.verify(await sign(claims(), { typ: "JWT" })), refusedWith("invalid_token"));
    await assert.rejects(verifier.verify(await sign(claims({ env: "development" }))), refusedWith("invalid_token"));
    await assert.rejects(verifier.verify(await sign(claims(), { kid: "unknown" })), refusedWith("invalid_token"));
    const { exp: _exp, ...withoutExp } = claims();
    await assert.rejects(verifier.verify(await sign(withoutExp)), refusedWith("invalid_token"));
  });

  test("an HMAC token made with the public key: invalid_token", async () => {
    const publicJwk = JSON.stringify((((await (await fetch(`${jwks.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] }).keys[0]));
    const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "at+jwt", kid: "k1" })).toString("base64url");
    const body = Buffer.from(JSON.stringify(claims())).toString("base64url");
    const { createHmac } = await import("node:crypto");
    const mac = createHmac("sha256", publicJwk).update(`${header}.${body}`).digest("base64url");
    await assert.rejects(verifier.verify(`${header}.${body}.${mac}`), refusedWith("invalid_token"));
  });

  test("scopes: restricted to none meets no requirement", async () => {
    const none = await sign(claims({ scope: "" }));
    assert.ok(await verifier.verify(none));
    await assert.rejects(verifier.verify(none, "a"), refusedWith("insufficient_scope"));
    assert.ok(await verifier.verify(await sign(claims({ scope: "a b" })), "b a"));
  });

  test("the JWKS failing: the last keys keep serving, and the server is not hammered", async () => {
    const { keys } = (await (await fetch(`${jwks.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    let up = true;
    let fetches = 0;
    const flaky = await stubServer((_request, response) => {
      fetches += 1;
      if (up) json(response, 200, { keys });
      else json(response, 500, { error: "internal_error", message: "internal error" });
    });
    try {
      const checking = createVerifier({
        jwksUrl: `${flaky.url}/.well-known/jwks.json`,
        issuer: "https://auth.example.test",
        environment: "production",
        jwksMaxAgeMs: 0,
        jwksCooldownMs: 0,
      });
      assert.ok(await checking.verify(await sign(claims())));
      assert.equal(fetches, 1);
      up = false;
      for (let i = 0; i < 5; i += 1) {
        assert.equal((await checking.verify(await sign(claims()))).email, "dave@example.com");
      }
      assert.equal(fetches, 2, "one failed fetch, then a pause");
      const never = createVerifier({ jwksUrl: `${flaky.url}/.well-known/jwks.json`, issuer: "https://auth.example.test", environment: "production" });
      await assert.rejects(never.verify(await sign(claims())), refusedWith("upstream_unavailable"));
    } finally {
      await flaky.close();
    }
  });

  test("tokens are read from headers as the server reads them", () => {
    assert.throws(() => tokenFromHeaders(new Headers()), refusedWith("missing_token"));
    assert.equal(tokenFromHeaders(new Headers({ authorization: "Bearer abc" })), "abc");
    assert.equal(tokenFromHeaders({ "x-api-token": "abc" }), "abc");
    assert.throws(() => tokenFromHeaders({ authorization: "Bearer abc", "x-api-token": "other" }), refusedWith("invalid_request"));
    assert.throws(() => tokenFromHeaders({ "x-api-token": ["a", "a"] }), refusedWith("invalid_request"));
    assert.throws(() => tokenFromHeaders({ authorization: "Basic abc" }), refusedWith("missing_token"));
  });
});
