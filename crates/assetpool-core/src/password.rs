//! Passwords: normalisation, policy, and Argon2id hashing.
//!
//! Usernames and passwords are NFKC-normalised before use, so the same password
//! typed as composed or decomposed Unicode works. Hashes are Argon2id PHC strings.

use argon2::password_hash::{
    rand_core::OsRng, Output, ParamsString, PasswordHash, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::cell::RefCell;
use subtle::ConstantTimeEq as _;
use unicode_normalization::UnicodeNormalization;

/// Longest accepted password, in bytes (checked before any hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when one is set, in characters.
pub const DEFAULT_MIN_PASSWORD_CHARS: usize = 12;

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    /// OWASP's recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Argon2Settings {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Why a password cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// Shorter than the minimum.
    #[error("the password must have at least {0} characters")]
    TooShort(usize),
    /// Found in the list of common passwords.
    #[error("the password is too common; choose another")]
    TooCommon,
    /// Holds a control character (which no login could send).
    #[error("the password may not contain control characters")]
    ControlCharacter,
}

/// Failure of the hashing machinery itself (bad parameters, corrupt stored hash).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashingError(String);

/// NFKC form of a username or password.
pub fn normalize(text: &str) -> String {
    text.nfkc().collect()
}

/// The canonical form of an email used as username: NFKC, trimmed, lowercase.
pub fn normalize_email(email: &str) -> String {
    normalize(email.trim()).to_lowercase()
}

/// Checks a new password against the policy (length limits, common passwords).
pub fn check_policy(password: &str, min_chars: usize) -> Result<(), PasswordPolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordPolicyError::TooLong);
    }
    if assetpool_wire::text::contains_control(password) {
        return Err(PasswordPolicyError::ControlCharacter);
    }
    let normalized = normalize(password);
    if normalized.chars().count() < min_chars {
        return Err(PasswordPolicyError::TooShort(min_chars));
    }
    let lowered = normalized.to_lowercase();
    if COMMON_PASSWORDS
        .lines()
        .any(|common| !common.is_empty() && common == lowered)
    {
        return Err(PasswordPolicyError::TooCommon);
    }
    Ok(())
}

/// Whether a verification succeeded, and whether the stored hash should be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password does not match.
    Mismatch,
    /// It matches; `needs_rehash` when the stored parameters differ from the configured ones.
    Match {
        /// The stored hash uses other parameters than the configured ones.
        needs_rehash: bool,
    },
}

thread_local! {
    /// Argon2 working memory of this thread (19 MiB with the default
    /// parameters), kept from one hash to the next. The password hashing
    /// pool runs every hash on a few threads of its own, so the memory spent
    /// on hashing is one such buffer per worker, however many hashes run;
    /// allocating it per hash would leave freed copies in allocator arenas.
    static WORKING_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Most memory a stored hash may ask for when it is verified (1 GiB).
pub const MAX_VERIFY_MEMORY_KIB: u32 = 1 << 20;

/// Gives this thread's Argon2 working memory back (for threads that hash
/// once, outside the hashing pool).
pub fn release_working_memory() {
    WORKING_MEMORY.with(|memory| memory.replace(Vec::new()));
}

/// Runs Argon2 with `argon2`'s parameters into `out`, in this thread's
/// working memory (grown when a stored hash needs more, never shrunk).
fn compute(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    WORKING_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let needed = argon2.params().block_count();
        if memory.len() < needed {
            memory.resize(needed, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..needed])
    })
}

fn hashing_error(error: impl std::fmt::Display) -> HashingError {
    HashingError(error.to_string())
}

