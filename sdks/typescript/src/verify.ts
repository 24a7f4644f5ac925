/**
 * Offline verification of assetpool access tokens for Node backends, and an
 * Express (or plain `node:http`) middleware answering the contract's refusals.
 */

import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, jwtVerify } from "jose";
import type { FetchImplementation, JWTPayload, JWTVerifyGetKey } from "jose";
import type { Environment } from "./client.js";

/** Longest token looked at, in bytes (the server's own limit). */
const MAX_TOKEN_BYTES = 4096;
/** Most introspection answers kept in the cache. */
const INTROSPECTION_CACHE_CAPACITY = 10_000;
/** Pause after a failed JWKS fetch before the next attempt. */
const RETRY_AFTER_FAILURE_MS = 5_000;
const SCOPE_PATTERN = /^[a-z0-9_.:-]{1,64}$/;
const JWKS_PATH = "/.well-known/jwks.json";
const INTROSPECT_PATH = "/oauth/introspect";
const REALM = 'Bearer realm="assetpool"';
const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** The claims of an access token that passed verification (RFC 9068 profile). */
export interface AccessClaims extends JWTPayload {
  iss: string;
  aud: string;
  /** User id. */
  sub: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  /** Session id. */
  sid: string;
  /** Application of the API key the user logged in with. */
  app: string;
  env: Environment;
  client_id?: string;
  /** The user's email address. */
  email: string;
  /** The API key the session was opened through. */
  key_id?: string;
  /**
   * RFC 9068 `scope`, space-separated (`""`: restricted to none). Absent when
   * nothing restricted the login: such a token meets every requirement.
   */
  scope?: string;
}

/** The contract's refusal codes a verifier answers with. */
export type VerifyErrorCode =
  | "missing_token"
  | "invalid_request"
  | "invalid_token"
  | "token_expired"
  | "token_revoked"
  | "insufficient_scope"
  | "upstream_unavailable";

const STATUS: Record<VerifyErrorCode, number> = {
  missing_token: 401,
  invalid_request: 400,
  invalid_token: 401,
  token_expired: 401,
  token_revoked: 401,
  insufficient_scope: 403,
  upstream_unavailable: 502,
};

/** The server's messages for these codes (never a submitted value). */
const MESSAGE: Record<VerifyErrorCode, string> = {
  missing_token: "an access token is required in x-api-token or Authorization: Bearer",
  invalid_request: "the request is malformed",
  invalid_token: "the access token is not valid",
  token_expired: "the access token has expired",
  token_revoked: "the access token has been revoked",
  insufficient_scope: "the token does not carry the scopes this request needs",
  upstream_unavailable: "the upstream service is unavailable",
};

/** An HTTP answer: status, headers and the JSON body text. */
export interface Refusal {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Why a token was not accepted. `code` and `status` are the contract's;
 * {@link VerifyError.toResponse} gives the answer the server itself would send.
 * For `upstream_unavailable` (the JWKS or introspection could not be had)
 * `detail` says why; it is not part of the answer.
 */
export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  readonly status: number;
  /** For `insufficient_scope`: the whole requirement (empty when it was not a valid set of scopes). */
  readonly requiredScopes: readonly string[];
  readonly detail: string | undefined;

  constructor(code: VerifyErrorCode, options: { requiredScopes?: readonly string[]; detail?: string; cause?: unknown } = {}) {
    super(MESSAGE[code], options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "VerifyError";
    this.code = code;
    this.status = STATUS[code];
    this.requiredScopes = options.requiredScopes ?? [];
    this.detail = options.detail;
  }

  /** The `WWW-Authenticate` challenge of this refusal (RFC 6750 section 3.1), if it has one. */
  get wwwAuthenticate(): string | undefined {
    switch (this.code) {
      case "missing_token":
        return REALM;
      case "invalid_token":
      case "token_expired":
      case "token_revoked":
        return `${REALM}, error="invalid_token"`;
      case "insufficient_scope":
        // Scopes are of `a-z 0-9 _ . : -`: a valid quoted string.
        return this.requiredScopes.length === 0
          ? `${REALM}, error="insufficient_scope"`
          : `${REALM}, error="insufficient_scope", scope="${this.requiredScopes.join(" ")}"`;
      default:
        return undefined;
    }
  }

  /**
   * The refusal as the server answers it: the contract's status, the
   * `{"error","message"}` body, `WWW-Authenticate` and `Cache-Control: no-store`.
   */
  toResponse(): Refusal {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "cache-control": "no-store",
    };
    const challenge = this.wwwAuthenticate;
    if (challenge !== undefined) headers["www-authenticate"] = challenge;
    return { status: this.status, headers, body: JSON.stringify({ error: this.code, message: this.message }) };
  }
}

