//! How every command speaks: its answer on stdout, as text for people or JSON for scripts,
//! and a usage error on one line.

use serde::Serialize;

/// Prints `value` as pretty JSON with `--json`, otherwise the text `text` makes.
pub fn print<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// A usage error on one line: clap's message with what it lists (missing arguments, accepted
/// values, tips) folded in, without the usage block.
pub fn usage_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let line = line.trim_start_matches("error:").trim();
        let line = line
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .unwrap_or(line);
        parts.push(line.to_owned());
    }
    let mut out = String::new();
    for p in parts {
        if out.is_empty() {
            out = p;
        } else if out.ends_with(':') {
            out.push(' ');
            out.push_str(&p);
        } else if out.contains(": ") && !p.contains(':') && p.starts_with(['<', '-']) {
            out.push_str(", ");
            out.push_str(&p);
        } else {
            out.push_str("; ");
            out.push_str(&p);
        }
    }
    if out.is_empty() {
        out = "invalid arguments".into();
    }
    format!("{out} (see --help)")
}
