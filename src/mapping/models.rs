//! `models:`: warehouse models that `s3actions retl` diffs into `new` / `updated` /
//! `deleted` events (self-hosted Reverse ETL).

use super::diag::Diagnostic;
use super::keys::{Reader, check_keys};
use super::settings::{EnvLookup, Secret, SettingsError, interpolate_env_with};
use crate::spanned::{SNode, SValue};

pub const MODEL_KEYS: &[&str] = &[
    "id",
    "connection",
    "query",
    "identifier",
    "compare_columns",
    "user_id_column",
    "anonymous_id_column",
];

/// One model: a SQL query whose rows are compared with the previous run's by `identifier`.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// `id`: `context.warehouse.model_id` of its events, and the name of its state file.
    pub id: String,
    /// `connection`: `postgres://user@host:port/db` (with `${VAR}` resolved). A password
    /// may be in it, so it is a secret; [`Model::connection_name`] is what messages show.
    pub connection: Option<Secret>,
    pub query: String,
    pub identifier: String,
    /// Columns whose change makes a row `updated` (`None`: all of them).
    pub compare_columns: Option<Vec<String>>,
    pub user_id_column: Option<String>,
    pub anonymous_id_column: Option<String>,
    /// `${VAR}`s of `connection` that are not set: an error when `retl` runs.
    pub unresolved: Vec<Diagnostic>,
}

impl Model {
    /// The connection without its password, for messages.
    pub fn connection_name(&self) -> String {
        self.connection
            .as_ref()
            .map_or_else(String::new, |c| redact_password(c.expose()))
    }
}

/// `scheme://user:password@host/...` → `scheme://user@host/...`; a `password=` parameter is
/// masked too.
pub fn redact_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon..rest_start + at, "");
            }
        }
    }
    if let Some(p) = out.find("password=") {
        let end = out[p..].find('&').map_or(out.len(), |i| p + i);
        out.replace_range(p + "password=".len()..end, "***");
    }
    out
}

