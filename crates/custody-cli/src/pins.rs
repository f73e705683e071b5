//! Verifier keys the user pins on the command line (`--vkey`): each a key string or a file
//! holding one, read once and parsed before anything is checked with it.

use anyhow::Context;
use custody_core::note::NoteVerifier;

/// Reads a verifier key given inline or as a file holding it.
pub fn read_vkey(arg: &str) -> anyhow::Result<NoteVerifier> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read --vkey file {arg}"))?
    } else {
        arg.to_string()
    };
    NoteVerifier::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "--vkey: {e}; pass the verifier key string (origin+keyid+key) from `custody vkey` or a file holding it"
        )
    })
}

/// Reads `--vkey` values (each a verifier key or a file holding one).
pub fn read_vkeys(args: &[String]) -> anyhow::Result<Vec<NoteVerifier>> {
    args.iter().map(|a| read_vkey(a)).collect()
}
