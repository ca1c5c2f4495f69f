//! Destination settings (`settings:`): where files go and how they get there.

use std::env::VarError;
use std::fmt;
use std::path::PathBuf;

use super::diag::Diagnostic;
use super::keys::{Reader, check_keys};
use crate::names::named_enum;
use crate::spanned::{Mark, SNode, SValue};

/// A value that must never be printed: external IDs, keys, tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it (the STS request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

pub const SETTINGS_KEYS: &[&str] = &[
    "s3_aws_bucket_name",
    "s3_aws_region",
    "iam_role_arn",
    "iam_external_id",
    "endpoint_url",
    "intermediate_role_arn",
    "intermediate_external_id",
    "server_side_encryption",
    "ssekms_key_id",
    "acl",
    "storage_class",
    "tags",
    "upload_concurrency",
    "requests_per_second",
    "open_batch_buffer_mb",
    "multipart_threshold_mb",
    "multipart_part_size_mb",
    "max_retries",
    "outbox_dir",
    "spool_max_bytes",
    "dedupe_window",
    "dedupe_max_ids",
    "role_session_name",
    "role_session_duration_seconds",
    "source_id",
    "archive",
    "state_dir",
    "kafka",
];

named_enum! {
    /// `acl`: the canned ACL of uploaded objects (S3's names).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Acl in ACLS {
        Private = "private",
        PublicRead = "public-read",
        PublicReadWrite = "public-read-write",
        AuthenticatedRead = "authenticated-read",
        AwsExecRead = "aws-exec-read",
        BucketOwnerRead = "bucket-owner-read",
        BucketOwnerFullControl = "bucket-owner-full-control",
    }
}

named_enum! {
    /// `storage_class`: the storage class of uploaded objects (S3's names).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum StorageClass in STORAGE_CLASSES {
        Standard = "STANDARD",
        ReducedRedundancy = "REDUCED_REDUNDANCY",
        StandardIa = "STANDARD_IA",
        OnezoneIa = "ONEZONE_IA",
        IntelligentTiering = "INTELLIGENT_TIERING",
        Glacier = "GLACIER",
        DeepArchive = "DEEP_ARCHIVE",
        GlacierIr = "GLACIER_IR",
        ExpressOnezone = "EXPRESS_ONEZONE",
    }
}

/// Why a setting's value was refused. Each displays as the message the mapping file gets.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("unclosed ${{ in value")]
    UnclosedReference,
    #[error("${{{name}}} is not a valid environment variable reference")]
    InvalidReference { name: String },
    /// Only matters when uploading: local runs are not stopped by it.
    #[error("environment variable {name} is not set")]
    UnsetVariable {
        name: String,
        #[source]
        source: VarError,
    },
    #[error("{name:?} is a URI or ARN; give the bucket name only (e.g. \"acme-events\")")]
    BucketIsUri { name: String },
    #[error("bucket names are 3 to 63 characters long ({name:?} has {len})")]
    BucketLength { name: String, len: usize },
    #[error(
        "bucket names use lowercase letters, digits, dots and hyphens only ({name:?} has {found:?})"
    )]
    BucketCharacter { name: String, found: char },
    #[error("bucket names begin and end with a letter or digit ({name:?})")]
    BucketEdge { name: String },
    #[error("bucket names cannot contain two adjacent dots ({name:?})")]
    BucketAdjacentDots { name: String },
    #[error("bucket names cannot be IP addresses ({name:?})")]
    BucketIpAddress { name: String },
    #[error("{name:?} uses a prefix or suffix S3 reserves")]
    BucketReserved { name: String },
    #[error("{arn:?} is not an IAM role ARN; expected arn:aws:iam::<12-digit account>:role/<name>")]
    NotRoleArn { arn: String },
    #[error("{arn:?}: the account ID must be 12 digits")]
    AccountId { arn: String },
    #[error("{arn:?}: invalid role name")]
    RoleName { arn: String },
    #[error("{region:?} is not an AWS region name (e.g. us-east-1)")]
    Region { region: String },
}

