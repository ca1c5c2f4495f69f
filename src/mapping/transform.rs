//! `columns_to_transform`: what to do to a column's text (the encode stage applies it).

use crate::names::named_enum;

named_enum! {
    /// `hash_algorithm` of `columns_to_transform`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum HashAlgorithm in HASH_ALGORITHMS {
        None = "none",
        Sha256 = "sha256",
    }
}

named_enum! {
    /// `normalize` of `columns_to_transform`: applied before hashing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Normalize in NORMALIZATIONS {
        None = "none",
        Lowercase = "lowercase",
        Trim = "trim",
        LowercaseTrim = "lowercase_trim",
    }
}

/// What to do to one column's text before it is quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnTransform {
    pub hash: HashAlgorithm,
    pub normalize: Normalize,
}