/// Reads `models:` (absent: no models).
pub(crate) fn load(
    node: Option<&SNode>,
    env_lookup: EnvLookup<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Model> {
    let Some(node) = node else {
        return Vec::new();
    };
    let SValue::Array(items) = &node.value else {
        diags.push(Diagnostic::error(
            "models",
            node.mark,
            format!(
                "should be a list of models (each starting with `- id:`), but it is {}",
                node.type_name()
            ),
        ));
        return Vec::new();
    };
    let mut models: Vec<Model> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("models[{i}]");
        let SValue::Object(members) = &item.value else {
            diags.push(Diagnostic::error(
                &at,
                item.mark,
                format!(
                    "should be a model (id:, connection:, query:, identifier:), but it is {}",
                    item.type_name()
                ),
            ));
            continue;
        };
        check_keys(members, MODEL_KEYS, &at, diags);
        let mut r = Reader::new(at.clone(), item, diags);
        let required = |r: &mut Reader, key: &str, what: &str| match r.string(key) {
            Some((v, mark)) if v.trim().is_empty() => {
                r.error(key, mark, format!("is empty: give {what}"));
                None
            }
            Some((v, _)) => Some(v),
            None => {
                if r.get(key).is_none() {
                    r.error(key, item.mark, format!("is missing: give {what}"));
                }
                None
            }
        };
        let id = required(&mut r, "id", "the model's id (e.g. mdl_customers)");
        let connection = required(
            &mut r,
            "connection",
            "the warehouse, e.g. postgres://user@host:5432/db (${VAR} for secrets)",
        );
        let query = required(&mut r, "query", "the SQL query whose rows are synced");
        let identifier = required(&mut r, "identifier", "the query's unique identifier column");
        let mut unresolved = Vec::new();
        let mut secret = None;
        if let Some(c) = connection {
            let mark = r.get("connection").map(|n| n.mark).unwrap_or(item.mark);
            match interpolate_env_with(&c, env_lookup) {
                Ok(v) if !v.starts_with("postgres://") && !v.starts_with("postgresql://") => {
                    // Show what was written, not what the variables hold.
                    r.error(
                        "connection",
                        mark,
                        format!(
                            "{:?} is not a PostgreSQL connection URL (postgres://user@host:port/db); other warehouses are planned",
                            redact_password(&c)
                        ),
                    );
                }
                Ok(v) => secret = Some(Secret::new(v)),
                Err(e @ SettingsError::UnsetVariable { .. }) => {
                    let message = format!("{e} (needed by `s3actions retl`)");
                    unresolved.push(Diagnostic::error(r.at("connection"), mark, message));
                }
                Err(e) => r.error("connection", mark, e.to_string()),
            }
        }
        let mut compare_columns = None;
        if let Some(n) = r.get("compare_columns") {
            match &n.value {
                SValue::Array(cols) if !cols.is_empty() => {
                    let mut names = Vec::new();
                    for c in cols {
                        match &c.value {
                            SValue::String(s) if !s.is_empty() => names.push(s.clone()),
                            _ => r.error(
                                "compare_columns",
                                c.mark,
                                "every entry should be a column name",
                            ),
                        }
                    }
                    compare_columns = Some(names);
                }
                _ => r.error(
                    "compare_columns",
                    n.mark,
                    "should be a non-empty list of column names",
                ),
            }
        }
        let user_id_column = r.string("user_id_column").map(|(v, _)| v);
        let anonymous_id_column = r.string("anonymous_id_column").map(|(v, _)| v);
        if let Some(id) = &id {
            let mark = r.get("id").map(|n| n.mark).unwrap_or(item.mark);
            if !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || id.starts_with('.')
            {
                r.error(
                    "id",
                    mark,
                    "should use letters, digits, '-', '_' and '.' only (it names the model's state file)",
                );
            } else if models.iter().any(|m| m.id == *id) {
                r.error("id", mark, format!("duplicate model id {id:?}"));
            }
        }
        if let (Some(id), Some(query), Some(identifier)) = (id, query, identifier) {
            models.push(Model {
                id,
                connection: secret,
                query,
                identifier,
                compare_columns,
                user_id_column,
                anonymous_id_column,
                unresolved,
            });
        }
    }
    models
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Config;
    use std::env::VarError;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, String> {
        let env = |name: &str| match name {
            "PGPASS" => Ok("hunter2".to_string()),
            _ => Err(VarError::NotPresent),
        };
        Config::from_str_with_env(text, Path::new("m.yaml"), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn models_are_read_with_secrets_resolved() {
        let c = load(
            "models:\n  - id: mdl_customers\n    connection: postgres://retl:${PGPASS}@db:5432/shop\n    query: select * from customers\n    identifier: id\n    compare_columns: [email, plan]\n    user_id_column: id\nmappings:\n  - name: m\n",
        )
        .unwrap();
        let m = &c.models[0];
        assert_eq!(m.id, "mdl_customers");
        assert_eq!(
            m.connection.as_ref().unwrap().expose(),
            "postgres://retl:hunter2@db:5432/shop"
        );
        assert_eq!(m.connection_name(), "postgres://retl@db:5432/shop");
        assert_eq!(m.compare_columns.as_deref().unwrap(), ["email", "plan"]);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn model_errors() {
        let e = load(
            "models:\n  - id: a/b\n    connection: mysql://x@y/z\n    query: ''\n    compare_columns: []\n    uid: x\nmappings:\n  - name: m\n",
        )
        .unwrap_err();
        for want in [
            "models[0].id: should use letters",
            "models[0].connection: \"mysql://x@y/z\" is not a PostgreSQL connection URL",
            "models[0].query: is empty",
            "models[0].identifier: is missing",
            "models[0].compare_columns: should be a non-empty list",
            "unknown key \"uid\"",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let c = load(
            "models:\n  - id: m\n    connection: ${NOT_SET}\n    query: select 1 as id\n    identifier: id\nmappings:\n  - name: m\n",
        )
        .unwrap();
        assert_eq!(c.models[0].unresolved.len(), 1);
        assert!(c.warnings.is_empty(), "replay does not need the models");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://u:p@h:1/d?sslmode=disable"),
            "postgres://u@h:1/d?sslmode=disable"
        );
        assert_eq!(redact_password("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            redact_password("postgres://h/d?user=u&password=p&x=1"),
            "postgres://h/d?user=u&password=***&x=1"
        );
    }
}
