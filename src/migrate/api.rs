//! Reading a destination and its subscriptions from Segment's Public API (`--from-api`).
//!
//! Two calls, authenticated with a Public API token (`SEGMENT_TOKEN`): "Get Destination"
//! (`GET /destinations/{id}`) and "List Subscriptions from Destination"
//! (`GET /destinations/{id}/subscriptions`, followed page by page). The token is only ever
//! put in the `Authorization` header; it is a [`Secret`], so it cannot reach a message.

use std::time::Duration;

use serde_json::Value;

use crate::mapping::Secret;

/// Segment's Public API (workspaces in the EU use `https://eu1.api.segmentapp.com`).
pub const DEFAULT_API_URL: &str = "https://api.segmentapp.com";

/// Subscriptions asked for per page.
const PAGE_SIZE: u32 = 200;
/// More pages than any destination has: a server that keeps answering `next` is an error.
const MAX_PAGES: usize = 1000;

/// A call to the Public API that did not give a usable body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("GET {url}: HTTP {status}{}: {body}", hint(*.status))]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("GET {url}: the body is not JSON: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("GET {url}: more than {MAX_PAGES} pages of subscriptions")]
    TooManyPages { url: String },
    #[error("destination ids are letters and digits, not {0:?}")]
    BadId(String),
}

fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (is SEGMENT_TOKEN a Public API token with read access to the workspace?)",
        404 => " (no destination with that id in the token's workspace)",
        429 => " (rate limited: try again in a minute)",
        _ => "",
    }
}

/// The two bodies, as the API returned them (subscription pages joined into one list).
#[derive(Debug)]
pub struct Fetched {
    pub destination: Value,
    pub subscriptions: Value,
}

/// Reads destination `id` and all its subscriptions from the API at `base_url`.
pub fn fetch(base_url: &str, token: &Secret, id: &str) -> Result<Fetched, ApiError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::BadId(id.into()));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("s3actions/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let base = base_url.trim_end_matches('/');
    let destination = get(&agent, &format!("{base}/destinations/{id}"), &[], token)?;
    let mut subscriptions = Vec::new();
    let mut cursor: Option<String> = None;
    let first = format!("{base}/destinations/{id}/subscriptions");
    let count = PAGE_SIZE.to_string();
    for _ in 0..MAX_PAGES {
        let mut query = vec![("pagination.count", count.as_str())];
        if let Some(c) = &cursor {
            query.push(("pagination.cursor", c.as_str()));
        }
        let page = get(&agent, &first, &query, token)?;
        let data = page.get("data").unwrap_or(&page);
        if let Some(Value::Array(items)) = data.get("subscriptions") {
            subscriptions.extend(items.iter().cloned());
        }
        match data.pointer("/pagination/next").and_then(Value::as_str) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                cursor = Some(next.to_string());
            }
            _ => {
                return Ok(Fetched {
                    destination,
                    subscriptions: serde_json::json!({ "data": { "subscriptions": subscriptions } }),
                });
            }
        }
    }
    Err(ApiError::TooManyPages { url: first })
}

fn get(
    agent: &ureq::Agent,
    url: &str,
    query: &[(&str, &str)],
    token: &Secret,
) -> Result<Value, ApiError> {
    let http = |source| ApiError::Http {
        url: url.to_string(),
        source: Box::new(source),
    };
    let mut response = agent
        .get(url)
        .query_pairs(query.iter().copied())
        .header("Authorization", &format!("Bearer {}", token.expose()))
        .header("Accept", "application/json")
        .call()
        .map_err(http)?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().map_err(http)?;
    if status != 200 {
        return Err(ApiError::Status {
            url: url.to_string(),
            status,
            body: body.chars().take(500).collect(),
        });
    }
    serde_json::from_str(&body).map_err(|source| ApiError::Json {
        url: url.to_string(),
        source,
    })
}
