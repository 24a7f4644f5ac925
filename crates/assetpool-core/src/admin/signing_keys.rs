//! `signing-keys seal`: the migration of signing keys stored unsealed
//! (`plain:`) to the configured key-encryption key.

use super::Admin;
use crate::ids::SigningKeyId;
use crate::sealer::SealError;
use crate::store::ResealedSigningKey;
use crate::ServiceError;
use assetpool_wire::ErrorCode;

/// What [`Admin::seal_signing_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedSigningKeys {
    /// Ids of the keys sealed now, newest first.
    pub sealed: Vec<SigningKeyId>,
    /// Ids of the keys that were already sealed with the key-encryption key.
    pub already_sealed: Vec<SigningKeyId>,
}

impl Admin {
    /// Seals every signing key stored `plain:` with the key-encryption key,
    /// in one transaction; checks that the others open with it. Running it
    /// again changes nothing. Refused without a key-encryption key, and when a
    /// key was sealed with another one (nothing is written then).
    pub async fn seal_signing_keys(&self) -> Result<SealedSigningKeys, ServiceError> {
        let result = self.seal_signing_keys_unaudited().await;
        let detail = match &result {
            Ok(outcome) => serde_json::json!({ "sealed": outcome.sealed }),
            Err(_) => serde_json::json!({}),
        };
        self.audit("signing_key.seal", "", detail, &result).await;
        result
    }

    async fn seal_signing_keys_unaudited(&self) -> Result<SealedSigningKeys, ServiceError> {
        let mut outcome = SealedSigningKeys::default();
        let mut resealed = Vec::new();
        for key in self.store.signing_keys().await? {
            match self
                .sealer
                .reseal(key.kid.as_str(), &key.sealed_private_key)
            {
                Ok(Some(sealed)) => resealed.push(ResealedSigningKey {
                    kid: key.kid,
                    previous: key.sealed_private_key,
                    sealed,
                }),
                Ok(None) => outcome.already_sealed.push(key.kid),
                Err(error) => return Err(refusal(&key.kid, error)),
            }
        }
        if !resealed.is_empty() {
            self.store.reseal_signing_keys(&resealed).await?;
        }
        outcome.sealed = resealed.into_iter().map(|key| key.kid).collect();
        Ok(outcome)
    }
}

fn refusal(kid: &SigningKeyId, error: SealError) -> ServiceError {
    match error {
        SealError::KeyEncryptionKeyMissing => ServiceError::refused_with(
            ErrorCode::InvalidRequest,
            "no key-encryption key is configured to seal signing keys with",
        ),
        SealError::WrongKey => ServiceError::refused_with(
            ErrorCode::InvalidRequest,
            format!(
                "signing key {kid} is sealed with another key-encryption key than the configured one"
            ),
        ),
        other => ServiceError::Internal(other.to_string()),
    }
}
