//! s3actions: Segment's "Sync to S3" destination as an engine you run yourself.
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`source`] → [`trigger`] → [`expr`] → [`partition`] → [`batch`] → [`encode`] →
//! [`naming`] → [`sink`], with an acknowledgement path back to the source once output is
//! durable ([`source::Acknowledge`]). [`mapping`] loads a mapping file into compiled,
//! ready-to-run structures; [`route`] is the one routing step (event → row in a partition,
//! or a reject); [`pipeline`] runs the stages on threads; [`journal`] records finished
//! batches for sources that replay after a crash.

pub(crate) mod batch;
pub mod commands;
pub mod durable;
pub mod encode;
pub mod expr;
pub mod init;
pub mod journal;
pub mod json;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod migrate;
pub(crate) mod names;
pub mod naming;
pub(crate) mod output_file;
pub(crate) mod partition;
pub mod pipeline;
pub mod preview;
pub mod probe;
pub mod route;
pub mod sink;
pub mod source;
pub mod spanned;
pub mod state;
pub(crate) mod suggest;
pub(crate) mod text;
pub mod trigger;
pub mod value;
