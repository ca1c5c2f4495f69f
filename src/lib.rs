//! s3actions: Segment's "Sync to S3" destination as an engine you run yourself.
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`source`] → [`trigger`] → [`expr`] → [`partition`] → [`batch`] → [`encode`] →
//! [`naming`] → [`sink`]. [`mapping`] loads a mapping file into compiled, ready-to-run
//! structures; [`pipeline`] runs the stages.

pub mod batch;
pub mod encode;
pub mod expr;
pub mod json;
pub mod mapping;
pub mod names;
pub mod naming;
pub mod partition;
pub mod pipeline;
pub mod preview;
pub mod sink;
pub mod source;
pub mod spanned;
pub mod suggest;
pub mod trigger;
