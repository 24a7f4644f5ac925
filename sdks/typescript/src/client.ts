/**
 * The {@link Client}: logs in lazily, keeps a fresh access token, and adds the
 * API key and the token to every request it sends.
 */

import { AssetpoolError, ErrorCodes } from "./errors.js";

/** The server's environments, as the contract names them. */
export type Environment = "development" | "staging" | "production";

const KEY_PREFIX: Record<Environment, string> = {
  development: "apk_dev_",
  staging: "apk_stg_",
  production: "apk_prod_",
};

const LOGIN_PATH = "/api/authentication/login";
const REFRESH_PATH = "/api/authentication/refresh";
const LOGOUT_PATH = "/api/authentication/logout";

/** Symbol Node's `util.inspect` calls (without importing `node:util`). */
const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/**
 * When a token is renewed: `margin` before it expires, where the margin is
 * `fraction` of its lifetime but at most `maxMarginMs` (defaults: 10 %, at
 * most 30 s: a one-day token is renewed 30 s early, a 30-second one 3 s early).
 */
export interface RenewalPolicy {
  fraction?: number;
  maxMarginMs?: number;
}

/**
 * Retries of requests refused with 503 `overloaded` or `storage_unavailable`.
 * Retry number `n` (0 for the first) waits `max(initialBackoffMs * 2^n,
 * Retry-After)` plus a random share of up to `jitter` of that (default 0.2),
 * never more than `maxDelayMs`; so never less than the server's `Retry-After`
 * unless that exceeds `maxDelayMs`.
 */
export interface RetryPolicy {
  /** Retries after the first attempt (0 disables retrying). Default 3. */
  maxRetries?: number;
  /** Backoff before the first retry, doubled for each further one. Default 200 ms. */
  initialBackoffMs?: number;
  /** Longest wait before a retry, also when `Retry-After` asks for more. Default 30 s. */
  maxDelayMs?: number;
  /** Share of the wait added at random, 0 to 1. Default 0.2. */
  jitter?: number;
}

/** Options of a {@link Client}. */
export interface ClientOptions {
  /** The assetpool server, e.g. `https://auth.example.com` (a path prefix is allowed). */
  baseUrl: string;
  /** The API key (`apk_<env>_...`). */
  apiKey: string;
  /** The user's email address. */
  username: string;
  /** The user's password. */
  password: string;
  /** When given, the API key must belong to this environment (checked at construction). */
  environment?: Environment;
  /**
   * Scopes to ask for at login (`"orders:read orders:write"` or an array): the
   * token then carries at most these. Default: none asked, the token carries
   * whatever the API key and the user allow.
   */
  scope?: string | readonly string[];
  /** The `fetch` to send with (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /**
   * Other origins (`https://api.example.com`) that may receive the API key and
   * the token: backends that verify assetpool tokens themselves. Logins and
   * renewals always go to `baseUrl`.
   */
  trustedOrigins?: readonly string[];
  /** Time limit of one HTTP request, in milliseconds. Default 30 s. */
  timeoutMs?: number;
  renewal?: RenewalPolicy;
  retry?: RetryPolicy;
}

/** The server's answer to a login or a refresh. */
export interface TokenResponse {
  accessToken: string;
  expiresIn: number;
  tokenType: string;
  refreshToken: string;
  /** The granted scopes, when the login was restricted. */
  scope?: string;
}

/** How many times the client obtained tokens, by which grant. */
export interface ClientStats {
  logins: number;
  refreshes: number;
}

interface AccessToken {
  value: string;
  renewAt: number;
  scope: string | undefined;
}

interface ResolvedRetry {
  maxRetries: number;
  initialBackoffMs: number;
  maxDelayMs: number;
  jitter: number;
}

