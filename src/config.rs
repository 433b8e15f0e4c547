//! The config file, `config.toml` in the user's config directory, shared by the console
//! (theme, mouse, refresh, keys: `tui::settings`) and `connect` (named connections):
//!
//! ```toml
//! [connections.prod]
//! url = "https://workq.example:7878"
//! token_file = "~/.config/workq/prod.token"   # or token_env = "WORKQ_PROD_TOKEN", or token = "wq_…"
//! ```
//!
//! A secret in a file that others can read is refused, as ssh refuses such a key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the config file is: `$WORKQ_CONFIG`, else `config.toml` in the user's config
/// directory.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WORKQ_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "workq").map(|d| d.config_dir().join("config.toml"))
}

/// What a `[connections.NAME]` table must say beyond its fields' types: an http(s) URL and
/// at most one place for the token.
pub fn check_connection(name: &str, c: &ConnectionTable) -> Result<(), String> {
    if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
        return Err(format!(
            "[connections.{name}] url '{}': give an http:// or https:// URL",
            c.url
        ));
    }
    let given = [
        c.token.is_some(),
        c.token_file.is_some(),
        c.token_env.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(format!(
            "[connections.{name}] gives more than one of token, token_file and token_env; keep one"
        ));
    }
    Ok(())
}

/// A `[connections.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTable {
    pub url: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Connections {
    #[serde(default)]
    connections: BTreeMap<String, ConnectionTable>,
}

/// A named connection as the config file gives it: the server's URL and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    pub token: Option<String>,
}

/// `--connect NAME`: the connection of that name in the config file at `file`.
pub fn connection(name: &str, file: Option<&Path>) -> Result<Remote, String> {
    let Some(file) = file else {
        return Err(format!(
            "--connect {name}: there is no config directory to read connections from"
        ));
    };
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "--connect {name}: no config file at {shown}; add a [connections.{name}] \
                 table with url = \"http://…\" and token_file = \"…\" there"
            ))
        }
        Err(e) => return Err(format!("--connect {name}: cannot read {shown}: {e}")),
    };
    // Only the connections are read here; the console checks the rest of the file.
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{shown}: {}", e.to_string().trim()))?;
    let only = toml::Table::from_iter(
        table
            .get("connections")
            .map(|c| ("connections".to_string(), c.clone())),
    );
    let all: Connections = only
        .try_into()
        .map_err(|e: toml::de::Error| format!("{shown}: {}", e.to_string().trim()))?;
    let Some(c) = all.connections.get(name) else {
        let known: Vec<&str> = all.connections.keys().map(String::as_str).collect();
        return Err(format!(
            "--connect {name}: {shown} has no [connections.{name}] ({})",
            if known.is_empty() {
                "it names no connections".to_string()
            } else {
                format!("it has: {}", known.join(", "))
            }
        ));
    };
    check_connection(name, c).map_err(|e| format!("{shown}: {e}"))?;
    let token = if let Some(t) = &c.token {
        private(file, "the config file, which holds a token")?;
        Some(t.trim().to_string())
    } else if let Some(f) = &c.token_file {
        let f = expand_home(f);
        private(&f, "the token file")?;
        let t = std::fs::read_to_string(&f).map_err(|e| {
            format!(
                "{shown}: [connections.{name}] token_file {}: cannot read: {e}",
                f.display()
            )
        })?;
        Some(t.trim().to_string())
    } else if let Some(var) = &c.token_env {
        Some(std::env::var(var).map_err(|_| {
            format!("{shown}: [connections.{name}] takes its token from ${var}, which is not set")
        })?)
    } else {
        None
    };
    Ok(Remote {
        url: c.url.clone(),
        token,
    })
}

/// `~/…` as the user's home.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// Refuses a file holding a secret that its group or others may read.
fn private(file: &Path, what: &str) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(file) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} ({what}) can be read by other users (mode {mode:o}); a token there \
                     is refused: chmod 600 {}",
                    file.display(),
                    file.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_named_connection_reads_its_url_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let tf = write(dir.path(), "prod.token", "wq_secret\n", 0o600);
        let cfg = format!(
            "theme = \"dark\"\n[connections.prod]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n",
            tf.display()
        );
        let cf = write(dir.path(), "config.toml", &cfg, 0o644);
        let r = connection("prod", Some(&cf)).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:1");
        assert_eq!(r.token.as_deref(), Some("wq_secret"));
        let e = connection("dev", Some(&cf)).unwrap_err();
        assert!(
            e.contains("no [connections.dev]") && e.contains("prod"),
            "{e}"
        );
    }

    #[test]
    fn a_token_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let tf = write(dir.path(), "t", "wq_x", 0o644);
        let cfg = format!(
            "[connections.a]\nurl = \"http://h:1\"\ntoken_file = \"{}\"\n",
            tf.display()
        );
        let cf = write(dir.path(), "c.toml", &cfg, 0o600);
        let e = connection("a", Some(&cf)).unwrap_err();
        assert!(e.contains("chmod 600") && e.contains("mode 644"), "{e}");
        // A token written in the config file itself: the config file must be private.
        let cf = write(
            dir.path(),
            "d.toml",
            "[connections.a]\nurl = \"http://h:1\"\ntoken = \"wq_x\"\n",
            0o640,
        );
        let e = connection("a", Some(&cf)).unwrap_err();
        assert!(e.contains("chmod 600") && e.contains("d.toml"), "{e}");
        std::fs::set_permissions(&cf, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            connection("a", Some(&cf)).unwrap().token.as_deref(),
            Some("wq_x")
        );
    }
}
