//! `custody serve --database-url` over TLS, against a real cluster that accepts TCP
//! connections only over TLS (`scripts/pg-cluster.sh start --tls`), with a certificate made
//! here for `localhost` and not for `127.0.0.1`: with `sslmode=verify-full` the server starts;
//! at an address the certificate does not name it exits non-zero with one line that says so.
//! The test starts the cluster itself (and fails if PostgreSQL cannot start), and stops and
//! removes it even if an assertion fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, cli, custody};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A TLS-only cluster; dropping it stops and removes it.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/pg-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The value of `NAME='...'` in the script's `export` lines.
fn exported<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("{name}='"))
        .unwrap_or_else(|| panic!("pg-cluster.sh printed no {name}: {out}"))
        + name.len()
        + 2;
    let len = out[start..].find('\'').expect("closing quote");
    &out[start..start + len]
}

fn start_cluster(cert: &Path, key: &Path) -> Cluster {
    let root = repo_root();
    let out = Command::new(root.join("scripts/pg-cluster.sh"))
        .args(["start", "--tls"])
        .arg(cert)
        .arg(key)
        .current_dir(&root)
        .output()
        .expect("run scripts/pg-cluster.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "PostgreSQL must start for this test: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let url = exported(&stdout, "CUSTODY_PG_URL");
    let port = url
        .split_once("@127.0.0.1:")
        .and_then(|(_, rest)| rest.split_once('/'))
        .and_then(|(port, _)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    Cluster {
        dir: PathBuf::from(exported(&stdout, "CUSTODY_PG_DIR")),
        port,
    }
}

/// A CA, and a server certificate for `localhost` only that it signed: (CA PEM, certificate
/// PEM, key PEM).
fn certificates() -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "custody test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("sign");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

#[test]
fn serve_verifies_the_database_certificate() {
    let files = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificates();
    let ca = write(files.path(), "db-ca.pem", &ca);
    let cluster = start_cluster(
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
