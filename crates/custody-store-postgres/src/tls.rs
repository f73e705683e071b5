//! TLS to PostgreSQL, with libpq's meaning of `sslmode` and `sslrootcert`.
//!
//! Managed PostgreSQL services usually demand TLS and document libpq's URL parameters.
//! tokio-postgres knows only `sslmode=disable|prefer|require` and refuses the rest, so custody
//! takes `sslmode` and `sslrootcert` out of the URL itself, gives tokio-postgres the remainder,
//! and connects through a rustls connector (ring, as every other TLS connection of custody)
//! whose certificate check is the one the mode asks for.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use custody_store::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, less `allow` (plaintext first, TLS only if the server insists), which
/// tokio-postgres cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plaintext.
    Disable,
    /// TLS if the server offers it, else plaintext; the certificate is not checked (unless a
    /// root is given, as in libpq).
    Prefer,
    /// TLS; the certificate is not checked (unless a root is given, as in libpq).
    Require,
    /// TLS; the certificate chains to `sslrootcert`, whatever host it names.
    VerifyCa,
    /// TLS; the certificate chains to `sslrootcert` and names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err("sslmode=allow is not supported: use prefer (TLS whenever the server offers it) or disable".into());
            }
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCert {
    /// A PEM file.
    File(PathBuf),
    /// The platform's CA certificates (`sslrootcert=system`).
    System,
}

/// How custody protects its connections to PostgreSQL: what the URL asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// The mode.
    pub(crate) mode: SslMode,
    /// The trusted CAs, if any.
    pub(crate) root: Option<RootCert>,
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing: the connection is encrypted, but to whoever answered.
    Nothing,
    /// The chain, up to a trusted CA.
    Chain,
    /// The chain and the host name (or address).
    ChainAndName,
}

fn unavailable(message: impl Into<String>) -> StoreError {
    StoreError::Unavailable(message.into())
}

