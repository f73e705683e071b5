//! The Python environment the interop tests check custody against (OpenSSF model-signing,
//! pyca/cryptography, an RFC 8785 implementation, moto), created once by
//! `scripts/py-venv.sh` under `target/` and shared by every test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment's interpreter; panics (failing the test) when it cannot be made: an
/// interop check that quietly skips proves nothing.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script = crate::repo_root().join("scripts/py-venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            path.is_file(),
            "py-venv.sh printed {path:?}, which is not an interpreter"
        );
        path
    })
}

/// The environment's `bin` directory (its console scripts: `model_signing`, `moto_server`).
pub fn bin_dir() -> &'static Path {
    python()
        .parent()
        .expect("the interpreter is in the venv's bin")
}
