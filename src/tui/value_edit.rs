//! Editing an item's value in `$EDITOR` (`e`): what the file holds when the editor opens,
//! and what the text the user saved means. Pure, so the update tests cover the whole
//! round trip; `run_editor` is the only part that touches the system.
//!
//! The rule: what the user saved is the new value as written (key order, number text,
//! whitespace), less the one line end an editor adds at the end of a file. A JSON object
//! or array is opened re-indented, must come back as JSON, and counts as unchanged when
//! only the whitespace between its tokens moved. Invalid JSON reopens the editor with the
//! error in comment lines at the top, which are taken out again; saving an empty file, or
//! leaving the file as it was opened with an error, gives up.

use crate::json_text;

/// Lines starting with this are workq's notes to the user, not part of the value.
pub const NOTE: &str = "// workq: ";

/// One opening of the editor on an item's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditSession {
    pub id: String,
    /// The value as stored.
    pub original: String,
    /// What the file holds when the editor opens.
    pub text: String,
    /// The value is a JSON object or array: what comes back must be JSON too.
    pub json: bool,
}

/// What the saved text means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new value, to requeue the item with.
    Changed(String),
    Unchanged,
    /// Saved empty, or left as it was opened after an error: nothing changes.
    Abandoned,
    /// Not JSON: open the editor again on this session; the error for the status line.
    Invalid(EditSession, String),
}

impl EditSession {
    pub fn new(id: String, value: String) -> EditSession {
        let pretty = json_text::pretty(&value);
        EditSession {
            id,
            json: pretty.is_some(),
            text: with_eol(pretty.as_deref().unwrap_or(&value)),
            original: value,
        }
    }

    /// The file's extension, so that the editor highlights it.
    pub fn extension(&self) -> &'static str {
        if self.json {
            "json"
        } else {
            "txt"
        }
    }

    pub fn outcome(&self, saved: &str) -> Outcome {
        let reopened = self.text.starts_with(NOTE);
        if reopened && saved == self.text {
            return Outcome::Abandoned;
        }
        let body = strip_notes(saved);
        let body = body
            .strip_suffix("\r\n")
            .or_else(|| body.strip_suffix('\n'))
            .unwrap_or(body);
        if body.trim().is_empty() && !self.original.trim().is_empty() {
            return Outcome::Abandoned;
        }
        if body == self.original || (self.json && json_text::same_tokens(body, &self.original)) {
            return Outcome::Unchanged;
        }
        if self.json {
            if let Err((line, col, msg)) = json_text::check(body) {
                let notes = [
                    format!("this is not valid JSON: line {}, column {col}: {msg}", line + 2),
                    "fix it and save to requeue the item with it; save an empty file to give up (these two lines are removed)".to_string(),
                ];
                let mut text = String::new();
                for n in &notes {
                    text.push_str(NOTE);
                    text.push_str(n);
                    text.push('\n');
                }
                text.push_str(&with_eol(body));
                let error = format!(
                    "the edited value is not valid JSON (line {}, column {col}: {msg})",
                    line + 2
                );
                return Outcome::Invalid(
                    EditSession {
                        text,
                        ..self.clone()
                    },
                    error,
                );
            }
        }
        Outcome::Changed(body.to_string())
    }
}

fn with_eol(s: &str) -> String {
    format!("{s}\n")
}

/// The saved text without workq's note lines at its top.
fn strip_notes(saved: &str) -> &str {
    let mut rest = saved;
    while rest.starts_with(NOTE) {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest
}

/// Writes `text` to `path`, runs `editor` on it through the shell (so `code --wait`
/// works) and reads back what was saved. The terminal is the caller's business.
pub fn run_editor(editor: &str, path: &std::path::Path, text: &str) -> Result<String, String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status();
    let saved = std::fs::read_to_string(path);
    let _ = std::fs::remove_file(path);
    match status {
        Ok(st) if st.success() => {}
        Ok(st) => return Err(format!("{editor} exited with {st}; nothing changed")),
        Err(e) => return Err(format!("cannot run {editor}: {e}; nothing changed")),
    }
    saved.map_err(|e| format!("cannot read the edited file: {e}; nothing changed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An editor: a script that edits the file it is given, as a person would.
    fn editor(dir: &std::path::Path, script: &str) -> String {
        let p = dir.join("ed.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    #[test]
    fn the_editor_gets_the_text_and_its_save_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let sess = EditSession::new(
            "01X".into(),
            r#"{"InvoiceId":"00123","Amount":4999.00}"#.into(),
        );
        let path = dir.path().join("v.json");
        // The script keeps what it was given, then writes the user's version.
        let ed = editor(
            dir.path(),
            r#"cp "$1" "$1.seen"; printf '{\n  "InvoiceId": "00123",\n  "Amount": 5000.00\n}\n' > "$1""#,
        );
        let saved = run_editor(&ed, &path, &sess.text).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("v.json.seen")).unwrap(),
            "{\n  \"InvoiceId\": \"00123\",\n  \"Amount\": 4999.00\n}\n"
        );
        assert_eq!(
            sess.outcome(&saved),
            Outcome::Changed("{\n  \"InvoiceId\": \"00123\",\n  \"Amount\": 5000.00\n}".into())
        );
        assert!(!path.exists(), "the temporary file is removed");
    }

    #[test]
    fn an_editor_that_fails_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ed = editor(dir.path(), "echo broken > \"$1\"; exit 3");
        let e = run_editor(&ed, &dir.path().join("v.txt"), "x\n").unwrap_err();
        assert!(
            e.contains("exited with") && e.contains("nothing changed"),
            "{e}"
        );
        let e = run_editor("/no/such/editor", &dir.path().join("v.txt"), "x\n").unwrap_err();
        assert!(e.contains("nothing changed"), "{e}");
    }
}
