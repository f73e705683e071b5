//! Certificates made for a test: a CA and server certificates it signs, for TLS to custody or
//! to PostgreSQL without anything from outside the test.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority that exists only for one test.
pub struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    /// A new CA with common name `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self(
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
                .expect("self-signed CA"),
        )
    }

    /// The CA's certificate (PEM), to trust.
    pub fn pem(&self) -> String {
        self.0.pem()
    }

    /// A server certificate for `host` only, signed by this CA: (certificate PEM, key PEM).
    pub fn server_certificate(&self, host: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec![host.to_string()]).expect("parameters");
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.0).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}