/** Options of {@link createVerifier}. Give `jwksUrl` or `issuer` (or both). */
export interface VerifierOptions {
  /** The server's JWKS (default: the issuer followed by `/.well-known/jwks.json`). */
  jwksUrl?: string | URL;
  /**
   * The issuer (`iss`) required of tokens: the server's configured issuer URL.
   * Default: the JWKS URL without `/.well-known/jwks.json`, i.e. the server's
   * base URL, which is what a server records as its issuer unless configured otherwise.
   */
  issuer?: string;
  /** The audience (`aud`) required of tokens. Default `assetpool`. */
  audience?: string;
  /** The environment (`env`) required of tokens: that of the issuing server. */
  environment: Environment;
  /**
   * The application (`app` claim, an `app_…` id) whose tokens this backend
   * accepts. Set it unless the backend serves every application of the server:
   * all of them share the issuer and the audience, so without it a user of
   * another application (whose key may ship inside a client) is accepted,
   * where the server itself refuses them.
   */
  application?: string;
  /** Scopes every token must carry (space-separated or an array). Default: none. */
  scopes?: string | readonly string[];
  /** Clock difference tolerated on `exp`, `nbf` and `iat`, in seconds. Default 5. */
  leewaySeconds?: number;
  /** How long fetched keys are used before the JWKS is fetched again, in ms. Default 5 min. */
  jwksMaxAgeMs?: number;
  /** Least time between two fetches of the JWKS, in ms (unknown `kid`s). Default 30 s. */
  jwksCooldownMs?: number;
  /** Time limit of requests to the server, in ms. Default 10 s. */
  timeoutMs?: number;
  /**
   * Also ask the server (RFC 7662 `POST /oauth/introspect`, authenticated by
   * `apiKey`, which must belong to the tokens' application) whether each
   * token's session is still live, caching answers `cacheTtlMs` (default 5 s).
   * Off by default: without it, a revoked token is accepted until it expires.
   * Fails closed: when the server cannot be asked, 502 `upstream_unavailable`.
   */
  introspection?: { apiKey: string; cacheTtlMs?: number; url?: string | URL };
  /** The `fetch` to reach the server with (default: the global one). Redirects are never followed. */
  fetch?: typeof globalThis.fetch;
}

/** Options of {@link Verifier.requireAuth}. */
export interface RequireAuthOptions {
  /** Scopes the route needs in addition to the verifier's own (all of them). */
  scopes?: string | readonly string[];
}

/** Request headers as Node (`req.headers`, `req.headersDistinct`) or `fetch` (`Headers`) hold them. */
export type HeadersLike =
  | Headers
  | Record<string, string | readonly string[] | undefined>;

/** The part of a Node / Express request the middleware reads and writes. */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  headersDistinct?: Record<string, string[] | undefined>;
  /** Set by {@link Verifier.requireAuth}: the verified claims. */
  auth?: AccessClaims;
}

/** The part of a Node / Express response the middleware uses. */
export interface ResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body?: string): unknown;
  headersSent?: boolean;
  locals?: Record<string, unknown>;
}

/** A Connect / Express middleware. */
export type Middleware = (request: RequestLike, response: ResponseLike, next: (error?: unknown) => void) => void;

/** Parses a set of scopes, space-separated or as an array; `undefined` if one is malformed. */
export function parseScopes(scopes: string | readonly string[] | undefined): string[] | undefined {
  if (scopes === undefined) return [];
  const list = typeof scopes === "string" ? scopes.split(" ").filter((scope) => scope !== "") : [...scopes];
  if (!list.every((scope) => typeof scope === "string" && SCOPE_PATTERN.test(scope))) return undefined;
  return [...new Set(list)];
}

