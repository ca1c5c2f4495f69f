//! Temporary credentials from STS AssumeRole, with the external ID, cached and refreshed.
//!
//! The customer's role is assumed with credentials from the standard AWS chain (or, with
//! role chaining, with an intermediate role's credentials first), exactly as Segment's
//! destination does. Credentials are kept until shortly before they expire, so a run
//! longer than the session duration keeps working, and STS is not called per file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use super::errors::{UploadError, source_chain};
use crate::mapping::Secret;

/// One assumable role.
pub struct RoleSession {
    role_arn: String,
    external_id: Option<Secret>,
    session_name: String,
    duration_seconds: u32,
    sts: aws_sdk_sts::Client,
    /// Refresh when the credentials expire within this margin.
    refresh_margin: Duration,
    cached: tokio::sync::Mutex<Option<Credentials>>,
    assumed: AtomicU64,
}

impl std::fmt::Debug for RoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleSession")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

impl RoleSession {
    /// `config` provides the credentials the role is assumed with.
    pub fn new(
        config: &aws_config::SdkConfig,
        role_arn: &str,
        external_id: Option<Secret>,
        session_name: &str,
        duration_seconds: u32,
        refresh_margin: Duration,
    ) -> RoleSession {
        RoleSession {
            role_arn: role_arn.to_string(),
            external_id,
            session_name: session_name.to_string(),
            duration_seconds,
            sts: aws_sdk_sts::Client::new(config),
            refresh_margin,
            cached: tokio::sync::Mutex::new(None),
            assumed: AtomicU64::new(0),
        }
    }

    pub fn role_arn(&self) -> &str {
        &self.role_arn
    }

    /// How many times STS AssumeRole succeeded (for tests and logs).
    pub fn assume_count(&self) -> u64 {
        self.assumed.load(Ordering::Relaxed)
    }

    /// Current credentials, assuming the role again when they are missing or about to expire.
    pub async fn credentials(&self) -> Result<Credentials, UploadError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|exp| exp > SystemTime::now() + self.refresh_margin);
            if fresh {
                return Ok(c.clone());
            }
            tracing::info!(role = %self.role_arn, "role credentials are about to expire; assuming the role again");
        }
        let c = self.assume(self.external_id.as_ref()).await?;
        *cached = Some(c.clone());
        Ok(c)
    }

    async fn assume(&self, external_id: Option<&Secret>) -> Result<Credentials, UploadError> {
        let mut req = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .duration_seconds(self.duration_seconds as i32);
        if let Some(id) = external_id {
            req = req.external_id(id.expose());
        }
        match req.send().await {
            Ok(out) => {
                let Some(c) = out.credentials() else {
                    return Err(UploadError::AssumeRoleFailed {
                        role: self.role_arn.clone(),
                        detail: "STS returned no credentials".into(),
                        retryable: true,
                    });
                };
                self.assumed.fetch_add(1, Ordering::Relaxed);
                let expiry = SystemTime::try_from(*c.expiration()).ok();
                tracing::debug!(role = %self.role_arn, "assumed role");
                Ok(Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    expiry,
                    "s3actions-assume-role",
                ))
            }
            Err(e) => Err(self.explain(e, external_id.is_some()).await),
        }
    }

    async fn explain<E>(
        &self,
        err: SdkError<E, aws_sdk_sts::config::http::HttpResponse>,
        with_external_id: bool,
    ) -> UploadError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let role = self.role_arn.clone();
        // The status comes from the raw response: some STS-compatible servers wrap error
        // bodies so that the code cannot be parsed.
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_string);
        let chain = source_chain(&err);
        if chain.contains("no providers in chain provided credentials")
            || chain.contains("failed to load credentials") && status.is_none()
        {
            return UploadError::NoCredentials { detail: chain };
        }
        match (code.as_deref(), status) {
            (
                Some(
                    "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "ExpiredTokenException",
                ),
                _,
            ) => UploadError::InvalidCredentials {
                detail: format!("STS {}", code.unwrap_or_default()),
            },
            (Some("AccessDenied" | "AccessDeniedException"), _) | (None, Some(403)) => {
                let caller = self.caller().await;
                // Tell a trust-policy refusal from an external-ID mismatch: if the role can be
                // assumed without the external ID, only the ID is wrong.
                let reason = if with_external_id && Box::pin(self.assume(None)).await.is_ok() {
                    format!(
                        "the external ID does not match the sts:ExternalId condition of the role's trust policy (the role can be assumed by {caller} without one). Use the external ID the trust policy names in settings.iam_external_id, and make the trust policy require it"
                    )
                } else if with_external_id {
                    format!(
                        "access denied. The role's trust policy must allow {caller} (Principal) with an sts:ExternalId condition equal to settings.iam_external_id, and {caller} must be allowed sts:AssumeRole on {role}"
                    )
                } else {
                    format!(
                        "access denied. The role's trust policy must allow {caller} (Principal), and {caller} must be allowed sts:AssumeRole on {role}"
                    )
                };
                UploadError::AssumeRoleDenied { role, reason }
            }
            (Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded"), _)
            | (_, Some(429)) => UploadError::AssumeRoleFailed {
                role,
                detail: "STS is throttling requests".into(),
                retryable: true,
            },
            (_, Some(s)) if s >= 500 => UploadError::AssumeRoleFailed {
                role,
                detail: format!("STS server error (HTTP {s})"),
                retryable: true,
            },
            (_, None) => UploadError::AssumeRoleFailed {
                role,
                detail: format!("could not reach STS: {chain}"),
                retryable: true,
            },
            (c, Some(s)) => UploadError::AssumeRoleFailed {
                role,
                detail: format!("HTTP {s}{}", c.map(|c| format!(" {c}")).unwrap_or_default()),
                retryable: false,
            },
        }
    }

    /// The ARN of the identity calling STS, for messages.
    async fn caller(&self) -> String {
        match self.sts.get_caller_identity().send().await {
            Ok(id) => id.arn().unwrap_or("the caller").to_string(),
            Err(_) => "the caller".to_string(),
        }
    }
}

/// `RoleSession` as an SDK credentials provider.
#[derive(Clone, Debug)]
pub struct RoleProvider(pub Arc<RoleSession>);

impl ProvideCredentials for RoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}