/// Where `${NAME}` references are looked up: [`process_env`], or a table in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

/// The process environment, as an [`EnvLookup`].
pub fn process_env(name: &str) -> Result<String, VarError> {
    std::env::var(name)
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<Secret>,
    pub endpoint_url: Option<String>,
    pub intermediate_role_arn: Option<String>,
    pub intermediate_external_id: Option<Secret>,
    pub server_side_encryption: Option<String>,
    pub ssekms_key_id: Option<String>,
    pub acl: Option<Acl>,
    pub storage_class: Option<StorageClass>,
    pub tags: Vec<(String, String)>,
    pub upload_concurrency: usize,
    pub requests_per_second: u32,
    /// Write buffer shared by all open batches (`open_batch_buffer_mb`), in bytes.
    pub open_batch_buffer_bytes: usize,
    pub multipart_threshold_bytes: u64,
    pub multipart_part_size_bytes: u64,
    pub max_retries: u32,
    pub outbox_dir: Option<PathBuf>,
    /// `spool_max_bytes`: the size of serve's spool at which requests are refused (503).
    pub spool_max_bytes: u64,
    /// `dedupe_window`: serve drops events whose `messageId` it accepted this recently
    /// (24 hours, as Segment's API; `off`: none).
    pub dedupe_window: Option<std::time::Duration>,
    /// `dedupe_max_ids`: ids remembered for the window at most (memory stays bounded).
    pub dedupe_max_ids: u64,
    pub role_session_name: String,
    pub role_session_duration_seconds: u32,
    /// `source_id`: what `{{source_id}}` renders in folder and filename templates.
    pub source_id: Option<String>,
    /// `archive:`: how `s3://` inputs are read, when not with these settings.
    pub archive: Option<super::archive::ArchiveSettings>,
    /// `state_dir`: where sources keep state between runs (`retl` snapshots).
    pub state_dir: Option<PathBuf>,
    /// `kafka`: librdkafka settings for `consume` (values may hold passwords: never shown).
    pub kafka: Vec<(String, Secret)>,
    /// Where the settings block is, for messages about missing values.
    pub mark: Mark,
    /// Settings that read an environment variable that is not set. They only matter when
    /// uploading (local runs never use them), so they are reported then.
    pub unresolved: Vec<Diagnostic>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bucket: None,
            region: None,
            role_arn: None,
            external_id: None,
            endpoint_url: None,
            intermediate_role_arn: None,
            intermediate_external_id: None,
            server_side_encryption: None,
            ssekms_key_id: None,
            acl: None,
            storage_class: None,
            tags: Vec::new(),
            kafka: Vec::new(),
            upload_concurrency: 8,
            requests_per_second: 3500,
            open_batch_buffer_bytes: 64 * 1024 * 1024,
            multipart_threshold_bytes: 16 * 1024 * 1024,
            multipart_part_size_bytes: 8 * 1024 * 1024,
            max_retries: 8,
            outbox_dir: None,
            spool_max_bytes: crate::source::spool::DEFAULT_MAX_BYTES,
            dedupe_window: Some(crate::source::spool::DEFAULT_DEDUPE_WINDOW),
            dedupe_max_ids: crate::source::spool::DEFAULT_DEDUPE_MAX_IDS,
            role_session_name: "s3actions".into(),
            role_session_duration_seconds: 3600,
            source_id: None,
            archive: None,
            state_dir: None,
            mark: Mark::default(),
            unresolved: Vec::new(),
        }
    }
}

/// Replaces `${NAME}` with the environment variable NAME.
pub fn interpolate_env(s: &str) -> Result<String, SettingsError> {
    interpolate_env_with(s, &process_env)
}

