//! `custody serve --database-url` over TLS, against a real cluster that accepts TCP
//! connections only over TLS (`scripts/pg-cluster.sh start --tls`), with a certificate made
//! here for `localhost` and not for `127.0.0.1`: with `sslmode=verify-full` the server starts;
//! at an address the certificate does not name it exits non-zero with one line that says so.
//! The test starts the cluster itself (and fails if PostgreSQL cannot start), and stops and
//! removes it even if an assertion fails.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Server, cli, custody};
use custody_testkit::certificates::TestCa;
use custody_testkit::postgres::TlsCluster;

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

#[test]
fn serve_verifies_the_database_certificate() {
    let files = tempfile::tempdir().expect("temp dir");
    let authority = TestCa::new("custody test CA");
    let (cert, key) = authority.server_certificate("localhost");
    let ca = write(files.path(), "db-ca.pem", &authority.pem());
    let cluster = TlsCluster::start(
        &write(files.path(), "server.crt", &cert),
        &write(files.path(), "server.key", &key),
    );
    let url = |host: &str| {
        format!(
            "postgres://custody:custody@{host}:{}/custody?sslmode=verify-full&sslrootcert={}",
            cluster.port,
            ca.display()
        )
    };

    // The name in the certificate: the server starts (Server waits for "custody listening
    // on http://") and answers.
    let data = files.path().join("served");
    let server =
        Server::start_postgres(&data, &url("localhost"), &files.path().join("admin.token"));
    let whoami = cli(&server.url, &["whoami"]).ok();
    assert!(whoami.stdout.contains("roles"), "{whoami:#?}");
    drop(server);

    // An address the certificate does not name: one line, non-zero exit.
    let refused = files.path().join("refused");
    let out = custody(&[
        "serve",
        "--data-dir",
        refused.to_str().expect("UTF-8 path"),
        "--listen",
        "127.0.0.1:0",
        "--server-name",
        "test.local",
        "--database-url",
        &url("127.0.0.1"),
    ]);
    let line = out.one_line_error();
    eprintln!("refused: {line}");
    assert!(
        line.contains("certificate does not match host 127.0.0.1")
            && line.contains("sslmode=verify-full")
            && !line.contains(":custody@"),
        "{line}"
    );
}
