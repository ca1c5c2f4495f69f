//! The real S3+STS server (moto, started by scripts/test.sh) and a fault-injecting proxy.
#![allow(dead_code)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value as J;

/// What scripts/moto_bootstrap.py created.
pub struct Moto {
    pub env: J,
}

impl Moto {
    /// The running server; a missing server is a failure, never a silent skip.
    pub fn get() -> &'static Moto {
        static M: OnceLock<Moto> = OnceLock::new();
        M.get_or_init(|| {
            let path = std::env::var("S3ACTIONS_TEST_MOTO").unwrap_or_else(|_| {
                panic!(
                    "the S3 tests need the moto server: run ./scripts/test.sh (it installs and starts moto), \
                     or `. scripts/moto.sh && moto_start` and keep S3ACTIONS_TEST_MOTO set"
                )
            });
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            Moto {
                env: serde_json::from_str(&text).unwrap(),
            }
        })
    }

    pub fn endpoint(&self) -> &str {
        self.env["endpoint"].as_str().unwrap()
    }

    pub fn bucket(&self) -> &str {
        self.env["bucket"].as_str().unwrap()
    }

    pub fn role(&self, name: &str) -> (String, String) {
        let r = &self.env["roles"][name];
        (
            r["arn"].as_str().unwrap().to_string(),
            r["external_id"].as_str().unwrap().to_string(),
        )
    }

    pub fn caller_keys(&self) -> (String, String) {
        let c = &self.env["caller"];
        (
            c["access_key_id"].as_str().unwrap().into(),
            c["secret_access_key"].as_str().unwrap().into(),
        )
    }

    /// An S3 client with the admin's keys, to look at what the engine uploaded.
    pub fn admin(&self) -> aws_sdk_s3::Client {
        let a = &self.env["admin"];
        let creds = Credentials::new(
            a["access_key_id"].as_str().unwrap(),
            a["secret_access_key"].as_str().unwrap(),
            None,
            None,
            "test-admin",
        );
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(creds)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Keys under a prefix, with their content.
    pub fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>, Option<String>)> {
        block_on(async {
            let c = self.admin();
            let list = c
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(prefix)
                .send()
                .await
                .unwrap();
            let mut out = Vec::new();
            for o in list.contents() {
                let key = o.key().unwrap().to_string();
                let got = c
                    .get_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let ct = got.content_type().map(str::to_string);
                let body = got.body.collect().await.unwrap().into_bytes().to_vec();
                out.push((key, body, ct));
            }
            out.sort();
            out
        })
    }

    /// Multipart uploads still open under a prefix.
    pub fn open_multipart_uploads(&self, prefix: &str) -> usize {
        block_on(async {
            let c = self.admin();
            let out = c
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(prefix)
                .send()
                .await
                .unwrap();
            out.uploads().len()
        })
    }
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A unique folder per test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// 503 with S3's SlowDown error.
    SlowDown,
    /// 500 InternalError.
    InternalError,
    /// The connection is closed without a response.
    Drop,
}

pub struct Fault {
    pub method: &'static str,
    /// Substring of "path?query" the request must contain.
    pub contains: String,
    pub kind: FaultKind,
    pub times: usize,
}

/// An HTTP proxy in front of moto that answers chosen requests with failures.
pub struct Proxy {
    pub url: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    log: Arc<Mutex<Vec<String>>>,
}

type Body = BoxBody<Bytes, hyper::Error>;

fn canned(status: u16, code: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(
            Full::new(Bytes::from(xml))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap()
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let upstream = upstream.trim_end_matches('/').to_string();
        let listener = block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Incoming>();
        let (f2, l2) = (faults.clone(), log.clone());
        runtime().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (faults, log, client, upstream) =
                    (f2.clone(), l2.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (faults, log, client, upstream) = (
                            faults.clone(),
                            log.clone(),
                            client.clone(),
                            upstream.clone(),
                        );
                        async move {
                            let pq = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let line = format!("{} {pq}", req.method());
                            let fault = {
                                let mut fs = faults.lock().unwrap();
                                fs.iter_mut()
                                    .find(|f| {
                                        f.times > 0
                                            && req.method().as_str() == f.method
                                            && pq.contains(&f.contains)
                                    })
                                    .map(|f| {
                                        f.times -= 1;
                                        f.kind
                                    })
                            };
                            log.lock().unwrap().push(match fault {
                                Some(k) => format!("{line} => {k:?}"),
                                None => line,
                            });
                            match fault {
                                Some(FaultKind::SlowDown) => {
                                    return Ok::<_, Infallible>(canned(503, "SlowDown"));
                                }
                                Some(FaultKind::InternalError) => {
                                    return Ok(canned(500, "InternalError"));
                                }
                                Some(FaultKind::Drop) => {
                                    // Returning an error makes hyper drop the connection.
                                    return Ok(Response::builder()
                                        .status(200)
                                        .header("content-length", "100")
                                        .body(
                                            Full::new(Bytes::from_static(b"trunc"))
                                                .map_err(|never| match never {})
                                                .boxed(),
                                        )
                                        .unwrap());
                                }
                                None => {}
                            }
                            let (mut parts, body) = req.into_parts();
                            parts.uri = format!("{upstream}{pq}").parse().unwrap();
                            let resp = match client.request(Request::from_parts(parts, body)).await
                            {
                                Ok(r) => r.map(|b| b.boxed()),
                                Err(_) => canned(502, "BadGateway"),
                            };
                            Ok(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { url, faults, log }
    }

    pub fn inject(&self, method: &'static str, contains: &str, kind: FaultKind, times: usize) {
        self.faults.lock().unwrap().push(Fault {
            method,
            contains: contains.to_string(),
            kind,
            times,
        });
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// A mapping file for the test server.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub folder: String,
}

impl Setup {
    pub fn new(test: &str) -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            folder: unique(test),
        }
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// Writes `m.yaml`: settings for `role` (external ID read from $EXT), extra settings
    /// lines, one mapping into `<folder>/<type>/`.
    pub fn mapping(
        &self,
        endpoint: &str,
        role: &str,
        extra_settings: &str,
        folder: Option<&str>,
    ) -> String {
        let moto = Moto::get();
        let (arn, _) = moto.role(role);
        let folder = folder
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/{{{{type}}}}/", self.folder));
        let text = format!(
            "settings:\n  s3_aws_bucket_name: {bucket}\n  s3_aws_region: us-east-1\n  iam_role_arn: {arn}\n  iam_external_id: ${{EXT}}\n  endpoint_url: {endpoint}\n  outbox_dir: {outbox}\n  max_retries: 4\n{extra_settings}mappings:\n  - name: m\n    s3_aws_folder_name: \"{folder}\"\n",
            bucket = moto.bucket(),
            outbox = self.outbox().display(),
        );
        let p = self.dir.path().join("m.yaml");
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// Runs the CLI with the test caller's keys and nothing else from the environment's AWS
/// configuration.
pub fn s3actions(args: &[&str], external_id: &str) -> std::process::Output {
    let (key, secret) = Moto::get().caller_keys();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_s3actions"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("EXT", external_id)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/s3actions-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/s3actions-test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("S3ACTIONS_LOG");
    c.output().unwrap()
}

pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
