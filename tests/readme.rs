//! The README's walkthrough, run from the README itself: the fenced block after the
//! `walkthrough` marker, line by line in bash against a temporary database, with the real
//! binary first on PATH. The README can never go stale without this failing.

use std::path::Path;
use std::process::Command;

fn walkthrough() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split_once("<!-- walkthrough:")
        .expect("the README marks its walkthrough")
        .1;
    let block = after
        .split_once("```sh\n")
        .expect("a sh block follows the marker")
        .1;
    block
        .split_once("\n```")
        .expect("the block ends")
        .0
        .to_string()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let script = walkthrough();
    assert!(script.contains("workq import"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    // Run from a copy of the tutorial folder's parent, so the relative paths of the
    // README (assets/tutorial/…, ./tutorial.db) hold and nothing lands in the checkout.
    let assets = dir.path().join("assets/tutorial");
    std::fs::create_dir_all(&assets).unwrap();
    for f in ["invoices.csv", "invoices.jsonl"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("assets/tutorial")
                .join(f),
            assets.join(f),
        )
        .unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("workq");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(format!("set -x\n{script}"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("USER", "tester")
        .env("TZ", "UTC")
        .env_remove("WORKQ_DB")
        .env_remove("WORKQ_REMOTE")
        .env("WORKQ_CONFIG", dir.path().join("config.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // What the newcomer is told happens, happened.
    assert!(
        stdout.contains("imported 10 items into 'invoices'"),
        "{stdout}"
    );
    assert!(stdout.contains("exception (business)"), "{stdout}");
    // The agent's script sent the one invoice over 5000.00 to the inbox.
    assert!(stdout.contains("hold: 2 items (action 1"), "{stdout}");
    assert!(dir.path().join("tutorial.db").exists());
    // The last command lists the exception back where it was: undone, not on hold.
    let db = dir.path().join("tutorial.db");
    let ls = Command::new(&bin)
        .args(["--json", "--db"])
        .arg(&db)
        .args(["item", "ls", "invoices", "--status", "exception"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let items = v.as_array().unwrap_or_else(|| panic!("{v}"));
    let mut keys: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, vec!["INV-1002", "INV-1005"], "{v}");
    assert!(items.iter().all(|i| i["reason"] == "business"), "{v}");
    let processed = Command::new(&bin)
        .args(["--json", "--db"])
        .arg(&db)
        .args(["item", "ls", "invoices", "--status", "processed"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&processed.stdout).unwrap();
    // The bot's one and the agent's seven, each with its note.
    assert_eq!(v.as_array().unwrap().len(), 8, "{v}");
    let first = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "INV-1001")
        .unwrap();
    assert_eq!(first["notes"][0]["text"], "posted to SAP as 5100001234");
    let agent = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "INV-1003")
        .unwrap();
    assert_eq!(
        agent["notes"][0]["text"].as_str().unwrap().trim_end(),
        "posted INV-1003 to SAP"
    );
    // The header kept its exact spelling and the BOM did not leak into the first key.
    assert!(first["value"]
        .as_str()
        .unwrap()
        .starts_with("{\"InvoiceId\":\"INV-1001\""));
}

#[test]
fn the_tutorial_files_import_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let bin = assert_cmd::cargo::cargo_bin("workq");
    let run = |args: &[&str]| {
        let o = Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(&["queue", "create", "t"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tutorial");
    let jsonl = root.join("invoices.jsonl");
    let out = run(&["import", "t", jsonl.to_str().unwrap()]);
    assert!(out.contains("imported 3 items"), "{out}");
    let csv = root.join("invoices.csv");
    let out = run(&[
        "import",
        "t",
        csv.to_str().unwrap(),
        "--key-column",
        "InvoiceId",
    ]);
    assert!(out.contains("imported 10 items"), "{out}");
    // "Litware, Inc." was quoted in the export and comes back whole.
    let out = run(&["--json", "item", "ls", "t", "--search", "Litware"]);
    assert!(out.contains("Litware, Inc."), "{out}");
}