function requireScopes(scopes: string | readonly string[] | undefined): string[] {
  const parsed = parseScopes(scopes);
  if (parsed === undefined) {
    throw new TypeError("scopes must be 1 to 64 characters of a-z 0-9 _ . : - each");
  }
  return parsed;
}

/** The token's scopes; `undefined` when unrestricted (no `scope` claim). */
export function scopesOf(claims: AccessClaims): string[] | undefined {
  if (claims.scope === undefined || claims.scope === null) return undefined;
  return String(claims.scope).split(" ").filter((scope) => scope !== "");
}

/** Whether the token has every scope of `required` (always, when it is unrestricted). */
export function hasScopes(claims: AccessClaims, required: readonly string[]): boolean {
  const granted = scopesOf(claims);
  return granted === undefined || required.every((scope) => granted.includes(scope));
}

function values(headers: HeadersLike, name: string): string[] {
  if (typeof Headers !== "undefined" && headers instanceof Headers) {
    // A fetch `Headers` joins repeated values with ", ".
    const value = headers.get(name);
    return value === null ? [] : [value];
  }
  const record = headers as Record<string, string | readonly string[] | undefined>;
  const value = record[name] ?? record[Object.keys(record).find((key) => key.toLowerCase() === name) ?? ""];
  if (value === undefined) return [];
  return typeof value === "string" ? [value] : [...value];
}

/**
 * Reads a request's token as the server does: `x-api-token` or
 * `Authorization: Bearer`; each at most once, and the same token if both are
 * present (`invalid_request` otherwise); `missing_token` when neither is.
 * For Node requests, pass `req.headersDistinct` so that repeated headers are seen.
 */
export function tokenFromHeaders(headers: HeadersLike): string {
  const single = (name: string): string | undefined => {
    const found = values(headers, name);
    if (found.length > 1) throw new VerifyError("invalid_request");
    return found[0];
  };
  const headerToken = single("x-api-token")?.trim();
  const authorization = single("authorization");
  let bearer: string | undefined;
  if (authorization !== undefined) {
    const space = authorization.indexOf(" ");
    if (space > 0 && authorization.slice(0, space).toLowerCase() === "bearer") {
      bearer = authorization.slice(space + 1).trim();
    }
  }
  if (headerToken !== undefined && bearer !== undefined && headerToken !== bearer) {
    throw new VerifyError("invalid_request");
  }
  const token = headerToken ?? bearer;
  if (token === undefined || token === "") throw new VerifyError("missing_token");
  return token;
}

function unavailable(what: string, cause: unknown): VerifyError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new VerifyError("upstream_unavailable", { detail: `${what}: ${reason}`, cause });
}

/** Fetches without following redirects; a 3xx is a failure. */
function noRedirectFetch(fetchImpl: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await fetchImpl(input, { ...init, redirect: "manual" });
    if ((response.status >= 300 && response.status < 400) || response.type === "opaqueredirect") {
      await response.body?.cancel();
      throw new Error(`the server answered HTTP status ${response.status}, a redirect, which is not followed`);
    }
    return response;
  };
}

/**
 * Verifies assetpool access tokens against the server's JWKS: `alg` EdDSA,
 * `typ` `at+jwt`, a `kid` of the JWKS, the signature, `exp` and `nbf` (with
 * the leeway), `iat` not in the future, `iss`, `aud`, `env`, the required
 * scopes; then, if configured, introspection. Keys are fetched at the first
 * token and cached.
 */
export class Verifier {
  readonly #issuer: string;
  readonly #audience: string;
  readonly #environment: Environment;
  readonly #application: string | undefined;
  readonly #scopes: readonly string[];
  readonly #leeway: number;
  readonly #keys: JWTVerifyGetKey;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;
  readonly #introspection: { url: string; apiKey: string; ttl: number } | undefined;
  readonly #introspected = new Map<string, { active: boolean; at: number }>();

