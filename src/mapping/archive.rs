//! `settings.archive`: where `replay ... s3://...` reads from, when the archive is not
//! reachable with the upload settings (another account, region or endpoint).

use super::diag::Diagnostic;
use super::keys::{Reader, check_keys};
use super::settings::{
    EnvLookup, Secret, Settings, SettingsError, check_role_arn, interpolate_env_with,
};
use crate::spanned::{Mark, SNode, SValue};

pub const ARCHIVE_KEYS: &[&str] = &[
    "s3_aws_region",
    "endpoint_url",
    "iam_role_arn",
    "iam_external_id",
    "download_concurrency",
];

/// Objects downloaded ahead in parallel when `download_concurrency` is not given.
pub const DEFAULT_DOWNLOAD_CONCURRENCY: usize = 4;

/// The `archive:` block: each key given replaces the upload setting of the same name for
/// reading the archive.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveSettings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<Secret>,
    pub download_concurrency: usize,
    /// Keys whose `${VAR}` is not set: errors once the archive is read.
    pub unresolved: Vec<Diagnostic>,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            region: None,
            endpoint_url: None,
            role_arn: None,
            external_id: None,
            download_concurrency: DEFAULT_DOWNLOAD_CONCURRENCY,
            unresolved: Vec::new(),
        }
    }
}

