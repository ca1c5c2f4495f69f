//! `s3actions retl` against a real PostgreSQL server (started by scripts/test.sh through
//! scripts/postgres.sh): initial load, inserts, updates of tracked and untracked columns,
//! deletes, a failed and a killed run each followed by a good one, errors, a 1M-row model.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{assert_exit, assert_ok, csv_tables, output_text, wait_for};
use serde_json::Value as J;

/// The test server; a missing server is a failure, never a silent skip.
struct Pg {
    /// Connection URL without the password.
    url: String,
    password: String,
}

impl Pg {
    fn get() -> Pg {
        let url = std::env::var("S3ACTIONS_TEST_POSTGRES").unwrap_or_else(|_| {
            panic!(
                "the Reverse ETL tests need PostgreSQL: run ./scripts/test.sh (it installs and starts it), \
                 or `. scripts/postgres.sh && postgres_start` and keep S3ACTIONS_TEST_POSTGRES set"
            )
        });
        let password = std::env::var("S3ACTIONS_TEST_POSTGRES_PASSWORD").unwrap_or_default();
        Pg { url, password }
    }

    /// The URL with `user:password@`.
    fn url_with_password(&self) -> String {
        self.url.replacen(
            "://s3actions@",
            &format!("://s3actions:{}@", self.password),
            1,
        )
    }

    /// Runs SQL statements (separated by `;`).
    fn exec(&self, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) =
                tokio_postgres::connect(&self.url_with_password(), tokio_postgres::NoTls)
                    .await
                    .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        });
    }
}

/// One test's schema, mapping file, state folder and output folders.
struct Retl {
    pg: Pg,
    schema: String,
    dir: tempfile::TempDir,
}

const MAPPINGS: &str = r#"mappings:
  - name: upserts
    trigger: 'type = "track" and (event = "new" or event = "updated")'
    columns:
      operation: { "@path": "$.event" }
      id: { "@path": "$.properties.id" }
      email: { "@path": "$.properties.email" }
      plan: { "@path": "$.properties.plan" }
      ltv: { "@path": "$.properties.ltv" }
      updated_at: { "@path": "$.properties.updated_at" }
      tags: { "@path": "$.properties.tags" }
      meta: { "@path": "$.properties.meta" }
      user_id: { "@path": "$.userId" }
      model: { "@path": "$.context.warehouse.model_id" }
    audience_action_column_name: ""
    batch_size_column_name: ""
    s3_aws_folder_name: "reverse-etl/{{context.warehouse.model_id}}/upserts/"
  - name: deletes
    trigger: 'type = "track" and event = "deleted"'
    columns:
      id: { "@path": "$.properties.id" }
      email: { "@path": "$.properties.email" }
      user_id: { "@path": "$.userId" }
    audience_action_column_name: ""
    batch_size_column_name: ""
    s3_aws_folder_name: "reverse-etl/{{context.warehouse.model_id}}/deletes/"
"#;

