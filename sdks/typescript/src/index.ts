/**
 * `@assetpool/client`: a client for any request to an assetpool-protected API
 * ({@link Client}), and offline verification of assetpool access tokens for
 * Node backends with an Express middleware ({@link createVerifier}).
 */

export { Client, retryDelayMs } from "./client.js";
export type { ClientOptions, ClientStats, Environment, RenewalPolicy, RetryPolicy, TokenResponse } from "./client.js";
export { AssetpoolError, ErrorCodes } from "./errors.js";
export type { AssetpoolErrorInit, ErrorKind } from "./errors.js";
export { createVerifier, hasScopes, parseScopes, scopesOf, tokenFromHeaders, Verifier, VerifyError } from "./verify.js";
export type {
  AccessClaims,
  HeadersLike,
  Middleware,
  Refusal,
  RequestLike,
  RequireAuthOptions,
  ResponseLike,
  VerifierOptions,
  VerifyErrorCode,
} from "./verify.js";
