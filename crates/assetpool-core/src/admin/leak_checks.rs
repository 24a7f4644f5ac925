//! `keys check-leak`: which candidate texts are keys of this service, and
//! the revocation of the live ones when asked (audited as the actor).

use super::Admin;
use crate::leaks::{check_candidates, LEAK_REVOKE_REASON};
use crate::{ApiKeyStatus, ServiceError};
use assetpool_wire::LeakCheckResponse;
use std::collections::HashSet;

impl Admin {
    /// Checks each candidate, in order; with `revoke`, revokes the live keys
    /// found (each once). Never returns a candidate.
    pub async fn check_leaked_keys<S: AsRef<str>>(
        &self,
        candidates: &[S],
        revoke: bool,
    ) -> Result<Vec<LeakCheckResponse>, ServiceError> {
        let checks = check_candidates(self.store.as_ref(), candidates, self.clock.now()).await?;
        let mut revoked_ids = HashSet::new();
        let mut answers = Vec::with_capacity(checks.len());
        for check in &checks {
            let key = check.key.as_ref();
            let mut answer = LeakCheckResponse {
                key_id: key.map(|key| key.id.to_string()),
                status: check.status.map(|status| status.to_string()),
                name: key.map(|key| key.name.clone()),
                environment: key.map(|key| key.environment.to_string()),
                known: check.is_known(),
                live: check.is_live(),
                revoked: false,
            };
            if let Some(key) = key.filter(|_| revoke && check.is_live()) {
                if revoked_ids.insert(key.id.clone()) {
                    self.revoke_api_key(&key.id, Some(LEAK_REVOKE_REASON))
                        .await?;
                }
                answer.status = Some(ApiKeyStatus::Revoked.to_string());
                answer.revoked = true;
            }
            answers.push(answer);
        }
        Ok(answers)
    }
}
