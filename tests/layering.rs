//! Modules depend one way (ARCHITECTURE §1): the model and the rules at the bottom, the
//! stores above them, `connect` above the stores, then the console, the CLI, the demo and
//! the bench, which get their backend from `connect` and never import one another (the
//! CLI only names the demo's and the bench's argument types; the bench drives the console).
//! `main.rs` alone knows them all. Read from the source, so a new import cannot slip in.

use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and the modules it must not use (`SqliteStore`: the
/// store's re-export at the crate root).
const RULES: &[(&str, &[&str])] = &[
    (
        "model",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    // Counts as people read them: the bottom, so engine errors may say them too.
    (
        "numbers",
        &[
            "model", "rules", "error", "text", "store", "connect", "cli", "tui", "demo", "bench",
        ],
    ),
    (
        "rules",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    (
        "clock",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    ("text", &["store", "connect", "cli", "tui", "demo", "bench"]),
    (
        "json_text",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    (
        "error",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    (
        "backend",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    (
        "import",
        &["store", "connect", "cli", "tui", "demo", "bench"],
    ),
    // Alert rules are pure like `rules`; the checker uses only the Backend seam.
    (
        "alert",
        &["store", "connect", "cli", "tui", "demo", "bench", "server"],
    ),
    (
        "alerting",
        &["store", "connect", "cli", "tui", "demo", "bench", "server"],
    ),
    (
        "token",
        &["store", "connect", "cli", "tui", "demo", "bench", "server"],
    ),
    (
        "api",
        &["store", "connect", "cli", "tui", "demo", "bench", "server"],
    ),
    (
        "store",
        &["connect", "cli", "tui", "demo", "bench", "server"],
    ),
    // `workq migrate` copies one store's tables into the other's: it knows both stores
    // and nothing of the front ends.
    (
        "migrate",
        &["connect", "cli", "tui", "demo", "bench", "server"],
    ),
    // The server wraps whatever backend it is handed: no store, no front end.
    (
        "server",
        &[
            "cli",
            "tui",
            "demo",
            "bench",
            "store",
            "SqliteStore",
            "connect",
        ],
    ),
    // The HTTP client speaks the server's bodies (api) over the wire: no store, no server
    // code, no front end; `connect` chooses it.
    (
        "client",
        &[
            "cli",
            "tui",
            "demo",
            "bench",
            "store",
            "SqliteStore",
            "connect",
            "server",
        ],
    ),
    // The config file: read by connect and the console, using neither.
    (
        "config",
        &[
            "cli",
            "tui",
            "demo",
            "bench",
            "store",
            "SqliteStore",
            "connect",
            "server",
            "client",
        ],
    ),
    ("connect", &["cli", "tui", "demo", "bench"]),
    ("tui", &["cli", "demo", "bench", "store", "SqliteStore"]),
    ("cli", &["tui", "store", "SqliteStore"]),
    // The agent: only the Backend trait, whichever backend connect built.
    (
        "worker",
        &[
            "tui",
            "store",
            "SqliteStore",
            "cli",
            "demo",
            "bench",
            "connect",
            "server",
            "client",
        ],
    ),
    ("demo", &["cli", "tui", "bench", "store", "SqliteStore"]),
    ("bench", &["cli", "demo"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `crate::` modules a source text names: `crate::cli::…` and `crate::{cli, …}`.
fn named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|n| n.trim().split("::").next().unwrap_or(""))
                .collect(),
            None => vec![rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")],
        };
        out.extend(names.into_iter().map(str::to_string));
    }
    out
}

#[test]
fn modules_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut seen = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let forbidden = RULES
            .iter()
            .find(|(m, _)| *m == top)
            .unwrap_or_else(|| panic!("src/{top}: a new module; say in RULES what it may use"))
            .1;
        seen.insert(top.clone());
        let text = std::fs::read_to_string(f).unwrap();
        for n in named(&text) {
            if forbidden.contains(&n.as_str()) {
                wrong.push(format!("{} uses crate::{n}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
    // The check looked at what it guards.
    for m in ["tui", "cli", "store", "connect", "bench", "demo", "error"] {
        assert!(seen.contains(m), "no files of src/{m} found");
    }
}

#[test]
fn the_import_reader_sees_both_forms() {
    assert_eq!(
        named("use crate::cli::output::Failure;\nlet x = crate::tui::run();"),
        ["cli", "tui"]
    );
    assert_eq!(
        named("use crate::{backend::Backend, cli, model::*};"),
        ["backend", "cli", "model"]
    );
}
