//! TLS: the server speaks HTTPS with a certificate it is given; a client that trusts the
//! certificate gets answers, one that does not is refused, and plain HTTP gets nothing.

use crate::common;

use common::start_with;
use custody_server::{ServeOptions, tls_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_https_with_the_given_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    let config = tls_config(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let s = start_with(ServeOptions {
        tls: Some(config),
        ..ServeOptions::default()
    })
    .await;
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let https = format!("https://localhost:{port}");

    let trusted = custody_client::Client::with_ca(&https, Some(cert_pem.as_bytes()))
        .unwrap()
        .with_token(&s.token);
    assert_eq!(trusted.whoami().await.unwrap().principal, s.principal);
    assert_eq!(trusted.health().await.unwrap().status, "ok");

    let untrusting = custody_client::Client::new(&https)
        .unwrap()
        .with_token(&s.token);
    let err = untrusting.whoami().await.unwrap_err();
    assert!(
        err.status().is_none(),
        "an unverified server was trusted: {err}"
    );

    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        plain
            .get(format!("http://localhost:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "plain HTTP must not be answered on the TLS port"
    );
}

#[test]
fn unusable_certificates_and_keys_are_named() {
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (a.cert.pem(), a.signing_key.serialize_pem());
    let other_key = b.signing_key.serialize_pem();
    let err = tls_config(b"not pem", key.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    let err = tls_config(cert.as_bytes(), b"not pem")
        .unwrap_err()
        .to_string();
    assert!(err.contains("private key"), "{err}");
    let err = tls_config(cert.as_bytes(), other_key.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be used together"), "{err}");
}