impl TlsOptions {
    /// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL; returns the URL that is
    /// left for tokio-postgres and what they asked for. Any other `ssl*` parameter is refused
    /// by name rather than ignored (tokio-postgres's own `sslnegotiation` passes through).
    pub(crate) fn from_url(url: &str) -> Result<(String, Self), StoreError> {
        // tokio-postgres reads the credentials up to the first '@'; the query starts at the
        // first '?' after them.
        let after_credentials = url.find('@').map_or(0, |i| i + 1);
        let Some(q) = url[after_credentials..].find('?') else {
            return Ok((url.to_owned(), Self::default_for(None, None)?));
        };
        let (base, query) = (
            &url[..after_credentials + q],
            &url[after_credentials + q + 1..],
        );
        let (mut mode, mut root, mut kept) = (None, None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            match key.as_ref() {
                "sslmode" => mode = Some(SslMode::parse(&decode(value)?).map_err(unavailable)?),
                "sslrootcert" => {
                    root = Some(match decode(value)?.as_ref() {
                        "system" => RootCert::System,
                        "" => {
                            return Err(unavailable(
                                "sslrootcert is empty: name a PEM file of CA certificates, or system",
                            ));
                        }
                        path => RootCert::File(PathBuf::from(path)),
                    });
                }
                "sslnegotiation" => kept.push(pair),
                k if k.starts_with("ssl") => {
                    return Err(unavailable(format!(
                        "the database URL parameter {k} is not supported: custody reads sslmode and sslrootcert"
                    )));
                }
                _ => kept.push(pair),
            }
        }
        let options = Self::default_for(mode, root)?;
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, options))
    }

    /// libpq's defaults and rules: `prefer` unless told otherwise, `verify-full` for
    /// `sslrootcert=system` (which allows nothing weaker, since any public CA could vouch for
    /// any server), and the verifying modes need a root.
    fn default_for(mode: Option<SslMode>, root: Option<RootCert>) -> Result<Self, StoreError> {
        let mode = match (mode, &root) {
            (Some(m), _) => m,
            (None, Some(RootCert::System)) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
        };
        if root == Some(RootCert::System) && mode != SslMode::VerifyFull {
            return Err(unavailable(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}: any public CA could vouch for the server",
                mode.name()
            )));
        }
        if root.is_none() && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            return Err(unavailable(format!(
                "sslmode={} needs sslrootcert: the PEM file of the CA certificates that sign the server's certificate (or sslrootcert=system)",
                mode.name()
            )));
        }
        Ok(Self { mode, root })
    }

    /// The mode as tokio-postgres knows it: whether to ask for TLS, and whether to insist.
    pub(crate) fn postgres_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    fn check(&self) -> Check {
        match (self.mode, &self.root) {
            (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => Check::Nothing,
            // libpq: with a root certificate, prefer and require check the chain.
            (SslMode::Prefer | SslMode::Require, Some(_)) | (SslMode::VerifyCa, _) => Check::Chain,
            (SslMode::VerifyFull, _) => Check::ChainAndName,
        }
    }

    /// The connector for tokio-postgres; reads `sslrootcert`.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = self.verifier(&provider)?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| unavailable(format!("cannot configure TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // The protocol name PostgreSQL registered, which PostgreSQL 17 checks when given.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(config))
    }

    /// The certificate check of this mode; reads `sslrootcert`.
    fn verifier(&self, provider: &CryptoProvider) -> Result<Verifier, StoreError> {
        let check = self.check();
        let (roots, given) = match (&self.root, check) {
            (_, Check::Nothing) | (None, _) => (None, Vec::new()),
            (Some(root), _) => {
                let (roots, given) = load_roots(root)?;
                (Some(Arc::new(roots)), given)
            }
        };
        Ok(Verifier {
            roots,
            given,
            check,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// What a failed first connection means, in custody's words, when it is about TLS or the
    /// server's admission rules; `None` for the rest (an outage, say). Never the password.
    pub(crate) fn explain(
        &self,
        e: &tokio_postgres::Error,
        hosts: &str,
        user: &str,
    ) -> Option<String> {
        let mode = self.mode.name();
        if let Some(db) = e.as_db_error() {
            if *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                return Some(format!(
                    "the database server refused the connection: its pg_hba.conf admits no connection of role {user} from here with sslmode={mode}{}",
                    if self.mode == SslMode::Disable {
                        " (it may accept only TLS: use sslmode=verify-full with sslrootcert)"
                    } else {
                        ""
                    }
                ));
            }
            if *db.code() == SqlState::INVALID_PASSWORD {
                return Some(format!(
                    "the database server refused the password of role {user}"
                ));
            }
            return None;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
                err.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if let Some(tls) = tls {
                return Some(self.explain_tls(tls, hosts));
            }
            if err.to_string() == "server does not support TLS" {
                return Some(format!(
                    "the database server does not offer TLS (sslmode={mode}): turn ssl on in its configuration, or connect over a trusted network with sslmode=prefer"
                ));
            }
            source = err.source();
        }
        None
    }

    fn explain_tls(&self, e: &rustls::Error, hosts: &str) -> String {
        let mode = self.mode.name();
        let root = match &self.root {
            Some(RootCert::File(path)) => format!("sslrootcert {}", path.display()),
            Some(RootCert::System) => "the platform's CA certificates".into(),
            None => "sslrootcert".into(),
        };
        match e {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the database server's certificate does not match host {hosts} (sslmode={mode}): {e}"
            ),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the database server's certificate is not signed by a CA in {root} (sslmode={mode})"
            ),
            rustls::Error::InvalidCertificate(c) => {
                format!("the database server's certificate is refused (sslmode={mode}): {c}")
            }
            other => format!("TLS with the database server failed (sslmode={mode}): {other}"),
        }
    }
}

fn decode(s: &str) -> Result<Cow<'_, str>, StoreError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| unavailable("the database URL has a parameter that is not UTF-8"))
}

/// The trusted CA certificates, and those of a file as they are written.
fn load_roots(
    root: &RootCert,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), StoreError> {
    let mut roots = RootCertStore::empty();
    let mut given = Vec::new();
    match root {
        RootCert::File(path) => {
            let shown = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| unavailable(format!("cannot read sslrootcert {shown}: {e}")))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unavailable(format!("sslrootcert {shown} is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(unavailable(format!(
                    "sslrootcert {shown} holds no CERTIFICATE block"
                )));
            }
            for cert in certs {
                given.push(cert.clone());
                roots.add(cert).map_err(|e| {
                    unavailable(format!(
                        "sslrootcert {shown} has an unusable certificate: {e}"
                    ))
                })?;
            }
        }
        RootCert::System => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(unavailable(
                    "sslrootcert=system, but this machine has no CA certificates (install ca-certificates)",
                ));
            }
        }
    }
    Ok((roots, given))
}