/// Hashes and verifies passwords with the configured Argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    settings: Argon2Settings,
    argon2: Argon2<'static>,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PasswordHasher")
            .field("settings", &self.settings)
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with `settings`; computes a dummy hash used to spend the same
    /// time on unknown users as on known ones.
    pub fn new(settings: Argon2Settings) -> Result<Self, HashingError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|error| HashingError(error.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut hasher = PasswordHasher {
            settings,
            argon2,
            dummy_hash: String::new(),
        };
        hasher.dummy_hash =
            hasher.hash(&SecretString::from("assetpool-dummy-password-for-timing"))?;
        // This thread is not one of the hashing pool's: give its memory back.
        release_working_memory();
        Ok(hasher)
    }

    /// The configured parameters.
    pub fn settings(&self) -> Argon2Settings {
        self.settings
    }

    /// Hashes a password (NFKC-normalised first) into a PHC string.
    pub fn hash(&self, password: &SecretString) -> Result<String, HashingError> {
        let normalized = SecretString::from(normalize(password.expose_secret()));
        let salt = SaltString::generate(&mut OsRng);
        let salt = Salt::from(&salt);
        let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(hashing_error)?;
        let params = self.argon2.params();
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let hash = Output::init_with(output_len, |out| {
            compute(
                &self.argon2,
                normalized.expose_secret().as_bytes(),
                salt_bytes,
                out,
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(hashing_error)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(params).map_err(hashing_error)?,
            salt: Some(salt),
            hash: Some(hash),
        };
        Ok(phc.to_string())
    }

    /// Verifies `password` against a stored PHC string (with the parameters
    /// stored in it).
    pub fn verify(
        &self,
        password: &SecretString,
        stored: &str,
    ) -> Result<Verification, HashingError> {
        let parsed = PasswordHash::new(stored).map_err(hashing_error)?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hashing_error)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(hashing_error)?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(hashing_error)?;
        if params.m_cost() > MAX_VERIFY_MEMORY_KIB {
            // Such a hash could only come from outside (an import, a database
            // write); verifying it would take the worker's memory with it.
            return Err(HashingError(format!(
                "the stored hash asks for {} KiB of memory, over the {MAX_VERIFY_MEMORY_KIB} KiB accepted",
                params.m_cost()
            )));
        }
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(HashingError("the stored hash has no salt or output".into()));
        };
        let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(hashing_error)?;
        let normalized = SecretString::from(normalize(password.expose_secret()));
        let mut computed = vec![0u8; expected.len()];
        compute(
            &Argon2::new(algorithm, version, params),
            normalized.expose_secret().as_bytes(),
            salt_bytes,
            &mut computed,
        )
        .map_err(hashing_error)?;
        if bool::from(computed.ct_eq(expected.as_bytes())) {
            Ok(Verification::Match {
                needs_rehash: !self.matches_settings(&parsed),
            })
        } else {
            Ok(Verification::Mismatch)
        }
    }

    /// Spends the time of one verification without any account (unknown users).
    pub fn verify_dummy(&self, password: &SecretString) {
        // The result is irrelevant: only the time it takes matters.
        let _ = self.verify(password, &self.dummy_hash);
    }

    fn matches_settings(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm != Algorithm::Argon2id.ident() {
            return false;
        }
        match Params::try_from(parsed) {
            Ok(params) => {
                params.m_cost() == self.settings.memory_kib
                    && params.t_cost() == self.settings.iterations
                    && params.p_cost() == self.settings.parallelism
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hash_and_verify() {
        let hasher = PasswordHasher::new(cheap()).unwrap();
        let password = SecretString::from("correct horse battery");
        let stored = hasher.hash(&password).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&password, &stored).unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(&SecretString::from("wrong horse battery"), &stored)
                .unwrap(),
            Verification::Mismatch
        );
    }

    /// Hashes stored by the argon2 crate's own PHC code verify here, and
    /// hashes made here verify there: the same strings, whatever the
    /// parameters (the working memory grows to the largest seen).
    #[test]
    fn hashes_agree_with_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(cheap()).unwrap();
        let password = "correct horse battery";
        for (memory_kib, iterations, parallelism) in [(1024, 1, 1), (4096, 2, 2), (2048, 3, 1)] {
            let params = Params::new(memory_kib, iterations, parallelism, None).unwrap();
            let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            assert!(matches!(
                hasher
                    .verify(&SecretString::from(password), &theirs)
                    .unwrap(),
                Verification::Match { .. }
            ));
            assert_eq!(
                hasher
                    .verify(&SecretString::from("correct horse batterY"), &theirs)
                    .unwrap(),
                Verification::Mismatch
            );
        }
        let ours = hasher.hash(&SecretString::from(password)).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horse batterY", &parsed)
            .is_err());
    }

    /// A stored hash asking for more memory than any configuration allows is
    /// refused before anything is allocated.
    #[test]
    fn stored_hashes_asking_for_too_much_memory_are_refused() {
        let hasher = PasswordHasher::new(cheap()).unwrap();
        let password = SecretString::from("correct horse battery");
        let stored = hasher.hash(&password).unwrap();
        let greedy = stored.replace("m=1024", "m=2000000");
        assert_ne!(greedy, stored);
        assert!(hasher.verify(&password, &greedy).is_err());
    }

    #[test]
    fn changed_parameters_ask_for_rehash() {
        let old = PasswordHasher::new(cheap()).unwrap();
        let password = SecretString::from("correct horse battery");
        let stored = old.hash(&password).unwrap();
        let new = PasswordHasher::new(Argon2Settings {
            memory_kib: 2048,
            ..cheap()
        })
        .unwrap();
        assert_eq!(
            new.verify(&password, &stored).unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn composed_and_decomposed_unicode_match() {
        let hasher = PasswordHasher::new(cheap()).unwrap();
        let composed = SecretString::from("caf\u{e9} au lait!!");
        let decomposed = SecretString::from("cafe\u{301} au lait!!");
        let stored = hasher.hash(&composed).unwrap();
        assert!(matches!(
            hasher.verify(&decomposed, &stored).unwrap(),
            Verification::Match { .. }
        ));
    }

    #[test]
    fn policy() {
        assert_eq!(
            check_policy("short", 12),
            Err(PasswordPolicyError::TooShort(12))
        );
        assert_eq!(
            check_policy(&"x".repeat(1025), 12),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_policy("Password1234", 12),
            Err(PasswordPolicyError::TooCommon)
        );
        assert_eq!(check_policy("a perfectly fine passphrase", 12), Ok(()));
    }

    #[test]
    fn emails_match_case_insensitively() {
        assert_eq!(normalize_email(" Alice@Example.COM "), "alice@example.com");
    }
}
