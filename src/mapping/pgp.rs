//! The recipient's OpenPGP public key for `encryption:`, checked when the mapping loads.
//!
//! A key that cannot encrypt (garbage, a private key given by mistake, an expired key) is a
//! load error with its location, never a failed file hours into a run.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, SignedPublicKey, SignedSecretKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgpKeyError {
    #[error(
        "is a PGP private key; give the recipient's public key instead (`gpg --armor --export KEY`), and keep the private key away from this machine"
    )]
    Private,
    #[error("is not an OpenPGP public key: {0}")]
    Invalid(String),
    #[error(
        "the key {fingerprint} expired on {expired} (UTC); ask the recipient for a current key"
    )]
    Expired {
        fingerprint: String,
        expired: String,
    },
    #[error("the key {fingerprint} has no valid key that can encrypt (only signing keys)")]
    NoEncryptionKey { fingerprint: String },
}

/// Which part of the key the files are encrypted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Primary,
    Subkey(usize),
}

/// A validated public key (public material only, so `Debug` may show its fingerprint).
#[derive(Clone)]
pub struct PgpKey {
    key: Arc<SignedPublicKey>,
    target: Target,
    fingerprint: String,
}

impl std::fmt::Debug for PgpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgpKey({})", self.fingerprint)
    }
}

impl PartialEq for PgpKey {
    fn eq(&self, other: &PgpKey) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl PgpKey {
    /// Parses an armored or binary public key and picks the key files are encrypted to: the
    /// first valid subkey that may encrypt, else the primary key if it may.
    pub fn parse(bytes: &[u8], now: SystemTime) -> Result<PgpKey, PgpKeyError> {
        let text = String::from_utf8_lossy(bytes);
        if text.contains("PRIVATE KEY BLOCK") || SignedSecretKey::from_reader_single(bytes).is_ok()
        {
            return Err(PgpKeyError::Private);
        }
        let (key, _) = SignedPublicKey::from_reader_single(bytes)
            .map_err(|e| PgpKeyError::Invalid(e.to_string()))?;
        key.verify_bindings()
            .map_err(|e| PgpKeyError::Invalid(format!("its self-signatures do not verify: {e}")))?;
        let fingerprint = format!("{:X}", key.primary_key.fingerprint());
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let primary_sigs: Vec<&Signature> = key
            .details
            .users
            .iter()
            .flat_map(|u| u.signatures.iter())
            .chain(key.details.direct_signatures.iter())
            .collect();
        let created = u64::from(key.primary_key.created_at().as_secs());
        if let Some(end) = expiry(created, primary_sigs.iter().copied())
            && end <= now
        {
            return Err(PgpKeyError::Expired {
                fingerprint,
                expired: utc(end),
            });
        }
        let usable_sub = key.public_subkeys.iter().position(|s| {
            let created = u64::from(s.key.created_at().as_secs());
            s.key.algorithm().can_encrypt()
                && may_encrypt(s.signatures.iter())
                && expiry(created, s.signatures.iter()).is_none_or(|end| end > now)
        });
        let target = match usable_sub {
            Some(i) => Target::Subkey(i),
            None if key.primary_key.algorithm().can_encrypt()
                && may_encrypt(primary_sigs.iter().copied()) =>
            {
                Target::Primary
            }
            None => return Err(PgpKeyError::NoEncryptionKey { fingerprint }),
        };
        Ok(PgpKey {
            key: Arc::new(key),
            target,
            fingerprint,
        })
    }

    /// The primary key's fingerprint (upper-case hex), as `gpg --list-keys` shows it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Encrypts `input` to the key as one OpenPGP message (SEIPD v1, AES-256, binary),
    /// streaming: the plain bytes are read in chunks and written out as partial packets.
    pub fn encrypt(
        &self,
        input: impl std::io::Read,
        output: impl std::io::Write,
    ) -> Result<(), pgp::errors::Error> {
        use pgp::composed::MessageBuilder;
        use pgp::crypto::sym::SymmetricKeyAlgorithm;
        let mut rng = rand::thread_rng();
        let mut builder = MessageBuilder::from_reader("", input)
            .seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        match self.target {
            Target::Primary => builder.encrypt_to_key(&mut rng, &self.key.primary_key)?,
            Target::Subkey(i) => builder.encrypt_to_key(&mut rng, &self.key.public_subkeys[i])?,
        };
        builder.to_writer(&mut rng, output)
    }
}

/// When a component created at `created` expires, from its newest self-signature that
/// says so (`None`: never).
fn expiry<'s>(created: u64, sigs: impl Iterator<Item = &'s Signature>) -> Option<u64> {
    let newest = sigs.max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))?;
    let secs = newest.key_expiration_time()?.as_secs();
    (secs > 0).then(|| created + u64::from(secs))
}

/// Whether the key flags of the newest binding signature allow encryption (no flags at
/// all: allowed, as for old keys).
fn may_encrypt<'s>(sigs: impl Iterator<Item = &'s Signature>) -> bool {
    let Some(newest) = sigs.max_by_key(|s| s.created().map_or(0, |t| t.as_secs())) else {
        return true;
    };
    let flags = newest.key_flags();
    let any = flags.encrypt_comms() || flags.encrypt_storage();
    any || (!flags.sign() && !flags.certify() && !flags.authentication())
}

fn utc(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}