  constructor(options: VerifierOptions) {
    if (options.jwksUrl === undefined && options.issuer === undefined) {
      throw new TypeError("createVerifier needs jwksUrl or issuer");
    }
    if (!["development", "staging", "production"].includes(options.environment)) {
      throw new TypeError("environment must be development, staging or production");
    }
    const jwksUrl = new URL(options.jwksUrl ?? `${String(options.issuer).replace(/\/+$/, "")}${JWKS_PATH}`);
    const issuer = options.issuer ?? serverUrl(jwksUrl, "");
    this.#issuer = issuer;
    this.#audience = options.audience ?? "assetpool";
    this.#environment = options.environment;
    this.#application = options.application;
    this.#scopes = requireScopes(options.scopes);
    this.#leeway = options.leewaySeconds ?? 5;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#fetch = noRedirectFetch(options.fetch ?? globalThis.fetch);
    const jwksFetch: FetchImplementation = (url, init) => this.#fetch(url, init);
    const remote = createRemoteJWKSet(jwksUrl, {
      timeoutDuration: this.#timeoutMs,
      cacheMaxAge: options.jwksMaxAgeMs ?? 300_000,
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      [customFetch]: jwksFetch,
    });
    // After a failed fetch, the last keys fetched keep serving (a stale copy of
    // a key still verifies) and no fetch is tried for a while, so that an
    // unreachable server is not hammered by every request.
    let failedAt: number | undefined;
    const stale: JWTVerifyGetKey = (header, token) => {
      const last = remote.jwks();
      if (last === undefined) throw unavailable("JWKS", "the last fetch failed; retrying shortly");
      return createLocalJWKSet(last)(header, token);
    };
    this.#keys = async (header, token) => {
      if (failedAt !== undefined && Date.now() - failedAt < RETRY_AFTER_FAILURE_MS) return stale(header, token);
      try {
        const key = await remote(header, token);
        failedAt = undefined;
        return key;
      } catch (error) {
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
          throw error;
        }
        failedAt = Date.now();
        if (remote.jwks() === undefined) throw unavailable("JWKS", error);
        return stale(header, token);
      }
    };
    const introspection = options.introspection;
    if (introspection !== undefined) {
      if (typeof introspection.apiKey !== "string" || introspection.apiKey === "") {
        throw new TypeError("introspection needs an API key");
      }
      const url = introspection.url ?? serverUrl(jwksUrl, INTROSPECT_PATH);
      this.#introspection = { url: String(url), apiKey: introspection.apiKey, ttl: introspection.cacheTtlMs ?? 5_000 };
    }
  }

  /** The issuer required of tokens. */
  get issuer(): string {
    return this.#issuer;
  }

  /**
   * Verifies one token (and the verifier's required scopes plus `scopes`);
   * resolves to its claims or rejects with a {@link VerifyError}.
   */
  async verify(token: string, scopes?: string | readonly string[]): Promise<AccessClaims> {
    const required = [...new Set([...this.#scopes, ...requireScopes(scopes)])];
    if (typeof token !== "string" || token === "" || Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
      throw new VerifyError("invalid_token");
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keys, {
        algorithms: ["EdDSA"],
        typ: "at+jwt",
        issuer: this.#issuer,
        audience: this.#audience,
        clockTolerance: this.#leeway,
        requiredClaims: ["exp", "iat", "nbf", "iss", "aud", "sub"],
      }));
    } catch (error) {
      if (error instanceof VerifyError) throw error;
      if (error instanceof errors.JWTExpired && error.claim === "exp") throw new VerifyError("token_expired");
      throw new VerifyError("invalid_token", { cause: error });
    }
    const claims = payload as AccessClaims;
    const now = Math.floor(Date.now() / 1000);
    if (
      claims.env !== this.#environment ||
      (this.#application !== undefined && claims.app !== this.#application) ||
      typeof claims.iat !== "number" ||
      claims.iat > now + this.#leeway ||
      typeof claims.sub !== "string" ||
      (claims.scope !== undefined && typeof claims.scope !== "string")
    ) {
      throw new VerifyError("invalid_token");
    }
    if (!hasScopes(claims, required)) {
      throw new VerifyError("insufficient_scope", { requiredScopes: required });
    }
    if (this.#introspection !== undefined) await this.#introspect(token);
    return claims;
  }

  /** Verifies the token of a request's headers (see {@link tokenFromHeaders}). */
  async verifyHeaders(headers: HeadersLike, scopes?: string | readonly string[]): Promise<AccessClaims> {
    return this.verify(tokenFromHeaders(headers), scopes);
  }

  /**
   * An Express (or Connect, or plain `node:http`) middleware: a request whose
   * token passes (with every scope of the verifier and of `options.scopes`)
   * goes on with its claims in `req.auth` (and `res.locals.auth`); any other is
   * answered at once as the server would (status, `{"error","message"}` body,
   * `WWW-Authenticate`, `Cache-Control: no-store`). Malformed scopes throw here.
   */
  requireAuth(options: RequireAuthOptions = {}): Middleware {
    const scopes = requireScopes(options.scopes);
    return (request, response, next) => {
      let headers: HeadersLike;
      try {
        headers = request.headersDistinct ?? request.headers;
      } catch (error) {
        next(error);
        return;
      }
      this.verifyHeaders(headers, scopes).then(
        (claims) => {
          request.auth = claims;
          if (response.locals !== undefined) response.locals.auth = claims;
          next();
        },
        (error: unknown) => {
          if (!(error instanceof VerifyError)) {
            next(error);
            return;
          }
          if (response.headersSent) {
            next(error);
            return;
          }
          const refusal = error.toResponse();
          response.statusCode = refusal.status;
          for (const [name, value] of Object.entries(refusal.headers)) response.setHeader(name, value);
          response.end(refusal.body);
        },
      );
    };
  }

  toString(): string {
    return `Verifier(${this.#issuer}, ${this.#environment})`;
  }

  toJSON(): Record<string, unknown> {
    return { issuer: this.#issuer, audience: this.#audience, environment: this.#environment, introspection: this.#introspection !== undefined };
  }

  [INSPECT](): string {
    return `Verifier { issuer: '${this.#issuer}', environment: '${this.#environment}', introspection: ${this.#introspection !== undefined} }`;
  }

  async #introspect(token: string): Promise<void> {
    const introspection = this.#introspection;
    if (introspection === undefined) return;
    const now = Date.now();
    const cached = this.#introspected.get(token);
    let active: boolean;
    if (cached !== undefined && now - cached.at < introspection.ttl) {
      active = cached.active;
    } else {
      active = await this.#ask(introspection, token);
      if (this.#introspected.size >= INTROSPECTION_CACHE_CAPACITY) {
        for (const [key, entry] of this.#introspected) {
          if (now - entry.at >= introspection.ttl) this.#introspected.delete(key);
        }
        if (this.#introspected.size >= INTROSPECTION_CACHE_CAPACITY) this.#introspected.clear();
      }
      this.#introspected.set(token, { active, at: now });
    }
    if (!active) throw new VerifyError("token_revoked");
  }

  async #ask(introspection: { url: string; apiKey: string }, token: string): Promise<boolean> {
    let response: Response;
    try {
      response = await this.#fetch(introspection.url, {
        method: "POST",
        headers: { "x-api-key": introspection.apiKey, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token }).toString(),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw unavailable("introspection", error);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw unavailable("introspection", `HTTP status ${response.status}`);
    }
    let answer: unknown;
    try {
      answer = await response.json();
    } catch (error) {
      throw unavailable("introspection", error);
    }
    if (answer === null || typeof answer !== "object" || typeof (answer as { active?: unknown }).active !== "boolean") {
      throw unavailable("introspection", "not an introspection answer");
    }
    return (answer as { active: boolean }).active;
  }
}

/** `path` on the server whose JWKS is `jwksUrl` (keeping a base path before `/.well-known/jwks.json`). */
function serverUrl(jwksUrl: URL, path: string): string {
  const base = jwksUrl.pathname.endsWith(JWKS_PATH) ? jwksUrl.pathname.slice(0, -JWKS_PATH.length) : "";
  return `${jwksUrl.origin}${base}${path}`;
}

/** A {@link Verifier} for the tokens of one assetpool server. Nothing is fetched until the first token. */
export function createVerifier(options: VerifierOptions): Verifier {
  return new Verifier(options);
}
