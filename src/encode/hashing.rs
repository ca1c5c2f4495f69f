//! Column transforms (`columns_to_transform`): normalise, then hash, identifiers that ad
//! platforms expect as SHA-256 digests. The transform itself is mapping data
//! ([`ColumnTransform`]); applying it is the encode stage's.

use sha2::{Digest, Sha256};

use crate::mapping::{ColumnTransform, HashAlgorithm, Normalize};

fn js_trim(s: &str) -> &str {
    s.trim_matches(crate::json::is_js_space)
}

/// Exactly 64 hexadecimal characters (either case): already a SHA-256 digest.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ColumnTransform {
    /// Transforms `text` into `out` (cleared first).
    pub fn apply(&self, text: &str, out: &mut String) {
        out.clear();
        if js_trim(text).is_empty() {
            return;
        }
        if is_sha256_hex(text) {
            out.push_str(text);
            return;
        }
        let normalized: std::borrow::Cow<'_, str> = match self.normalize {
            Normalize::None => text.into(),
            Normalize::Lowercase => text.to_lowercase().into(),
            Normalize::Trim => js_trim(text).into(),
            Normalize::LowercaseTrim => js_trim(text).to_lowercase().into(),
        };
        match self.hash {
            HashAlgorithm::None => out.push_str(&normalized),
            HashAlgorithm::Sha256 => {
                crate::text::write_hex(&Sha256::digest(normalized.as_bytes()), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hash: HashAlgorithm, normalize: Normalize, text: &str) -> String {
        let mut out = String::new();
        ColumnTransform { hash, normalize }.apply(text, &mut out);
        out
    }

    #[test]
    fn hashing_and_normalising() {
        use HashAlgorithm as H;
        use Normalize as N;
        // sha256("test@example.com")
        let digest = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";
        assert_eq!(
            t(H::Sha256, N::LowercaseTrim, "  Test@Example.COM "),
            digest
        );
        assert_eq!(t(H::Sha256, N::None, "test@example.com"), digest);
        assert_eq!(
            t(H::Sha256, N::LowercaseTrim, &digest.to_uppercase()),
            digest.to_uppercase(),
            "digests are never hashed again"
        );
        assert_eq!(t(H::Sha256, N::LowercaseTrim, ""), "");
        assert_eq!(t(H::Sha256, N::LowercaseTrim, "   "), "");
        assert_eq!(t(H::None, N::Lowercase, " A "), " a ");
        assert_eq!(t(H::None, N::Trim, " A "), "A");
        assert_eq!(t(H::None, N::None, " A "), " A ");
    }
}
