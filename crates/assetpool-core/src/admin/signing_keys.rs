//! `signing-keys seal`: the migration of signing keys stored unsealed
//! (`plain:`) to the configured key-encryption key.

use super::{signing_key_response, Admin};
use crate::ids::SigningKeyId;
use crate::sealer::{KeySealer, SealError};
use crate::store::{ResealedSigningKey, StoreError};
use crate::ServiceError;
use assetpool_wire::{ErrorCode, SigningKeyResponse};
use secrecy::{ExposeSecret as _, SecretSlice};

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
        let planned = self.plan_seal().await;
        let detail = match &planned {
            Ok((outcome, _)) => serde_json::json!({ "sealed": outcome.sealed }),
            Err(_) => serde_json::json!({}),
        };
        let change = self
            .change("signing_key.seal", "", detail)
            .on_failure("", serde_json::json!({}));
        let result = async {
            let (outcome, resealed) = planned?;
            if !resealed.is_empty() {
                change.store.reseal_signing_keys(&resealed).await?;
            }
            Ok(outcome)
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    /// What sealing would do: the keys sealed now (ids in the outcome, and
    /// their new values) and those already sealed.
    async fn plan_seal(
        &self,
    ) -> Result<(SealedSigningKeys, Vec<ResealedSigningKey>), ServiceError> {
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
        outcome.sealed = resealed.iter().map(|key| key.kid.clone()).collect();
        Ok((outcome, resealed))
    }

    /// Re-encrypts every signing key under `new`, a new key-encryption key,
    /// in one transaction: each is opened with the current one (a `plain:`
    /// key too) and sealed with `new`. Refused, with nothing written, when
    /// `new` encrypts nothing or a key does not open with the current one.
    /// Servers keep the keys they have opened; each needs `new` at its next
    /// start (and before it can open a key rotated from now on).
    pub async fn reseal_signing_keys(
        &self,
        new: &KeySealer,
    ) -> Result<Vec<SigningKeyId>, ServiceError> {
        let planned = self.plan_reseal(new).await;
        let detail = match &planned {
            Ok(resealed) => {
                let kids: Vec<&SigningKeyId> = resealed.iter().map(|key| &key.kid).collect();
                serde_json::json!({ "resealed": kids })
            }
            Err(_) => serde_json::json!({}),
        };
        let change = self
            .change("signing_key.reseal", "", detail)
            .on_failure("", serde_json::json!({}));
        let result = async {
            let resealed = planned?;
            if !resealed.is_empty() {
                change.store.reseal_signing_keys(&resealed).await?;
            }
            Ok(resealed.into_iter().map(|key| key.kid).collect())
        }
        .await;
        self.settle(change, &result).await;
        result
    }

    async fn plan_reseal(&self, new: &KeySealer) -> Result<Vec<ResealedSigningKey>, ServiceError> {
        if !new.encrypts() {
            return Err(ServiceError::refused_with(
                ErrorCode::InvalidRequest,
                "the new key-encryption key encrypts nothing",
            ));
        }
        let mut resealed = Vec::new();
        for key in self.store.signing_keys().await? {
            let private_key = self
                .sealer
                .open_allowing_plain(key.kid.as_str(), &key.sealed_private_key)
                .map(SecretSlice::from)
                .map_err(|error| refusal(&key.kid, error))?;
            let sealed = new
                .seal(key.kid.as_str(), private_key.expose_secret())
                .map_err(|error| ServiceError::Internal(error.to_string()))?;
            resealed.push(ResealedSigningKey {
                kid: key.kid,
                previous: key.sealed_private_key,
                sealed,
            });
        }
        Ok(resealed)
    }

    /// Takes a signing key out of the JWKS at once: every server refuses
    /// its tokens within a second (change feed) and forgets the verdicts it
    /// cached for them. Refused for the active key: rotate first.
    pub async fn revoke_signing_key(
        &self,
        kid: &SigningKeyId,
    ) -> Result<SigningKeyResponse, ServiceError> {
        let change = self.change("signing_key.revoke", kid.as_str(), serde_json::json!({}));
        let result = async {
            let key = change
                .store
                .revoke_signing_key(kid, self.clock.now())
                .await
                .map_err(|error| match error {
                    StoreError::NotFound => ServiceError::refused_with(
                        ErrorCode::NotFound,
                        "no signing key with that kid",
                    ),
                    StoreError::Conflict(_) => ServiceError::invalid_request(
                        "the active signing key cannot be revoked: run `signing-keys rotate` \
                         first, then revoke the old key",
                    ),
                    other => other.into(),
                })?;
            Ok(signing_key_response(&key))
        }
        .await;
        self.settle(change, &result).await;
        result
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