/**
 * The wait before retry number `retry` (0 for the first) given the server's
 * `Retry-After` in seconds, with `random` in [0, 1) for the jitter.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  retryAfterSeconds: number | undefined,
  random: number = Math.random(),
): number {
  const resolved = resolveRetry(policy);
  const backoff = resolved.initialBackoffMs * 2 ** Math.min(retry, 16);
  const base = Math.max(backoff, (retryAfterSeconds ?? 0) * 1000);
  const jitter = Math.min(Math.max(resolved.jitter, 0), 1);
  return Math.min(base + base * jitter * random, resolved.maxDelayMs);
}

function resolveRetry(policy: RetryPolicy | undefined): ResolvedRetry {
  return {
    maxRetries: policy?.maxRetries ?? 3,
    initialBackoffMs: policy?.initialBackoffMs ?? 200,
    maxDelayMs: policy?.maxDelayMs ?? 30_000,
    jitter: policy?.jitter ?? 0.2,
  };
}

function config(message: string): AssetpoolError {
  return new AssetpoolError({ kind: "config", code: "config", message });
}

/** The base URL, checked: `http` or `https`, a host, no query, fragment or credentials. */
function parseBaseUrl(baseUrl: string): URL {
  if (!/^https?:\/\//i.test(baseUrl)) {
    throw config("the base URL must start with http:// or https://");
  }
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw config("the base URL is not a valid URL");
  }
  if (url.hostname === "") throw config("the base URL has no host");
  if (url.search !== "" || url.hash !== "" || baseUrl.includes("#") || baseUrl.includes("?")) {
    throw config("the base URL must not have a query or a fragment");
  }
  if (url.username !== "" || url.password !== "") {
    throw config("the base URL must not carry credentials");
  }
  return url;
}

