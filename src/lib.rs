//! s3actions: Segment's "Sync to S3" destination as an engine you run yourself.

pub mod expr;
pub mod json;
pub mod spanned;
pub mod suggest;
pub mod trigger;
