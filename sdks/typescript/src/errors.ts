/**
 * The errors of the SDK. Every failure is an {@link AssetpoolError}; `kind`
 * tells refusals by the server (`"api"`) from the rest.
 */

/** What went wrong, broadly. */
export type ErrorKind =
  /** The server refused the request: `status` and `code` are the server's. */
  | "api"
  /** The server answered with a redirect, which is never followed (credentials stay on their origin). */
  | "redirect"
  /** The server could not be reached, or did not answer in time. */
  | "transport"
  /** The client is misconfigured, or a request was not for an allowed origin. */
  | "config"
  /** The server's answer was not what the contract says. */
  | "decode";

/** Fields of an {@link AssetpoolError}. */
export interface AssetpoolErrorInit {
  kind: ErrorKind;
  /** HTTP status; 0 when there was no answer. */
  status?: number;
  /** The contract's error code (`invalid_credentials`, ...); an open set of strings. */
  code: string;
  message: string;
  /** The `Retry-After` the server asked for, in seconds. */
  retryAfter?: number;
  cause?: unknown;
}

/**
 * A failure of a client call. For a refusal by the server (`kind === "api"`),
 * `status` is the HTTP status and `code` the `error` of its body (open set:
 * codes unknown to this version are passed through); `message` is the
 * server's message, which never contains a submitted value.
 */
export class AssetpoolError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  readonly code: string;
  readonly retryAfter: number | undefined;

  constructor(init: AssetpoolErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "AssetpoolError";
    this.kind = init.kind;
    this.status = init.status ?? 0;
    this.code = init.code;
    this.retryAfter = init.retryAfter;
  }

  /** A plain object of the error, for logs. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      kind: this.kind,
      status: this.status,
      code: this.code,
      message: this.message,
      ...(this.retryAfter === undefined ? {} : { retryAfter: this.retryAfter }),
    };
  }
}

/** The contract's error codes (the server may add more; treat unknown ones as refusals). */
export const ErrorCodes = {
  missingApiKey: "missing_api_key",
  invalidApiKey: "invalid_api_key",
  apiKeyRevoked: "api_key_revoked",
  apiKeyExpired: "api_key_expired",
  apiKeyDisabled: "api_key_disabled",
  wrongEnvironment: "wrong_environment",
  missingToken: "missing_token",
  invalidToken: "invalid_token",
  tokenExpired: "token_expired",
  tokenRevoked: "token_revoked",
  invalidRequest: "invalid_request",
  invalidCredentials: "invalid_credentials",
  tooManyAttempts: "too_many_attempts",
  overloaded: "overloaded",
  storageUnavailable: "storage_unavailable",
  invalidRefreshToken: "invalid_refresh_token",
  forbidden: "forbidden",
  addressNotAllowed: "address_not_allowed",
  invalidScope: "invalid_scope",
  insufficientScope: "insufficient_scope",
  upstreamUnavailable: "upstream_unavailable",
} as const;