/** Waits `ms`, or less when `signal` aborts (then rejects with its reason). */
function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** The `Retry-After` of a response, in seconds (the delay-seconds form assetpool sends). */
function retryAfterOf(response: Response): number | undefined {
  const value = response.headers.get("retry-after")?.trim();
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/**
 * A refusal (status 400 or more) as an {@link AssetpoolError}: the `error` and
 * `message` (or RFC 6749 `error_description`) of its JSON body.
 */
async function refusal(response: Response): Promise<AssetpoolError> {
  let error = "";
  let message = "";
  try {
    const body: unknown = await response.json();
    if (body !== null && typeof body === "object") {
      const record = body as Record<string, unknown>;
      if (typeof record.error === "string") error = record.error;
      if (typeof record.message === "string") message = record.message;
      else if (typeof record.error_description === "string") message = record.error_description;
    }
  } catch {
    // Not JSON: the status alone.
  }
  return new AssetpoolError({
    kind: "api",
    status: response.status,
    code: error,
    message: message === "" ? `HTTP status ${response.status}` : message,
    retryAfter: retryAfterOf(response),
  });
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400 && status !== 304;
}

function redirectError(status: number): AssetpoolError {
  return new AssetpoolError({
    kind: "redirect",
    status,
    code: "redirect",
    message: `the server answered HTTP status ${status}, a redirect, which is not followed: credentials go to the configured server only`,
  });
}

/** Whether `body` can be sent again (a stream cannot). */
function replayable(body: RequestInit["body"]): boolean {
  return !(typeof ReadableStream !== "undefined" && body instanceof ReadableStream) &&
    !(body !== null && typeof body === "object" && Symbol.asyncIterator in body);
}

/**
 * An assetpool client for any request to a protected API.
 *
 * It logs in at the first request (not before), adds `x-api-key` and
 * `Authorization: Bearer` to every request, and renews the token before it
 * expires: with the refresh token first, by logging in again with the password
 * when that fails. However many requests need a token at the same moment, one
 * login or renewal happens (single flight). A 401 `token_expired` or
 * `token_revoked` renews the token and retries the request once; a 503
 * `overloaded` or `storage_unavailable` is retried as the {@link RetryPolicy}
 * says, honouring `Retry-After`.
 *
 * Credentials stay on their origin: redirects are never followed, request
 * paths must start with `/`, and absolute URLs must be on the base URL's
 * origin or one of `trustedOrigins`. `String(client)`, `JSON.stringify(client)`
 * and `util.inspect(client)` show the base URL and the username only.
 */
export class Client {
  readonly #baseUrl: string;
  readonly #origins: ReadonlySet<string>;
  readonly #apiKey: string;
  readonly #username: string;
  readonly #password: string;
  readonly #scope: string | undefined;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;
  readonly #renewal: { fraction: number; maxMarginMs: number };
  readonly #retry: RetryPolicy;
  #access: AccessToken | undefined;
  #refreshToken: string | undefined;
  #renewing: Promise<AccessToken> | undefined;
  #logins = 0;
  #refreshes = 0;

  constructor(options: ClientOptions) {
    if (options === null || typeof options !== "object") throw config("options are required");
    const base = parseBaseUrl(options.baseUrl);
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "");
    const origins = new Set<string>([base.origin]);
    for (const origin of options.trustedOrigins ?? []) {
      origins.add(parseBaseUrl(origin).origin);
    }
    this.#origins = origins;
    if (typeof options.apiKey !== "string" || options.apiKey === "") {
      throw config("the API key is empty");
    }
    if (/[\r\n]/.test(options.apiKey)) throw config("the API key is not a valid header value");
    if (options.environment !== undefined) {
      const prefix = Object.hasOwn(KEY_PREFIX, options.environment) ? KEY_PREFIX[options.environment] : undefined;
      if (prefix === undefined) {
        throw config("the environment must be development, staging or production");
      }
      if (!options.apiKey.startsWith(prefix)) {
        throw config(`the API key does not belong to the ${options.environment} environment`);
      }
    }
    if (typeof options.username !== "string" || options.username === "") {
      throw config("the username is empty");
    }
    if (typeof options.password !== "string" || options.password === "") {
      throw config("the password is empty");
    }
    this.#apiKey = options.apiKey;
    this.#username = options.username;
    this.#password = options.password;
    const scope = Array.isArray(options.scope) ? options.scope.join(" ") : options.scope;
    this.#scope = scope === undefined ? undefined : String(scope);
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") throw config("no fetch implementation is available");
    this.#fetch = fetchImpl;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#renewal = {
      fraction: Math.min(Math.max(options.renewal?.fraction ?? 0.1, 0), 1),
      maxMarginMs: options.renewal?.maxMarginMs ?? 30_000,
    };
    this.#retry = { ...options.retry };
  }

  /** The base URL, without a trailing `/`. */
  get baseUrl(): string {
    return this.#baseUrl;
  }

  /** The username (email). */
  get username(): string {
    return this.#username;
  }

  /** Token counts so far. */
  get stats(): ClientStats {
    return { logins: this.#logins, refreshes: this.#refreshes };
  }

  /**
   * The absolute URL of `target`: a path starting with `/` is appended to the
   * base URL; an absolute URL must be on the base URL's origin or a trusted one.
   */
  url(target: string | URL): URL {
    let url: URL;
    if (typeof target === "string" && target.startsWith("/")) {
      try {
        url = new URL(this.#baseUrl + target);
      } catch {
        throw config("the request path does not form a valid URL");
      }
    } else if (target instanceof URL || /^https?:\/\//i.test(target)) {
      try {
        url = new URL(target);
      } catch {
        throw config("the request URL is not valid");
      }
    } else {
      throw config("a request path must start with `/` (or be an absolute URL of a trusted origin)");
    }
    if (!this.#origins.has(url.origin) || url.username !== "" || url.password !== "") {
      throw config(
        "the request is not for the server's origin or a trusted one; credentials are sent there only",
      );
    }
    return url;
  }

  /**
   * Sends a request with the API key and a fresh token, and returns the answer
   * whatever its status (after the renew-and-retry and the 503 retries).
   * Throws {@link AssetpoolError} when no answer can be had: the login or
   * renewal failed, the server cannot be reached, a redirect, a bad target.
   */
  async fetch(target: string | URL, init: RequestInit = {}): Promise<Response> {
    const url = this.url(target);
    const retries = replayable(init.body);
    let renewed = false;
    let attempt = 0;
    for (;;) {
      const token = await this.#token();
      const response = await this.#send(url, init, token.value);
      if (response.status === 401 && !renewed && retries) {
        const error = await refusal(response.clone());
        if (error.code === ErrorCodes.tokenExpired || error.code === ErrorCodes.tokenRevoked) {
          renewed = true;
          this.#invalidate(token);
          await response.body?.cancel();
          continue;
        }
      }
      if (response.status === 503 && retries && attempt < resolveRetry(this.#retry).maxRetries) {
        const error = await refusal(response.clone());
        if (this.#retryable(error)) {
          await response.body?.cancel();
          await sleep(retryDelayMs(this.#retry, attempt, error.retryAfter), init.signal);
          attempt += 1;
          continue;
        }
      }
      return response;
    }
  }

  /**
   * As {@link Client.fetch}, but a refusal (status 400 or more) throws an
   * {@link AssetpoolError} carrying the status and the contract's error code.
   */
  async request(target: string | URL, init: RequestInit = {}): Promise<Response> {
    const response = await this.fetch(target, init);
    if (response.status >= 400) throw await refusal(response);
    return response;
  }

  /** `GET` (or `init`'s method) through {@link Client.request}, decoding the JSON answer. */
  async json<T = unknown>(target: string | URL, init: RequestInit = {}): Promise<T> {
    const response = await this.request(target, init);
    try {
      return (await response.json()) as T;
    } catch (cause) {
      throw new AssetpoolError({ kind: "decode", status: response.status, code: "decode", message: "the answer is not JSON", cause });
    }
  }

  /**
   * A valid access token: the cached one while it is fresh, otherwise a new
   * one (refresh token first, password login as fallback). Concurrent callers
   * share one renewal.
   */
  async accessToken(): Promise<string> {
    return (await this.#token()).value;
  }

  /**
   * The scopes of the current token (logging in first if there is none),
   * space-separated as granted; `undefined` when nothing restricted the login.
   */
  async grantedScope(): Promise<string | undefined> {
    return (await this.#token()).scope;
  }

  /** Logs in with the password now, whatever the token state; the client keeps these tokens. */
  async login(): Promise<TokenResponse> {
    await this.#renewing?.catch(() => undefined);
    const started = Date.now();
    let tokens: TokenResponse | undefined;
    // Requests meanwhile wait for this login rather than start their own.
    const renewing: Promise<AccessToken> = this.#passwordLogin()
      .then((answer) => {
        tokens = answer;
        return this.#store(answer, started);
      })
      .finally(() => {
        if (this.#renewing === renewing) this.#renewing = undefined;
      });
    this.#renewing = renewing;
    await renewing;
    return tokens as TokenResponse;
  }

  /** Ends the session on the server (if there is one) and forgets the tokens. */
  async logout(): Promise<void> {
    await this.#renewing?.catch(() => undefined);
    const access = this.#access;
    this.#access = undefined;
    this.#refreshToken = undefined;
    if (access === undefined) return;
    const response = await this.#send(this.url(LOGOUT_PATH), { method: "POST" }, access.value);
    if (response.status >= 400) throw await refusal(response);
    await response.body?.cancel();
  }

  toString(): string {
    return `Client(${this.#baseUrl}, ${this.#username})`;
  }

  toJSON(): Record<string, string> {
    return { baseUrl: this.#baseUrl, username: this.#username };
  }

  [INSPECT](): string {
    return `Client { baseUrl: '${this.#baseUrl}', username: '${this.#username}', apiKey: '[redacted]', password: '[redacted]' }`;
  }

  /** The current token, or the one a renewal (started now, or already under way) brings. */
  #token(): Promise<AccessToken> {
    const access = this.#access;
    if (access !== undefined && Date.now() < access.renewAt) return Promise.resolve(access);
    if (this.#renewing === undefined) {
      const renewing: Promise<AccessToken> = this.#renew().finally(() => {
        if (this.#renewing === renewing) this.#renewing = undefined;
      });
      this.#renewing = renewing;
    }
    return this.#renewing;
  }

  /** Forgets `failed` if it is still the current token; a token already replaced is left alone. */
  #invalidate(failed: AccessToken): void {
    if (this.#access === failed) this.#access = undefined;
  }

  async #renew(): Promise<AccessToken> {
    const started = Date.now();
    const refreshToken = this.#refreshToken;
    // Never presented twice: without an answer it may have been spent, and
    // presenting it again would look like reuse and revoke the session.
    this.#refreshToken = undefined;
    if (refreshToken !== undefined) {
      try {
        const tokens = await this.#postForTokens(REFRESH_PATH, { refreshToken });
        this.#refreshes += 1;
        return this.#store(tokens, started);
      } catch (error) {
        const fallBack =
          error instanceof AssetpoolError &&
          error.kind === "api" &&
          (error.code === ErrorCodes.invalidRefreshToken || error.code === ErrorCodes.invalidRequest);
        if (!fallBack) throw error;
        // Spent, expired or its session revoked: log in again.
      }
    }
    return this.#store(await this.#passwordLogin(), started);
  }

  async #passwordLogin(): Promise<TokenResponse> {
    const body: Record<string, string> = { username: this.#username, password: this.#password };
    if (this.#scope !== undefined) body.scope = this.#scope;
    const tokens = await this.#postForTokens(LOGIN_PATH, body);
    this.#logins += 1;
    return tokens;
  }

  /** POSTs `body` to a token endpoint with the API key, retrying on 503 by the policy. */
  async #postForTokens(path: string, body: Record<string, string>): Promise<TokenResponse> {
    const url = this.url(path);
    const payload = JSON.stringify(body);
    for (let attempt = 0; ; attempt += 1) {
      const response = await this.#transport(url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": this.#apiKey },
        body: payload,
      });
      if (response.status >= 400) {
        const error = await refusal(response);
        if (this.#retryable(error) && attempt < resolveRetry(this.#retry).maxRetries) {
          await sleep(retryDelayMs(this.#retry, attempt, error.retryAfter));
          continue;
        }
        throw error;
      }
      let tokens: unknown;
      try {
        tokens = await response.json();
      } catch (cause) {
        throw new AssetpoolError({ kind: "decode", status: response.status, code: "decode", message: "not a token response", cause });
      }
      if (!isTokenResponse(tokens)) {
        throw new AssetpoolError({ kind: "decode", status: response.status, code: "decode", message: "not a token response" });
      }
      return tokens;
    }
  }

  #retryable(error: AssetpoolError): boolean {
    return (
      error.status === 503 &&
      (error.code === ErrorCodes.overloaded || error.code === ErrorCodes.storageUnavailable)
    );
  }

  #store(tokens: TokenResponse, issued: number): AccessToken {
    const lifetime = Math.max(tokens.expiresIn, 0) * 1000;
    const margin = Math.min(lifetime * this.#renewal.fraction, this.#renewal.maxMarginMs);
    const access: AccessToken = {
      value: tokens.accessToken,
      renewAt: issued + lifetime - margin,
      scope: tokens.scope ?? undefined,
    };
    this.#access = access;
    this.#refreshToken = tokens.refreshToken;
    return access;
  }

  /** `init` sent to `url` with the API key and `token` (replacing any the caller set). */
  #send(url: URL, init: RequestInit, token: string): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.delete("x-api-token");
    headers.set("x-api-key", this.#apiKey);
    headers.set("authorization", `Bearer ${token}`);
    return this.#transport(url, { ...init, headers });
  }

  /** One HTTP exchange: no redirect followed, the time limit applied. */
  async #transport(url: URL, init: RequestInit): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = init.signal ? anySignal(init.signal, timeout) : timeout;
    const request: RequestInit & { duplex?: string } = { ...init, redirect: "manual", signal };
    if (!replayable(init.body)) request.duplex = "half";
    let response: Response;
    try {
      response = await this.#fetch(url, request);
    } catch (cause) {
      if (init.signal?.aborted) throw cause;
      const timedOut = timeout.aborted;
      throw new AssetpoolError({
        kind: "transport",
        code: timedOut ? "timeout" : "transport",
        message: timedOut ? "the server did not answer in time" : "cannot reach the server",
        cause,
      });
    }
    if (isRedirect(response.status) || response.type === "opaqueredirect") {
      await response.body?.cancel();
      throw redirectError(response.status);
    }
    return response;
  }
}

/** A signal aborted when either is (`AbortSignal.any`, which Node has from 20.3). */
function anySignal(first: AbortSignal, second: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === "function") return AbortSignal.any([first, second]);
  const controller = new AbortController();
  for (const signal of [first, second]) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

function isTokenResponse(value: unknown): value is TokenResponse {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record.accessToken === "string" &&
    typeof record.refreshToken === "string" &&
    typeof record.expiresIn === "number" &&
    (record.scope === undefined || record.scope === null || typeof record.scope === "string")
  );
}
