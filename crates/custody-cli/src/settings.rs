//! The second stage of reading the command line: the global flags checked once and turned
//! into what commands use, passed to each command explicitly.
//!
//! The connection settings (token, CA certificate) are checked here, but a problem with them
//! is reported only by a command that connects: an offline command (`verify`, `monitor` of a
//! directory, `key generate`) works whatever the environment holds for a server it never
//! contacts.

use std::fmt;
use std::path::PathBuf;

use custody_client::Client;

use crate::shared_flags::GlobalFlags;

/// The checked global settings of one invocation.
pub struct Settings {
    /// Print JSON instead of text.
    pub json: bool,
    /// The server URL client commands talk to.
    pub server: String,
    /// Why the user reads, sent with every request.
    purpose: Option<String>,
    /// The API token, checked to be one; `None` when none was given.
    token: Result<Option<String>, ConnectionError>,
    /// The extra certificate to trust for https, read from its file.
    ca_cert: Result<Option<CaCert>, ConnectionError>,
}

/// A certificate `--ca-cert` names, with the file it came from (for messages).
#[derive(Clone)]
pub struct CaCert {
    /// The file.
    pub path: PathBuf,
    /// Its PEM text.
    pub pem: Vec<u8>,
}

/// Why the connection settings cannot be used.
#[derive(Debug, Clone)]
pub enum ConnectionError {
    /// `--ca-cert` names a file that cannot be read.
    UnreadableCaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--token` is not a custody token.
    MalformedToken,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::UnreadableCaCert { path, reason } => {
                write!(f, "cannot read --ca-cert {}: {reason}", path.display())
            }
            ConnectionError::MalformedToken => f.write_str(
                "--token / CUSTODY_TOKEN is not a custody token: expected cst_<20 hex>_<64 hex>, as `custody principal create` printed it",
            ),
        }
    }
}

impl std::error::Error for ConnectionError {}

impl Settings {
    /// Checks the global flags.
    pub fn new(flags: &GlobalFlags) -> Self {
        let ca_cert = match &flags.ca_cert {
            None => Ok(None),
            Some(path) => std::fs::read(path)
                .map(|pem| {
                    Some(CaCert {
                        path: path.clone(),
                        pem,
                    })
                })
                .map_err(|e| ConnectionError::UnreadableCaCert {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
        };
        let token = match &flags.token {
            None => Ok(None),
            Some(t) => custody_auth::ApiToken::parse(t)
                .map(|_| Some(t.clone()))
                .map_err(|_| ConnectionError::MalformedToken),
        };
        Self {
            json: flags.json,
            server: flags.server.clone(),
            purpose: flags.purpose.clone(),
            token,
            ca_cert,
        }
    }

    /// A client for the server, carrying the token and purpose.
    pub fn client(&self) -> anyhow::Result<Client> {
        let ca_cert = self.ca_cert()?;
        let mut client = Client::with_ca(&self.server, ca_cert.map(|c| c.pem.as_slice()))
            .map_err(|e| anyhow::anyhow!("--ca-cert: {e}"))?
            .with_purpose(self.purpose.clone());
        if let Some(t) = self.token()? {
            client = client.with_token(t);
        }
        Ok(client)
    }

    /// The certificate to trust besides the system's, if one was given.
    pub fn ca_cert(&self) -> Result<Option<&CaCert>, ConnectionError> {
        self.ca_cert
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }

    /// The API token, if one was given.
    pub fn token(&self) -> Result<Option<&str>, ConnectionError> {
        self.token
            .as_ref()
            .map(Option::as_deref)
            .map_err(Clone::clone)
    }

    /// Why the user reads, if they said.
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }
}