/// Replaces `${NAME}` with what `env` gives for NAME.
pub fn interpolate_env_with(s: &str, env: EnvLookup<'_>) -> Result<String, SettingsError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SettingsError::UnclosedReference);
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(SettingsError::InvalidReference { name: name.into() });
        }
        match env(name) {
            Ok(v) => out.push_str(&v),
            Err(source) => {
                return Err(SettingsError::UnsetVariable {
                    name: name.into(),
                    source,
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// S3 bucket naming rules (general purpose buckets).
pub fn check_bucket_name(name: &str) -> Result<(), SettingsError> {
    let owned = || name.to_string();
    if name.contains("://") || name.starts_with("arn:") {
        return Err(SettingsError::BucketIsUri { name: owned() });
    }
    if !(3..=63).contains(&name.len()) {
        return Err(SettingsError::BucketLength {
            name: owned(),
            len: name.len(),
        });
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(SettingsError::BucketCharacter {
            name: owned(),
            found: c,
        });
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(SettingsError::BucketEdge { name: owned() });
    }
    if name.contains("..") {
        return Err(SettingsError::BucketAdjacentDots { name: owned() });
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(SettingsError::BucketIpAddress { name: owned() });
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return Err(SettingsError::BucketReserved { name: owned() });
    }
    Ok(())
}

/// `arn:aws:iam::<12 digits>:role/<name>` (other AWS partitions accepted).
pub fn check_role_arn(arn: &str) -> Result<(), SettingsError> {
    let bad = || SettingsError::NotRoleArn { arn: arn.into() };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "iam"
        || !parts[3].is_empty()
    {
        return Err(bad());
    }
    if parts[4].len() != 12 || !parts[4].chars().all(|c| c.is_ascii_digit()) {
        return Err(SettingsError::AccountId { arn: arn.into() });
    }
    let Some(name) = parts[5].strip_prefix("role/") else {
        return Err(bad());
    };
    let role = name.rsplit('/').next().unwrap_or("");
    if role.is_empty()
        || role.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    {
        return Err(SettingsError::RoleName { arn: arn.into() });
    }
    Ok(())
}

fn check_region(region: &str) -> Result<(), SettingsError> {
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.contains('-');
    if ok {
        Ok(())
    } else {
        Err(SettingsError::Region {
            region: region.into(),
        })
    }
}

pub(crate) fn load(
    node: Option<&SNode>,
    env_lookup: EnvLookup<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Settings {
    let mut s = Settings::default();
    let Some(node) = node else {
        return s;
    };
    s.mark = node.mark;
    let SValue::Object(members) = &node.value else {
        diags.push(Diagnostic::error(
            "settings",
            node.mark,
            format!(
                "should be a mapping of settings, but it is {}",
                node.type_name()
            ),
        ));
        return s;
    };
    check_keys(members, SETTINGS_KEYS, "settings", diags);
    s.archive = node
        .get("archive")
        .map(|a| super::archive::load(a, env_lookup, diags));
    let mut unresolved = Vec::new();
    let mut r = Reader::new("settings", node, diags);
    let mut env = |r: &mut Reader, key: &str| -> Option<(String, Mark)> {
        let (v, mark) = r.string(key)?;
        match interpolate_env_with(&v, env_lookup) {
            Ok(v) => Some((v, mark)),
            Err(e @ SettingsError::UnsetVariable { .. }) => {
                let message =
                    format!("{e} (needed to upload to S3; local runs with --out do not use it)");
                unresolved.push(Diagnostic::error(r.at(key), mark, message.clone()));
                r.warn(key, mark, message);
                None
            }
            Err(e) => {
                r.error(key, mark, e.to_string());
                None
            }
        }
    };
    if let Some((b, mark)) = env(&mut r, "s3_aws_bucket_name") {
        match check_bucket_name(&b) {
            Ok(()) => s.bucket = Some(b),
            Err(e) => r.error("s3_aws_bucket_name", mark, e.to_string()),
        }
    }
    if let Some((v, mark)) = env(&mut r, "s3_aws_region") {
        match check_region(&v) {
            Ok(()) => s.region = Some(v),
            Err(e) => r.error("s3_aws_region", mark, e.to_string()),
        }
    }
    for (key, slot) in [
        ("iam_role_arn", &mut s.role_arn),
        ("intermediate_role_arn", &mut s.intermediate_role_arn),
    ] {
        if let Some((v, mark)) = env(&mut r, key) {
            match check_role_arn(&v) {
                Ok(()) => *slot = Some(v),
                Err(e) => r.error(key, mark, e.to_string()),
            }
        }
    }
    s.external_id = env(&mut r, "iam_external_id").map(|(v, _)| Secret(v));
    s.intermediate_external_id = env(&mut r, "intermediate_external_id").map(|(v, _)| Secret(v));
    if let Some((v, mark)) = env(&mut r, "endpoint_url") {
        if v.starts_with("http://") || v.starts_with("https://") {
            s.endpoint_url = Some(v);
        } else {
            r.error(
                "endpoint_url",
                mark,
                format!("{v:?} should be an http:// or https:// URL"),
            );
        }
    }
    if let Some((v, mark)) = env(&mut r, "server_side_encryption") {
        if v == "AES256" || v == "aws:kms" {
            s.server_side_encryption = Some(v);
        } else {
            r.error(
                "server_side_encryption",
                mark,
                format!("should be \"AES256\" or \"aws:kms\", not {v:?}"),
            );
        }
    }
    s.ssekms_key_id = env(&mut r, "ssekms_key_id").map(|(v, _)| v);
    if let Some((v, mark)) = env(&mut r, "acl") {
        match v.parse() {
            Ok(acl) => s.acl = Some(acl),
            Err(e) => r.error("acl", mark, e.to_string()),
        }
    }
    if let Some((v, mark)) = env(&mut r, "storage_class") {
        match v.parse() {
            Ok(class) => s.storage_class = Some(class),
            Err(e) => r.error("storage_class", mark, e.to_string()),
        }
    }
    if let Some(block) = node.get("kafka") {
        match &block.value {
            SValue::Object(m) => {
                for (k, _, v) in m {
                    let text = match &v.value {
                        SValue::String(t) => t.clone(),
                        SValue::Number(n) => crate::json::js_number_to_string(*n),
                        SValue::Bool(b) => b.to_string(),
                        _ => {
                            r.error("kafka", v.mark, format!("{k:?} should have a text value"));
                            continue;
                        }
                    };
                    match interpolate_env_with(&text, env_lookup) {
                        Ok(t) => s.kafka.push((k.clone(), Secret(t))),
                        Err(e) => r.error("kafka", v.mark, format!("{k:?}: {e}")),
                    }
                }
            }
            _ => r.error(
                "kafka",
                block.mark,
                "should be a mapping of librdkafka settings to values",
            ),
        }
    }
    if let Some(tags) = node.get("tags") {
        match &tags.value {
            SValue::Object(m) => {
                for (k, _, v) in m {
                    match &v.value {
                        SValue::String(t) => s.tags.push((k.clone(), t.clone())),
                        SValue::Number(n) => s
                            .tags
                            .push((k.clone(), crate::json::js_number_to_string(*n))),
                        SValue::Bool(b) => s.tags.push((k.clone(), b.to_string())),
                        _ => r.error(
                            "tags",
                            v.mark,
                            format!("tag {k:?} should have a text value"),
                        ),
                    }
                }
            }
            _ => r.error(
                "tags",
                tags.mark,
                "should be a mapping of tag names to values",
            ),
        }
    }
    if let Some(n) = r.integer("upload_concurrency", 1, 256) {
        s.upload_concurrency = n as usize;
    }
    if let Some(n) = r.integer("requests_per_second", 1, 100_000) {
        s.requests_per_second = n as u32;
    }
    if let Some(n) = r.integer("open_batch_buffer_mb", 1, 65_536) {
        s.open_batch_buffer_bytes = n as usize * 1024 * 1024;
    }
    if let Some(n) = r.integer("multipart_threshold_mb", 5, 5 * 1024 * 1024) {
        s.multipart_threshold_bytes = n * 1024 * 1024;
    }
    if let Some(n) = r.integer("multipart_part_size_mb", 5, 5 * 1024) {
        s.multipart_part_size_bytes = n * 1024 * 1024;
    }
    if let Some(n) = r.integer("max_retries", 0, 100) {
        s.max_retries = n as u32;
    }
    if let Some((v, _)) = env(&mut r, "outbox_dir") {
        s.outbox_dir = Some(PathBuf::from(v));
    }
    if let Some(n) = r.integer("spool_max_bytes", 4096, 1 << 50) {
        s.spool_max_bytes = n;
    }
    if let Some((v, mark)) = r.string("dedupe_window") {
        match parse_window(&v) {
            Some(d) => s.dedupe_window = Some(d),
            None if v.trim() == "off" => s.dedupe_window = None,
            None => r.error(
                "dedupe_window",
                mark,
                format!(
                    "should be a duration from 1s to 7d such as 24h, 30m or 90s, or off, not {v:?}"
                ),
            ),
        }
    }
    if let Some(n) = r.integer("dedupe_max_ids", 1000, 1 << 32) {
        s.dedupe_max_ids = n;
    }
    if let Some((v, _)) = env(&mut r, "state_dir") {
        s.state_dir = Some(PathBuf::from(v));
    }
    if let Some((v, mark)) = env(&mut r, "role_session_name") {
        if (2..=64).contains(&v.len())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        {
            s.role_session_name = v;
        } else {
            r.error(
                "role_session_name",
                mark,
                "should be 2 to 64 characters: letters, digits and +=,.@-_",
            );
        }
    }
    if let Some(n) = r.integer("role_session_duration_seconds", 900, 43_200) {
        s.role_session_duration_seconds = n as u32;
    }
    if let Some((v, mark)) = env(&mut r, "source_id") {
        if !v.is_empty() && !v.contains(['/', '\\']) && !v.chars().any(char::is_control) {
            s.source_id = Some(v);
        } else {
            r.error(
                "source_id",
                mark,
                "should be a source id (no '/', not empty), as Segment's folders name it",
            );
        }
    }
    s.unresolved = unresolved;
    if s.role_arn.is_some() && s.external_id.is_none() && node.get("iam_external_id").is_none() {
        r.error("iam_external_id", node.mark, "is required with iam_role_arn: the role's trust policy should require it (use ${VAR} to read it from the environment)");
    }
    if s.intermediate_role_arn.is_some()
        && s.intermediate_external_id.is_none()
        && node.get("intermediate_external_id").is_none()
    {
        r.error(
            "intermediate_external_id",
            node.mark,
            "is required with intermediate_role_arn",
        );
    }
    if s.ssekms_key_id.is_some() && s.server_side_encryption.as_deref() != Some("aws:kms") {
        r.error(
            "ssekms_key_id",
            node.mark,
            "only applies with server_side_encryption: aws:kms",
        );
    }
    s
}

impl Settings {
    /// Everything uploading needs: a bucket, a region, and every `${VAR}` resolved.
    pub fn check_for_upload(&self) -> Result<(), Vec<Diagnostic>> {
        let mut problems = self.unresolved.clone();
        if self.bucket.is_none()
            && !problems
                .iter()
                .any(|d| d.location.ends_with("s3_aws_bucket_name"))
        {
            problems.push(Diagnostic::error(
                "settings.s3_aws_bucket_name",
                self.mark,
                "is required to upload (the bucket name, e.g. acme-events)",
            ));
        }
        if self.region.is_none()
            && !problems
                .iter()
                .any(|d| d.location.ends_with("s3_aws_region"))
        {
            problems.push(Diagnostic::error(
                "settings.s3_aws_region",
                self.mark,
                "is required to upload (e.g. us-east-1)",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// `24h`, `30m`, `90s`, `2d`: from one second to seven days.
pub(crate) fn parse_window(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (1..=7 * 86_400)
        .contains(&secs)
        .then(|| std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("acme-events").is_ok());
        assert!(check_bucket_name("a.b-c1").is_ok());
        for bad in [
            "ab",
            "Acme",
            "s3://acme",
            "acme_events",
            "-acme",
            "acme-",
            "a..b",
            "192.168.1.1",
            &"a".repeat(64),
            "xn--abc",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_arns() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/s3-actions-writer").is_ok());
        assert!(check_role_arn("arn:aws:iam::123456789012:role/path/to/Role+=,.@_-").is_ok());
        for bad in [
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "role/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dedupe_windows() {
        assert_eq!(
            parse_window("24h"),
            Some(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_window("90s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_window("7d"),
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        for bad in ["8d", "0s", "h", "24", "1.5h", "-1h", "24 h"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }

    /// Segment's 24 hours by default; `off` turns de-duplication off; anything else is an
    /// error naming the key.
    #[test]
    fn dedupe_is_on_by_default_and_can_be_turned_off() {
        let load =
            |yaml: &str| crate::mapping::Config::from_str(yaml, std::path::Path::new("m.yaml"));
        let mapping = "mappings:\n  - name: m\n    trigger: 'type = \"track\"'\n";
        let c = load(mapping).unwrap();
        assert_eq!(
            c.settings.dedupe_window,
            Some(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(c.settings.dedupe_max_ids, 2_000_000);
        let c = load(&format!(
            "settings:\n  dedupe_window: \"off\"\n  dedupe_max_ids: 5000\n{mapping}"
        ))
        .unwrap();
        assert_eq!(c.settings.dedupe_window, None);
        assert_eq!(c.settings.dedupe_max_ids, 5000);
        let e = load(&format!("settings:\n  dedupe_window: never\n{mapping}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dedupe_window") && e.contains("or off"), "{e}");
    }

    #[test]
    fn env_interpolation() {
        let env = |name: &str| match name {
            "S3ACTIONS_TEST_VAR" => Ok("xyz".to_string()),
            _ => Err(VarError::NotPresent),
        };
        assert_eq!(
            interpolate_env_with("a-${S3ACTIONS_TEST_VAR}-b", &env).unwrap(),
            "a-xyz-b"
        );
        let unset = interpolate_env_with("${S3ACTIONS_SURELY_UNSET_VAR}", &env).unwrap_err();
        assert!(matches!(unset, SettingsError::UnsetVariable { .. }));
        assert_eq!(
            unset.to_string(),
            "environment variable S3ACTIONS_SURELY_UNSET_VAR is not set"
        );
        assert!(matches!(
            interpolate_env_with("${1X}", &env),
            Err(SettingsError::InvalidReference { .. })
        ));
        assert_eq!(
            interpolate_env_with("a${b", &env).unwrap_err().to_string(),
            "unclosed ${ in value"
        );
        // The process environment, read without changing it.
        assert_eq!(interpolate_env("no references").unwrap(), "no references");
        assert_eq!(
            format!("{:?} {}", Secret::new("shh"), Secret::new("shh")),
            "Secret(***) ***"
        );
    }

    #[test]
    fn acls_and_storage_classes() {
        for &(acl, name) in ACLS {
            assert_eq!(name.parse::<Acl>(), Ok(acl));
        }
        assert_eq!(
            "nope".parse::<Acl>().unwrap_err().to_string(),
            "should be one of private, public-read, public-read-write, authenticated-read, \
             aws-exec-read, bucket-owner-read, bucket-owner-full-control, not \"nope\""
        );
        assert_eq!(StorageClass::GlacierIr.name(), "GLACIER_IR");
        assert_eq!(StorageClass::parse("standard"), None);
    }
}
