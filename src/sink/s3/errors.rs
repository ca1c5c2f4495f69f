//! S3 and STS failures turned into messages a user can act on.
//!
//! Each variant says what went wrong and what to change; `retryable()` decides whether the
//! uploader tries again (throttling, server errors, network) or gives up at once
//! (permissions, missing bucket, bad credentials). Secrets never appear in these messages.

use aws_sdk_s3::config::http::HttpResponse as Response;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error(
        "no AWS credentials found to start from: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use a profile (AWS_PROFILE), or run where web identity, container or instance credentials are available ({detail})"
    )]
    NoCredentials { detail: String },
    #[error("cannot assume role {role}: {reason}")]
    AssumeRoleDenied { role: String, reason: String },
    #[error("cannot assume role {role}: {detail}")]
    AssumeRoleFailed {
        role: String,
        detail: String,
        retryable: bool,
    },
    #[error(
        "{principal} is not allowed {action} on {resource}: add {action} for {resource} to {fix} ({detail})"
    )]
    AccessDenied {
        principal: String,
        action: String,
        resource: String,
        fix: String,
        detail: String,
    },
    #[error(
        "bucket {bucket:?} does not exist (or is not visible to these credentials): check settings.s3_aws_bucket_name"
    )]
    NoSuchBucket { bucket: String },
    #[error(
        "bucket {bucket:?} is not in region {region}: set settings.s3_aws_region to the bucket's region ({detail})"
    )]
    WrongRegion {
        bucket: String,
        region: String,
        detail: String,
    },
    #[error(
        "the AWS credentials were rejected ({detail}): check the access key, secret and session token the credential chain provides"
    )]
    InvalidCredentials { detail: String },
    #[error(
        "S3 is throttling requests ({detail}); lower settings.requests_per_second or settings.upload_concurrency, or spread keys over more prefixes"
    )]
    Throttled { detail: String },
    #[error("S3 returned a server error ({detail})")]
    Server { detail: String },
    #[error("network error talking to S3 ({detail})")]
    Network { detail: String },
    #[error("no object s3://{bucket}/{key} (a prefix to read every object under ends with /)")]
    NoSuchKey { bucket: String, key: String },
    #[error("object {key:?} already exists")]
    AlreadyExists { key: String },
    #[error("cannot read the local file {path}: {detail}")]
    LocalFile { path: String, detail: String },
    #[error("S3 request failed: {detail}")]
    Other { detail: String },
}

impl UploadError {
    /// Whether trying again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            UploadError::Throttled { .. }
            | UploadError::Server { .. }
            | UploadError::Network { .. } => true,
            UploadError::AssumeRoleFailed { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// What was being done, for messages.
pub struct Context<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    pub key: &'a str,
    /// The identity uploading: the role ARN, or "these credentials".
    pub principal: &'a str,
    pub role: Option<&'a str>,
    pub action: &'a str,
}

fn detail(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = status {
        parts.push(format!("HTTP {s}"));
    }
    if let Some(c) = code {
        parts.push(c.to_string());
    }
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        parts.push(m.to_string());
    }
    if parts.is_empty() {
        "no details".into()
    } else {
        parts.join(": ")
    }
}

/// Classifies a failed S3 request.
pub fn classify_s3<E>(err: &SdkError<E, Response>, ctx: &Context<'_>) -> UploadError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => UploadError::Network {
            detail: "request timed out".into(),
        },
        SdkError::DispatchFailure(_) => UploadError::Network {
            detail: source_chain(err),
        },
        SdkError::ResponseError(_) => UploadError::Network {
            detail: format!("unreadable response: {}", source_chain(err)),
        },
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code();
            let message = se.err().message();
            classify_code(code, message, Some(status), ctx)
        }
        _ => UploadError::Other {
            detail: source_chain(err),
        },
    }
}

