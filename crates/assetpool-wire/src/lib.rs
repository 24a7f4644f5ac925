//! Wire types of the assetpool HTTP API: request and response bodies, the
//! claims of access tokens, the environment names and the stable error codes.
//!
//! This crate is shared by the server and by clients. It has no async runtime
//! and no HTTP framework in it, only `serde` shapes (and their OpenAPI schemas).

mod admin;
mod admin_api;
mod applications;
mod auth;
mod claims;
mod environment;
mod error;
mod introspection;
mod monitoring;
mod scope;
pub mod text;
mod well_known;

pub use admin::{
    ApiKeyCreatedResponse, ApiKeyResponse, ApiKeyStatus, SigningKeyResponse, SigningKeyStatus,
    UserResponse,
};
pub use admin_api::{
    AdminCheckLeakRequest, AdminCreateKeyRequest, AdminCreateUserRequest, AdminRevokeKeyRequest,
    AdminRotateKeyRequest, AdminSetPasswordRequest, AdminUnlockResponse, AdminUpdateKeyRequest,
    AdminUpdateKeyResponse, AdminUpdateUserRequest, AlertPage, ApiKeyPage, AuditPage,
    AuditVerificationResponse, LeakCheckList, LeakCheckResponse, LoginFailureList,
    LoginFailureResponse, SigningKeyList, UserPage,
};
pub use applications::{
    AdminAddMemberRequest, AdminCreateApplicationRequest, AdminUpdateApplicationRequest,
    ApplicationMemberResponse, ApplicationPage, ApplicationResponse, ApplicationRole,
    ParseApplicationRoleError,
};
pub use auth::{
    ApiKeyIdentity, LoginRequest, LogoutResponse, OAuthErrorResponse, OAuthTokenResponse,
    RefreshRequest, ResourceResponse, TokenResponse, UserIdentity,
};
pub use claims::AccessClaims;
pub use environment::{Environment, ParseEnvironmentError};
pub use error::{ErrorCode, ErrorResponse};
pub use introspection::IntrospectionResponse;
pub use monitoring::{
    AlertResponse, AlertWebhookPayload, AuditEntryResponse, DailyAddresses, KeyUsageResponse,
    LeakReport, LeakVerdict, UsageBucketResponse, UsageCounts,
};
pub use scope::{
    scope_list, Scope, ScopeError, ScopeSet, MAX_SCOPES, MAX_SCOPE_CHARS, MAX_SCOPE_SET_CHARS,
};
pub use well_known::{AuthorizationServerMetadata, Jwk, JwkSet};

/// Header that carries the API key on every request.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Header that carries the access token (alternative to `Authorization: Bearer`).
pub const API_TOKEN_HEADER: &str = "x-api-token";
/// Path of the login endpoint.
pub const LOGIN_PATH: &str = "/api/authentication/login";
/// Path of the refresh endpoint.
pub const REFRESH_PATH: &str = "/api/authentication/refresh";
/// Path of the logout endpoint.
pub const LOGOUT_PATH: &str = "/api/authentication/logout";
/// Path of the RFC 6749 token endpoint.
pub const OAUTH_TOKEN_PATH: &str = "/oauth/token";
/// Path of the RFC 7662 token introspection endpoint.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// Path of the protected example resource.
pub const RESOURCE_PATH: &str = "/v1/resource";
/// Header of the scopes a request through `/auth/verify` needs (space-separated),
/// as an alternative to its `scope` query parameter.
pub const REQUIRED_SCOPE_HEADER: &str = "x-assetpool-required-scope";
/// Header of the scopes of an accepted request (space-separated; absent when
/// unrestricted), on `/auth/verify` answers and requests the proxy forwards.
pub const SCOPES_HEADER: &str = "x-assetpool-scopes";
/// Path of the JSON Web Key Set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the RFC 8414 metadata document.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