/// Checks the server's certificate as far as the mode asks. The handshake's signatures are
/// always verified, so even an unchecked certificate's key is the one the server holds.
///
/// One certificate that webpki refuses is accepted, as libpq (OpenSSL) does: a self-signed
/// certificate marked as a CA (as `openssl req -x509` makes them, and PostgreSQL's manual
/// shows) that is itself in `sslrootcert` and presented by the server. It is trusted as
/// exactly that certificate, within its validity period (which webpki checks before refusing
/// a CA as an end entity), and for `verify-full` still only for its host names.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    /// The certificates of the `sslrootcert` file.
    given: Vec<CertificateDer<'static>>,
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(roots) = &self.roots else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        match rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(e)))
                if matches!(
                    e.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) && self.given.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {}
            result => result?,
        }
        if self.check == Check::ChainAndName {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<(String, TlsOptions), String> {
        TlsOptions::from_url(url).map_err(|e| e.to_string())
    }

    #[test]
    fn ssl_parameters_are_taken_out_and_the_rest_passes_through() {
        let (rest, o) = parse(
            "postgres://u:p%3Fw@db:5432/custody?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%3Fw@db:5432/custody?application_name=x&connect_timeout=5"
        );
        assert_eq!(o.mode, SslMode::VerifyFull);
        assert_eq!(o.root, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(o.check(), Check::ChainAndName);

        let (rest, o) = parse("postgres://u:p@db/custody").unwrap();
        assert_eq!(rest, "postgres://u:p@db/custody");
        assert_eq!(o.mode, SslMode::Prefer);
        assert_eq!(o.check(), Check::Nothing);

        let (rest, o) = parse("postgres://u:p@db/custody?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u:p@db/custody");
        assert_eq!((o.mode, o.check()), (SslMode::Require, Check::Nothing));
    }

    #[test]
    fn libpq_rules_for_roots_hold() {
        let o = parse("postgres://db/c?sslmode=require&sslrootcert=/ca.pem")
            .unwrap()
            .1;
        assert_eq!(
            o.check(),
            Check::Chain,
            "require with a root checks the chain"
        );
        let o = parse("postgres://db/c?sslmode=verify-ca&sslrootcert=/ca.pem")
            .unwrap()
            .1;
        assert_eq!(o.check(), Check::Chain);
        let o = parse("postgres://db/c?sslrootcert=system").unwrap().1;
        assert_eq!(
            (o.mode, o.root),
            (SslMode::VerifyFull, Some(RootCert::System))
        );
        let err = parse("postgres://db/c?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(
            err.contains("sslrootcert=system needs sslmode=verify-full"),
            "{err}"
        );
        for mode in ["verify-ca", "verify-full"] {
            let err = parse(&format!("postgres://u:secret@db/c?sslmode={mode}")).unwrap_err();
            assert!(err.contains("needs sslrootcert"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn unsupported_parameters_are_refused_by_name() {
        let err = parse("postgres://db/c?sslmode=allow").unwrap_err();
        assert!(err.contains("sslmode=allow is not supported"), "{err}");
        let err = parse("postgres://db/c?sslmode=on").unwrap_err();
        assert!(err.contains("sslmode=on is not one of"), "{err}");
        let err = parse("postgres://db/c?sslmode=require&sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslcert is not supported"), "{err}");
        let (rest, _) = parse("postgres://db/c?sslnegotiation=direct&sslmode=require").unwrap();
        assert_eq!(rest, "postgres://db/c?sslnegotiation=direct");
    }

    #[test]
    fn a_self_signed_ca_certificate_in_sslrootcert_is_trusted_as_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let self_signed = |name: &str| {
            let mut params =
                rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = params.self_signed(&key).expect("certificate");
            let path = dir.path().join(name);
            std::fs::write(&path, cert.pem()).expect("write");
            (path, cert.der().clone())
        };
        let (path, cert) = self_signed("server.crt");
        let (_, other) = self_signed("other.crt");
        let provider = rustls::crypto::ring::default_provider();
        let verify = |mode: &str, presented: &CertificateDer<'_>, host: &str| {
            let url = format!(
                "postgres://db/c?sslmode={mode}&sslrootcert={}",
                path.display()
            );
            parse(&url)
                .unwrap()
                .1
                .verifier(&provider)
                .expect("verifier")
                .verify_server_cert(
                    presented,
                    &[],
                    &ServerName::try_from(host.to_owned()).expect("name"),
                    &[],
                    UnixTime::now(),
                )
        };
        verify("verify-full", &cert, "localhost").expect("the certificate itself is trusted");
        verify("verify-ca", &cert, "127.0.0.1").expect("verify-ca does not check the name");
        let err = verify("verify-full", &cert, "127.0.0.1").unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");
        for mode in ["verify-full", "verify-ca", "require"] {
            verify(mode, &other, "localhost").expect_err("another self-signed certificate");
        }
    }

    #[test]
    fn an_unreadable_root_is_named() {
        let o = parse("postgres://db/c?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .unwrap()
            .1;
        let err = o.connector().err().expect("no such file").to_string();
        assert!(
            err.contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{err}"
        );
    }
}