pub fn classify_code(
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    ctx: &Context<'_>,
) -> UploadError {
    let d = detail(code, message, status);
    match code.unwrap_or("") {
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => access_denied(ctx, d),
        "NoSuchBucket" => UploadError::NoSuchBucket {
            bucket: ctx.bucket.into(),
        },
        "NoSuchKey" => UploadError::NoSuchKey {
            bucket: ctx.bucket.into(),
            key: ctx.key.into(),
        },
        "PermanentRedirect" | "TemporaryRedirect" | "IllegalLocationConstraintException" => {
            UploadError::WrongRegion {
                bucket: ctx.bucket.into(),
                region: ctx.region.into(),
                detail: d,
            }
        }
        "AuthorizationHeaderMalformed" if d.contains("region") => UploadError::WrongRegion {
            bucket: ctx.bucket.into(),
            region: ctx.region.into(),
            detail: d,
        },
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken"
        | "ExpiredToken"
        | "TokenRefreshRequired"
        | "InvalidClientTokenId"
        | "AuthorizationHeaderMalformed"
        | "RequestExpired" => UploadError::InvalidCredentials { detail: d },
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequests"
        | "TooManyRequestsException" => UploadError::Throttled { detail: d },
        "PreconditionFailed" | "ConditionalRequestConflict" => UploadError::AlreadyExists {
            key: ctx.key.into(),
        },
        "InternalError" | "ServiceUnavailable" | "RequestTimeout" => {
            UploadError::Server { detail: d }
        }
        _ => match status {
            Some(412) => UploadError::AlreadyExists {
                key: ctx.key.into(),
            },
            Some(429) | Some(503) => UploadError::Throttled { detail: d },
            Some(s) if s >= 500 => UploadError::Server { detail: d },
            Some(301) => UploadError::WrongRegion {
                bucket: ctx.bucket.into(),
                region: ctx.region.into(),
                detail: d,
            },
            Some(403) => access_denied(ctx, d),
            Some(404) if ctx.action != "s3:GetObject" => UploadError::NoSuchBucket {
                bucket: ctx.bucket.into(),
            },
            Some(404) => UploadError::NoSuchKey {
                bucket: ctx.bucket.into(),
                key: ctx.key.into(),
            },
            _ => UploadError::Other { detail: d },
        },
    }
}

fn access_denied(ctx: &Context<'_>, detail: String) -> UploadError {
    let resource = if ctx.key.is_empty() {
        format!("arn:aws:s3:::{}", ctx.bucket)
    } else {
        format!("arn:aws:s3:::{}/{}", ctx.bucket, ctx.key)
    };
    UploadError::AccessDenied {
        principal: ctx.principal.to_string(),
        action: ctx.action.to_string(),
        resource,
        fix: match ctx.role {
            Some(r) => format!("the permissions policy of role {r}"),
            None => "the identity's IAM policy".into(),
        },
        detail,
    }
}

/// The error and its causes on one line.
pub fn source_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            bucket: "b",
            region: "us-east-1",
            key: "k/x.csv",
            principal: "role arn:aws:iam::123456789012:role/w",
            role: Some("arn:aws:iam::123456789012:role/w"),
            action: "s3:PutObject",
        }
    }

    #[test]
    fn classification() {
        let c = ctx();
        let e = classify_code(Some("AccessDenied"), Some("denied"), Some(403), &c);
        assert!(!e.retryable());
        assert!(
            e.to_string()
                .contains("s3:PutObject on arn:aws:s3:::b/k/x.csv"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("permissions policy of role arn:aws:iam::123456789012:role/w")
        );
        assert!(classify_code(Some("SlowDown"), None, Some(503), &c).retryable());
        assert!(classify_code(None, None, Some(500), &c).retryable());
        assert!(classify_code(None, None, Some(429), &c).retryable());
        assert!(matches!(
            classify_code(Some("NoSuchBucket"), None, Some(404), &c),
            UploadError::NoSuchBucket { .. }
        ));
        assert!(matches!(
            classify_code(Some("PermanentRedirect"), None, Some(301), &c),
            UploadError::WrongRegion { .. }
        ));
        assert!(matches!(
            classify_code(Some("InvalidAccessKeyId"), None, Some(403), &c),
            UploadError::InvalidCredentials { .. }
        ));
        assert!(matches!(
            classify_code(None, None, Some(412), &c),
            UploadError::AlreadyExists { .. }
        ));
    }
}