/// Reads `settings.archive`.
pub(crate) fn load(
    node: &SNode,
    env_lookup: EnvLookup<'_>,
    diags: &mut Vec<Diagnostic>,
) -> ArchiveSettings {
    const AT: &str = "settings.archive";
    let mut a = ArchiveSettings::default();
    let SValue::Object(members) = &node.value else {
        diags.push(Diagnostic::error(
            AT,
            node.mark,
            format!(
                "should be a mapping of archive settings ({}), but it is {}",
                ARCHIVE_KEYS.join(", "),
                node.type_name()
            ),
        ));
        return a;
    };
    check_keys(members, ARCHIVE_KEYS, AT, diags);
    let mut unresolved = Vec::new();
    let mut r = Reader::new(AT, node, diags);
    let mut env = |r: &mut Reader, key: &str| -> Option<(String, Mark)> {
        let (v, mark) = r.string(key)?;
        match interpolate_env_with(&v, env_lookup) {
            Ok(v) => Some((v, mark)),
            Err(e @ SettingsError::UnsetVariable { .. }) => {
                let message = format!("{e} (needed to read s3:// inputs)");
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
    a.region = env(&mut r, "s3_aws_region").map(|(v, _)| v);
    if let Some((v, mark)) = env(&mut r, "endpoint_url") {
        if v.starts_with("http://") || v.starts_with("https://") {
            a.endpoint_url = Some(v);
        } else {
            r.error(
                "endpoint_url",
                mark,
                format!("{v:?} should be an http:// or https:// URL"),
            );
        }
    }
    if let Some((v, mark)) = env(&mut r, "iam_role_arn") {
        match check_role_arn(&v) {
            Ok(()) => a.role_arn = Some(v),
            Err(e) => r.error("iam_role_arn", mark, e.to_string()),
        }
    }
    a.external_id = env(&mut r, "iam_external_id").map(|(v, _)| Secret::new(v));
    if let Some(n) = r.integer("download_concurrency", 1, 64) {
        a.download_concurrency = n as usize;
    }
    a.unresolved = unresolved;
    if a.role_arn.is_some() && a.external_id.is_none() && node.get("iam_external_id").is_none() {
        r.error(
            "iam_external_id",
            node.mark,
            "is required with iam_role_arn: the archive role's trust policy should require it (use ${VAR} to read it from the environment)",
        );
    }
    a
}

/// Settings keys the archive client uses when the `archive:` block does not replace them.
const INHERITED: &[&str] = &[
    "s3_aws_region",
    "endpoint_url",
    "iam_role_arn",
    "iam_external_id",
    "intermediate_role_arn",
    "intermediate_external_id",
    "role_session_name",
];

impl Settings {
    /// The settings the archive is read with: these settings with the `archive:` block's
    /// keys in place of theirs (a role named there comes with its own external ID). Every
    /// `${VAR}` they use must be set.
    pub fn for_archive(&self) -> Result<Settings, Vec<Diagnostic>> {
        let a = self.archive.clone().unwrap_or_default();
        let replaced = |key: &str| match key {
            "s3_aws_region" => a.region.is_some(),
            "endpoint_url" => a.endpoint_url.is_some(),
            "iam_role_arn" | "iam_external_id" => a.role_arn.is_some(),
            _ => false,
        };
        let mut problems = a.unresolved.clone();
        problems.extend(
            self.unresolved
                .iter()
                .filter(|d| {
                    INHERITED
                        .iter()
                        .any(|k| d.location == format!("settings.{k}") && !replaced(k))
                })
                .cloned(),
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut s = self.clone();
        if a.region.is_some() {
            s.region = a.region;
        }
        if a.endpoint_url.is_some() {
            s.endpoint_url = a.endpoint_url;
        }
        if a.role_arn.is_some() {
            s.role_arn = a.role_arn;
            s.external_id = a.external_id;
        }
        Ok(s)
    }

    /// Objects of an archive downloaded ahead in parallel.
    pub fn download_concurrency(&self) -> usize {
        self.archive
            .as_ref()
            .map_or(DEFAULT_DOWNLOAD_CONCURRENCY, |a| a.download_concurrency)
    }
}

#[cfg(test)]
mod tests {
    use crate::mapping::Config;
    use std::env::VarError;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, String> {
        let env = |name: &str| match name {
            "ARCHIVE_EXT" => Ok("shh-archive".to_string()),
            _ => Err(VarError::NotPresent),
        };
        Config::from_str_with_env(text, Path::new("m.yaml"), &env).map_err(|e| e.to_string())
    }

    const MAPPINGS: &str = "mappings:\n  - name: m\n";

    #[test]
    fn archive_block_replaces_upload_settings_for_reading() {
        let c = load(&format!(
            "settings:\n  s3_aws_region: us-east-1\n  iam_role_arn: arn:aws:iam::111111111111:role/writer\n  iam_external_id: ${{UPLOAD_EXT}}\n  archive:\n    s3_aws_region: eu-west-1\n    iam_role_arn: arn:aws:iam::222222222222:role/reader\n    iam_external_id: ${{ARCHIVE_EXT}}\n    download_concurrency: 8\n{MAPPINGS}"
        ))
        .unwrap();
        // The upload's external ID is unset, but the archive does not use it.
        let a = c.settings.for_archive().unwrap();
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            a.role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/reader")
        );
        assert_eq!(a.external_id.as_ref().unwrap().expose(), "shh-archive");
        assert_eq!(c.settings.download_concurrency(), 8);
        assert!(!format!("{:?}", c.settings).contains("shh-archive"));
    }

    #[test]
    fn without_a_block_the_upload_settings_are_used_and_must_be_set() {
        let c = load(&format!(
            "settings:\n  iam_role_arn: arn:aws:iam::111111111111:role/writer\n  iam_external_id: ${{UPLOAD_EXT}}\n{MAPPINGS}"
        ))
        .unwrap();
        let problems = c.settings.for_archive().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("UPLOAD_EXT is not set"),
            "{}",
            problems[0]
        );
        assert_eq!(c.settings.download_concurrency(), 4);
    }

    #[test]
    fn archive_block_errors() {
        let e = load(&format!(
            "settings:\n  archive:\n    iam_role_arn: arn:aws:iam::222222222222:role/reader\n    download_concurrency: 0\n    regoin: x\n{MAPPINGS}"
        ))
        .unwrap_err();
        assert!(
            e.contains("settings.archive.iam_external_id: is required"),
            "{e}"
        );
        assert!(
            e.contains("download_concurrency: should be a whole number from 1 to 64"),
            "{e}"
        );
        assert!(e.contains("did you mean \"s3_aws_region\""), "{e}");
        let e = load(&format!("settings:\n  archive: yes\n{MAPPINGS}")).unwrap_err();
        assert!(e.contains("settings.archive: should be a mapping"), "{e}");
    }
}
