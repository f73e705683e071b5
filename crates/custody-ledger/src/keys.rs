//! Log signing keys on disk.
//!
//! One Ed25519 key per log, generated when the log is created, in
//! `<key dir>/<tenant>/<log>.key` as a Go/C2SP private key string (so Go tooling and other
//! transparency logs can use it during a migration). Files are created with mode 0600 inside
//! 0700 directories and synced before the log is registered; key material is never logged and
//! never leaves this module except as a [`NoteSigner`], whose `Debug` hides it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use custody_core::envelope::{LogName, TenantName};
use custody_core::note::NoteSigner;

/// Why a key could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File system trouble, with the path.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file does not hold a valid key for this log.
    #[error("key file {path} is not a valid signing key for {origin}: {reason}")]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// The log origin it should sign for.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// The directory that holds every log's signing key.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Uses `dir`, creating it (0700) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, tenant: &TenantName, log: LogName) -> PathBuf {
        self.dir
            .join(tenant.as_str())
            .join(format!("{}.key", log.as_str()))
    }

    fn next_path(&self, tenant: &TenantName, log: LogName) -> PathBuf {
        self.dir
            .join(tenant.as_str())
            .join(format!("{}.key.next", log.as_str()))
    }

    /// Generates and durably writes a new key for `origin`, replacing any key file left by a
    /// tenant creation that never committed (the caller guarantees the log does not exist).
    pub fn create(
        &self,
        tenant: &TenantName,
        log: LogName,
        origin: &str,
    ) -> Result<NoteSigner, KeyError> {
        self.write_new(self.path(tenant, log), origin)
    }

    /// Generates and durably writes the key a rotation will switch the log to, beside the
    /// current one (`<log>.key.next`).
    pub fn create_next(
        &self,
        tenant: &TenantName,
        log: LogName,
        origin: &str,
    ) -> Result<NoteSigner, KeyError> {
        self.write_new(self.next_path(tenant, log), origin)
    }

    /// The key a rotation was switching the log to, if one is waiting.
    pub fn load_next(
        &self,
        tenant: &TenantName,
        log: LogName,
        origin: &str,
    ) -> Result<Option<NoteSigner>, KeyError> {
        let path = self.next_path(tenant, log);
        if !path.exists() {
            return Ok(None);
        }
        Self::read(path, origin).map(Some)
    }

    /// Makes the waiting key the log's key; the old one is kept as `<log>.key.retired-<size>`
    /// (the size of the log when it stopped signing), since its checkpoints stay verifiable.
    pub fn promote_next(
        &self,
        tenant: &TenantName,
        log: LogName,
        size: u64,
    ) -> Result<(), KeyError> {
        let current = self.path(tenant, log);
        let next = self.next_path(tenant, log);
        let retired = current.with_extension(format!("key.retired-{size}"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        if current.exists() {
            fs::rename(&current, &retired).map_err(io(&current))?;
        }
        fs::rename(&next, &current).map_err(io(&next))?;
        let parent = current.parent().unwrap_or(&self.dir);
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))
    }

    /// Removes a waiting key that no rotation announced (a rotation interrupted before its
    /// entry was committed).
    pub fn discard_next(&self, tenant: &TenantName, log: LogName) -> Result<(), KeyError> {
        let next = self.next_path(tenant, log);
        fs::remove_file(&next).map_err(|source| KeyError::Io { path: next, source })
    }

    fn write_new(&self, path: PathBuf, origin: &str) -> Result<NoteSigner, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.clone(),
            origin: origin.to_string(),
            reason,
        };
        let signer = NoteSigner::generate(origin).map_err(|e| invalid(e.to_string()))?;
        let parent = path.parent().unwrap_or(&self.dir);
        create_private_dir(parent)?;
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("key.tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(signer.to_private_key_string().as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(signer)
    }

    /// Loads the key of a log and checks it signs for `origin`.
    pub fn load(
        &self,
        tenant: &TenantName,
        log: LogName,
        origin: &str,
    ) -> Result<NoteSigner, KeyError> {
        Self::read(self.path(tenant, log), origin)
    }

    fn read(path: PathBuf, origin: &str) -> Result<NoteSigner, KeyError> {
        let text = fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let signer =
            NoteSigner::from_private_key_string(text.trim()).map_err(|e| KeyError::Invalid {
                path: path.clone(),
                origin: origin.to_string(),
                reason: e.to_string(),
            })?;
        if signer.name() != origin {
            return Err(KeyError::Invalid {
                path,
                origin: origin.to_string(),
                reason: format!("it is named {:?}", signer.name()),
            });
        }
        Ok(signer)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path().join("keys")).unwrap();
        let t = TenantName::parse("acme").unwrap();
        let origin = "custody.local/acme/governance";
        let made = ks.create(&t, LogName::Governance, origin).unwrap();
        let path = dir.path().join("keys/acme/governance.key");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let loaded = ks.load(&t, LogName::Governance, origin).unwrap();
        assert_eq!(loaded.verifier().to_string(), made.verifier().to_string());
        assert!(ks.load(&t, LogName::Governance, "other/origin").is_err());
    }
}