impl Retl {
    fn new() -> Retl {
        let pg = Pg::get();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        pg.exec(&format!(
            "create schema {schema};
             create table {schema}.customers (
               id text primary key, email text, plan text, ltv numeric(10,2),
               updated_at timestamptz, tags text[], meta jsonb, score real, active boolean,
               born date, uid uuid, n bigint);"
        ));
        Retl {
            pg,
            schema,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn exec(&self, sql: &str) {
        self.pg
            .exec(&sql.replace("S.", &format!("{}.", self.schema)));
    }

    /// Writes the mapping file with one model (`query` may use `S.` for the schema and
    /// `extra` adds model keys); returns its path.
    fn mapping(&self, query: &str, extra: &str) -> String {
        let query = query.replace("S.", &format!("{}.", self.schema));
        let url = self
            .pg
            .url
            .replacen("://s3actions@", "://s3actions:${RETL_PG_PASSWORD}@", 1);
        let text = format!(
            "settings:\n  state_dir: {state}\nmodels:\n  - id: mdl_customers\n    connection: {url}\n    query: \"{query}\"\n    identifier: id\n    user_id_column: id\n{extra}{MAPPINGS}",
            state = self.state_dir().display(),
        );
        common::write(self.dir.path(), "retl.yaml", &text)
    }

    /// [`Retl::mapping`] with `batch_size` on every mapping.
    fn mapping_batched(&self, query: &str, batch: u64) -> String {
        let path = self.mapping(query, "");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "    s3_aws_folder_name",
            &format!("    batch_size: {batch}\n    s3_aws_folder_name"),
        );
        common::write(self.dir.path(), "retl.yaml", &text)
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `retl MAPPING --out OUT --json EXTRA...` with the password in the environment.
    fn run(&self, mapping: &str, out: &Path, extra: &[&str]) -> Output {
        let mut c = common::bin();
        c.args(["retl", mapping, "--out", out.to_str().unwrap(), "--json"])
            .args(extra)
            .env("RETL_PG_PASSWORD", &self.pg.password);
        c.output().unwrap()
    }
}

fn summary(o: &Output) -> J {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{}", output_text(o)))
}

/// (new, updated, deleted) of the first model.
fn counts(o: &Output) -> (u64, u64, u64) {
    let s = summary(o);
    let m = &s["models"][0];
    (
        m["new"].as_u64().unwrap(),
        m["updated"].as_u64().unwrap(),
        m["deleted"].as_u64().unwrap(),
    )
}

/// Every CSV row written under `out` (header left out), sorted.
fn rows(out: &Path) -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = csv_tables(out).into_iter().flatten().collect();
    all.sort();
    all
}

const ALL_COLUMNS: &str = "select id, email, plan, ltv, updated_at, tags, meta, score, active, born, uid, n from S.customers order by id";

#[test]
fn initial_load_then_inserts_updates_and_deletes() {
    let t = Retl::new();
    t.exec(
        "insert into S.customers values
         ('u1', 'a@example.com', 'free', 3155.03, '2026-11-01T00:00:00.061Z', '{x,y}', '{\"k\": [1, 2]}', 0.5, true, '1990-05-17', 'c74af7c9-438d-4326-97db-af9ebb68912a', 9007199254740993),
         ('u2', 'b@example.com', 'pro', 10, '2026-11-01T08:30:00.123456Z', '{}', null, null, false, null, null, null),
         ('u3', null, null, null, null, null, null, null, null, null, null, null)",
    );
    let m = t.mapping(ALL_COLUMNS, "    compare_columns: [email, ltv]\n");

    // First run: every row is new.
    let o = t.run(&m, &t.out("run1"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (3, 0, 0));
    let got = rows(&t.out("run1"));
    assert_eq!(
        got[0],
        [
            "new",
            "u1",
            "a@example.com",
            "free",
            "3155.03",
            "2026-11-01T00:00:00.061Z",
            "[\"x\",\"y\"]",
            "{\"k\":[1,2]}",
            "u1",
            "mdl_customers"
        ]
    );
    assert_eq!(got[1][5], "2026-11-01T08:30:00.123456Z");
    assert_eq!(got[1][6], "[]");
    assert_eq!(got[2][..4], ["new", "u3", "", ""]);
    assert!(t.state_dir().join("mdl_customers.snapshot").exists());

    // The same rows again: nothing is sent.
    let o = t.run(&m, &t.out("run2"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (0, 0, 0));
    assert!(rows(&t.out("run2")).is_empty());

    // A tracked column changes (u1's email), an untracked one (u2's plan) does not count.
    t.exec("update S.customers set email = 'A@example.com' where id = 'u1'; update S.customers set plan = 'enterprise' where id = 'u2'");
    let o = t.run(&m, &t.out("run3"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (0, 1, 0));
    let got = rows(&t.out("run3"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][..3], ["updated", "u1", "A@example.com"]);

    // An insert and a delete: the deleted row carries its identifier, the rest null.
    t.exec("insert into S.customers (id, email) values ('u4', 'd@example.com'); delete from S.customers where id = 'u2'");
    let o = t.run(&m, &t.out("run4"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (1, 0, 1));
    let got = rows(&t.out("run4"));
    assert!(
        got.contains(&vec!["u2".to_string(), String::new(), "u2".to_string()]),
        "{got:?}"
    );
    assert!(got.iter().any(|r| r[0] == "new" && r[1] == "u4"), "{got:?}");

    // --reset: every row is new again.
    let o = t.run(&m, &t.out("run5"), &["--reset"]);
    assert_ok(&o);
    assert_eq!(counts(&o), (3, 0, 0));
    let o = t.run(&m, &t.out("run6"), &[]);
    assert_eq!(counts(&o), (0, 0, 0));
}

#[test]
fn a_new_column_without_compare_columns_warns_and_updates_every_row_once() {
    let t = Retl::new();
    t.exec("insert into S.customers (id, email) values ('u1', 'a@x'), ('u2', 'b@x')");
    let m = t.mapping("select id, email from S.customers", "");
    assert_eq!(counts(&t.run(&m, &t.out("a"), &[])), (2, 0, 0));
    let m = t.mapping("select id, email, plan from S.customers", "");
    let o = t.run(&m, &t.out("b"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (0, 2, 0));
    let err = common::stderr(&o);
    assert!(err.contains("warning: model mdl_customers: the compared columns changed since the last run (added plan)"), "{err}");
    assert!(err.contains("--reset"), "{err}");
    assert_eq!(counts(&t.run(&m, &t.out("c"), &[])), (0, 0, 0));
}

#[test]
fn a_failed_run_sends_the_same_differences_next_time() {
    let t = Retl::new();
    t.exec("insert into S.customers (id, email) values ('u1', 'a@x'), ('u2', 'b@x')");
    let m = t.mapping("select id, email from S.customers", "");
    assert_eq!(counts(&t.run(&m, &t.out("first"), &[])), (2, 0, 0));
    t.exec("update S.customers set email = 'new@x' where id = 'u1'; insert into S.customers (id) values ('u3')");

    // The output cannot be written: the upserts' folder is a file.
    let bad = t.out("bad");
    std::fs::create_dir_all(bad.join("reverse-etl/mdl_customers")).unwrap();
    std::fs::write(bad.join("reverse-etl/mdl_customers/upserts"), "in the way").unwrap();
    let o = t.run(&m, &bad, &[]);
    assert_exit(&o, 1);
    assert!(output_text(&o).contains("upserts"), "{}", output_text(&o));

    let o = t.run(&m, &t.out("good"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (1, 1, 0));
    let o = t.run(&m, &t.out("again"), &[]);
    assert_eq!(counts(&o), (0, 0, 0));
}

/// CSV files under `out` outside its dot-folders (finished files only).
fn finished_csv(out: &Path) -> usize {
    common::files(out)
        .keys()
        .filter(|k| k.ends_with(".csv") && !k.starts_with('.'))
        .count()
}

#[test]
fn a_killed_run_sends_the_same_differences_next_time() {
    let t = Retl::new();
    t.exec("insert into S.customers (id, email) select 'u' || g, 'e' || g || '@x' from generate_series(1, 300000) g");
    let m = t.mapping_batched("select id, email from S.customers", 1000);
    let killed = t.out("killed");
    let mut child = common::bin()
        .args(["retl", &m, "--out", killed.to_str().unwrap()])
        .env("RETL_PG_PASSWORD", &t.pg.password)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(120),
        "the killed run never wrote a file",
        || (finished_csv(&killed) > 0).then_some(()),
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run ended before it could be killed");
    assert!(
        !t.state_dir().join("mdl_customers.snapshot").exists(),
        "a killed run commits nothing"
    );
    let written_before = finished_csv(&killed);
    assert!(
        written_before < 300,
        "{written_before} files: the run was nearly done"
    );

    let o = t.run(&m, &t.out("good"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (300000, 0, 0));
    assert_eq!(rows(&t.out("good")).len(), 300000);
    assert_eq!(counts(&t.run(&m, &t.out("again"), &[])), (0, 0, 0));
}

#[test]
fn bad_results_are_clear_errors_and_commit_nothing() {
    let t = Retl::new();
    let snapshot = t.state_dir().join("mdl_customers.snapshot");
    let cases = [
        (
            "select id from (values ('a'), ('b'), ('a')) v(id)",
            "model mdl_customers: row 3 repeats the identifier \"a\" (id) of an earlier row",
        ),
        (
            "select id from (values ('a'), (null)) v(id)",
            "model mdl_customers: row 2 has a NULL identifier (id)",
        ),
        (
            "select 1 as key",
            "model mdl_customers: the query has no identifier column \"id\" (its columns: key)",
        ),
        (
            "select 'a' as id, point(1, 2) as p",
            "model mdl_customers: column \"p\" has type point, which s3actions cannot send",
        ),
        (
            "select id from S.nope",
            "model mdl_customers: the query failed: ERROR: relation",
        ),
    ];
    for (query, want) in cases {
        let m = t.mapping(query, "");
        let o = t.run(&m, &t.out("o"), &[]);
        assert_exit(&o, 1);
        assert!(
            output_text(&o).contains(want),
            "{query}: {}",
            output_text(&o)
        );
        assert!(!snapshot.exists(), "{query}: nothing is committed");
        assert_eq!(finished_csv(&t.out("o")), 0, "{query}: nothing is sent");
    }
}

#[test]
fn the_password_is_never_printed() {
    let t = Retl::new();
    let m = t.mapping("select 'a' as id", "");
    let mut c = common::bin();
    c.args(["retl", &m, "--out", t.out("o").to_str().unwrap(), "-vv"])
        .env("RETL_PG_PASSWORD", "wrong-password-never-shown");
    let o = c.output().unwrap();
    assert_exit(&o, 1);
    let text = output_text(&o);
    assert!(
        text.contains("model mdl_customers: cannot connect to postgres://s3actions@127.0.0.1:"),
        "{text}"
    );
    assert!(!text.contains("wrong-password-never-shown"), "{text}");
    // An unset variable is a clear error before anything is read.
    let mut c = common::bin();
    c.args(["retl", &m, "--out", t.out("o").to_str().unwrap()])
        .env_remove("RETL_PG_PASSWORD");
    let o = c.output().unwrap();
    assert_exit(&o, 2);
    assert!(
        output_text(&o).contains("environment variable RETL_PG_PASSWORD is not set"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn a_state_file_of_another_version_is_refused() {
    let t = Retl::new();
    let m = t.mapping("select 'a' as id", "");
    std::fs::create_dir_all(t.state_dir()).unwrap();
    std::fs::write(
        t.state_dir().join("mdl_customers.snapshot"),
        "s3actions-state snapshot 99\n{}\n",
    )
    .unwrap();
    let o = t.run(&m, &t.out("o"), &[]);
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("has format version 99, but this s3actions reads version 1 only"),
        "{}",
        output_text(&o)
    );
    // --reset starts again from an empty snapshot and replaces the file.
    let o = t.run(&m, &t.out("o2"), &["--reset"]);
    assert_ok(&o);
    assert_eq!(counts(&o), (1, 0, 0));
    assert!(
        std::fs::read_to_string(t.state_dir().join("mdl_customers.snapshot"))
            .unwrap()
            .starts_with("s3actions-state snapshot 1\n")
    );
}

#[test]
fn a_million_row_model_in_bounded_memory() {
    let t = Retl::new();
    t.exec("insert into S.customers (id, email, ltv) select 'u' || g, 'e' || g || '@example.com', g / 100.0 from generate_series(1, 1000000) g");
    let m = t.mapping_batched("select id, email, ltv from S.customers", 100000);
    let o = t.run(&m, &t.out("a"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (1000000, 0, 0));
    // 1% of the rows change.
    t.exec("update S.customers set email = 'changed' || id where id like '%00'");
    let o = t.run(&m, &t.out("b"), &[]);
    assert_ok(&o);
    assert_eq!(counts(&o), (0, 10000, 0));
    let rss = summary(&o)["peak_rss_mb"].as_f64().unwrap();
    assert!(rss < 200.0, "peak RSS {rss} MiB");
}

/// The model's connection with libpq's TLS parameters: what the server says about the
/// session (`pg_stat_ssl`) is the row sent, so the test sees whether TLS was used.
fn tls_run(t: &Retl, params: &str, name: &str) -> Output {
    let url =
        t.pg.url
            .replacen("://s3actions@", "://s3actions:${RETL_PG_PASSWORD}@", 1);
    let text = format!(
        "settings:\n  state_dir: {state}\nmodels:\n  - id: mdl_tls\n    connection: \"{url}?{params}\"\n    query: \"select 'session' as id, ssl::text as ssl from pg_stat_ssl where pid = pg_backend_pid()\"\n    identifier: id\nmappings:\n  - name: tls\n    trigger: 'type = \"track\"'\n    columns:\n      ssl: {{ \"@path\": \"$.properties.ssl\" }}\n    audience_action_column_name: \"\"\n    batch_size_column_name: \"\"\n",
        state = t.dir.path().join(format!("state-{name}")).display(),
    );
    let m = common::write(t.dir.path(), &format!("{name}.yaml"), &text);
    t.run(&m, &t.out(name), &[])
}

fn test_ca(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run ./scripts/test.sh (scripts/postgres.sh makes the test CA)")
    })
}

/// libpq's sslmode and sslrootcert work as in psql: verify-full against the right CA is
/// TLS; against another CA it is refused with the reason; disable is plain text.
#[test]
fn tls_follows_libpq_sslmode_and_sslrootcert() {
    let t = Retl::new();
    let ca = test_ca("S3ACTIONS_TEST_POSTGRES_CA");
    let other = test_ca("S3ACTIONS_TEST_POSTGRES_OTHER_CA");
    let ssl_of = |o: &Output, out: &str| {
        assert_ok(o);
        let rows = rows(&t.out(out));
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0][0].clone()
    };

    let o = tls_run(&t, &format!("sslmode=verify-full&sslrootcert={ca}"), "full");
    assert_eq!(ssl_of(&o, "full"), "true");
    let o = tls_run(&t, &format!("sslmode=verify-ca&sslrootcert={ca}"), "ca");
    assert_eq!(ssl_of(&o, "ca"), "true");
    // libpq's require encrypts without checking the certificate.
    let o = tls_run(&t, "sslmode=require", "require");
    assert_eq!(ssl_of(&o, "require"), "true");
    let o = tls_run(&t, "sslmode=disable", "plain");
    assert_eq!(ssl_of(&o, "plain"), "false");

    let o = tls_run(
        &t,
        &format!("sslmode=verify-full&sslrootcert={other}"),
        "wrong",
    );
    assert_exit(&o, 1);
    let text = output_text(&o);
    assert!(
        text.contains("model mdl_tls: cannot connect to postgres://s3actions@127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("certificate"), "{text}");
    assert!(!text.contains(&t.pg.password), "{text}");
    assert!(!t.out("wrong").join("tls").exists());

    let o = tls_run(&t, "sslmode=verify-everything", "badmode");
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("sslmode=\"verify-everything\" is not one of"),
        "{}",
        output_text(&o)
    );
}

/// Two runs on one state folder would commit snapshots over each other's: the second is
/// refused at once, and the folder is free again when the first ends.
#[test]
fn one_run_at_a_time_per_state_folder() {
    let t = Retl::new();
    let slow = t.mapping("select 'a' as id, pg_sleep(4)::text as slept", "");
    let mut first = common::bin();
    first
        .args(["retl", &slow, "--out", t.out("first").to_str().unwrap()])
        .env("RETL_PG_PASSWORD", &t.pg.password)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    let lock = t.state_dir().join("lock");
    wait_for(
        Duration::from_secs(20),
        "the first run never took the state folder",
        || lock.exists().then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let quick = t.mapping("select 'a' as id", "");
    let o = t.run(&quick, &t.out("second"), &[]);
    assert_exit(&o, 1);
    assert!(
        output_text(&o).contains("is in use by another s3actions run"),
        "{}",
        output_text(&o)
    );
    assert!(first.wait().unwrap().success());
    assert_ok(&t.run(&quick, &t.out("third"), &[]));
}
