//! The real S3+STS server (moto, started by scripts/test.sh) and a fault-injecting proxy.
//! Uses `crate::common` (tests/common): a test that declares `mod s3;` declares
//! `mod common;` too.
#![allow(dead_code)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
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

    /// The object's Content-Encoding header.
    pub fn content_encoding(&self, key: &str) -> Option<String> {
        block_on(async {
            let got = self
                .admin()
                .head_object()
                .bucket(self.bucket())
                .key(key)
                .send()
                .await
                .unwrap();
            got.content_encoding().map(str::to_string)
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
    /// The request goes to moto, but only the first N bytes of the answer's body are sent
    /// before the connection is closed (its headers promise the whole body).
    CutBody(usize),
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
                                Some(FaultKind::CutBody(_)) | None => {}
                            }
                            let (mut parts, body) = req.into_parts();
                            parts.uri = format!("{upstream}{pq}").parse().unwrap();
                            let resp = match client.request(Request::from_parts(parts, body)).await
                            {
                                Ok(r) => match fault {
                                    Some(FaultKind::CutBody(n)) => {
                                        let (parts, body) = r.into_parts();
                                        let all = body.collect().await.unwrap().to_bytes();
                                        let cut = all.slice(..n.min(all.len()));
                                        Response::from_parts(
                                            parts,
                                            Full::new(cut).map_err(|never| match never {}).boxed(),
                                        )
                                    }
                                    _ => r.map(|b| b.boxed()),
                                },
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

/// One test's scratch directory (mapping file, outbox) and its own folder in the bucket,
/// so tests running in parallel never see each other's objects.
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

    /// Starts `m.yaml` for `role`: the most common file (moto directly, files under
    /// `<folder>/<type>/`, external ID from $EXT, no extra settings) unless changed with
    /// [`MappingFile`]'s methods before [`MappingFile::write`].
    pub fn mapping<'a>(&'a self, role: &'a str) -> MappingFile<'a> {
        MappingFile {
            setup: self,
            role,
            endpoint: None,
            extra_settings: String::new(),
            folder: None,
            external_id: "${EXT}".into(),
        }
    }

    /// Writes a file into the outbox at `key`, where a run that could not upload leaves its
    /// files for `flush`; returns its path.
    pub fn outbox_file(&self, key: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.outbox().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Every file in the outbox (including ones in subfolders).
    pub fn outbox_files(&self) -> Vec<PathBuf> {
        files_under(&self.outbox())
    }

    /// The objects under this test's folder: (key, body, content type), sorted.
    pub fn objects(&self) -> Vec<(String, Vec<u8>, Option<String>)> {
        Moto::get().objects(&self.folder)
    }

    /// Multipart uploads still open under this test's folder.
    pub fn open_multipart_uploads(&self) -> usize {
        Moto::get().open_multipart_uploads(&self.folder)
    }
}

/// A mapping file being described; [`MappingFile::write`] writes it as `m.yaml` (replacing
/// an earlier one) and returns its path.
pub struct MappingFile<'a> {
    setup: &'a Setup,
    role: &'a str,
    endpoint: Option<String>,
    extra_settings: String,
    folder: Option<String>,
    external_id: String,
}

impl MappingFile<'_> {
    /// Talk to this endpoint (e.g. a [`Proxy`]) instead of moto directly.
    pub fn endpoint(mut self, url: &str) -> Self {
        self.endpoint = Some(url.to_string());
        self
    }

    /// Extra lines for the `settings:` block, each indented by two spaces and ending in a
    /// newline.
    pub fn settings(mut self, lines: &str) -> Self {
        self.extra_settings.push_str(lines);
        self
    }

    /// The mapping's `s3_aws_folder_name`, as given.
    pub fn folder(mut self, folder: &str) -> Self {
        self.folder = Some(folder.to_string());
        self
    }

    /// Files straight under the test's folder (`<folder>/`), not one subfolder per type.
    pub fn flat(self) -> Self {
        let folder = format!("{}/", self.setup.folder);
        self.folder(&folder)
    }

    /// The external ID written into the file, instead of `${EXT}` (which the library
    /// expands from its own process environment, so in-process tests cannot use it).
    pub fn external_id(mut self, id: &str) -> Self {
        self.external_id = id.to_string();
        self
    }

    pub fn write(self) -> String {
        let moto = Moto::get();
        let (arn, _) = moto.role(self.role);
        let endpoint = self.endpoint.as_deref().unwrap_or(moto.endpoint());
        let folder = self
            .folder
            .unwrap_or_else(|| format!("{}/{{{{type}}}}/", self.setup.folder));
        let text = format!(
            "settings:\n  s3_aws_bucket_name: {bucket}\n  s3_aws_region: us-east-1\n  iam_role_arn: {arn}\n  iam_external_id: {external_id}\n  endpoint_url: {endpoint}\n  outbox_dir: {outbox}\n  max_retries: 4\n{extra_settings}mappings:\n  - name: m\n    s3_aws_folder_name: \"{folder}\"\n",
            bucket = moto.bucket(),
            external_id = self.external_id,
            outbox = self.setup.outbox().display(),
            extra_settings = self.extra_settings,
        );
        let p = self.setup.dir.path().join("m.yaml");
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// The test caller's keys, for in-process tests ([`ClientOptions::base_credentials`]):
/// the same identity [`s3actions`] gives the binary, without touching the environment.
///
/// [`ClientOptions::base_credentials`]: s3actions::sink::s3::ClientOptions::base_credentials
pub fn caller_credentials() -> SharedCredentialsProvider {
    let (key, secret) = Moto::get().caller_keys();
    SharedCredentialsProvider::new(Credentials::new(key, secret, None, None, "test-caller"))
}

/// Runs the CLI with the test caller's keys, `external_id` as $EXT, and nothing else from
/// the environment's AWS configuration. The variables are set on the child only: the test
/// process's own environment, which parallel tests read, never changes.
pub fn s3actions(args: &[&str], external_id: &str) -> std::process::Output {
    s3actions_command(args, external_id).output().unwrap()
}

/// The command [`s3actions`] runs, to start it as a child process instead.
pub fn s3actions_command(args: &[&str], external_id: &str) -> std::process::Command {
    let (key, secret) = Moto::get().caller_keys();
    let mut c = crate::common::bin();
    c.args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("EXT", external_id)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/s3actions-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/s3actions-test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION");
    c
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
