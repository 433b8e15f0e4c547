//! A newcomer's first hour, with the real binary: `workq config path|init|check|show|theme`
//! on files in a temporary directory (WORKQ_CONFIG points there, so the user's own config
//! is never touched), the shell completion scripts parsed by the shells that are here, and
//! the man page.

use assert_cmd::Command;
use std::path::Path;
use std::time::Duration;

fn workq(config: &Path) -> Command {
    let mut c = Command::cargo_bin("workq").unwrap();
    c.env_remove("WORKQ_DB")
        .env_remove("WORKQ_REMOTE")
        .env_remove("WORKQ_TOKEN")
        .env_remove("NO_COLOR")
        .env("WORKQ_CONFIG", config)
        .env("USER", "tester")
        .timeout(Duration::from_secs(60));
    c
}

fn out(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn err(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn shipped(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn config_init_writes_the_commented_default_once_and_path_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sub/dir/config.toml");
    let a = workq(&cfg).args(["config", "path"]).assert().success();
    assert_eq!(out(&a), format!("{}\n", cfg.display()));
    assert!(err(&a).contains("workq config init"), "{}", err(&a));
    let a = workq(&cfg)
        .args(["--json", "config", "path"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out(&a)).unwrap();
    assert_eq!(v["exists"], false);

    workq(&cfg).args(["config", "init"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        shipped("assets/config.toml")
    );
    // A second init refuses and leaves the user's edits alone; --force replaces them.
    std::fs::write(&cfg, "theme = \"light\"\n").unwrap();
    let a = workq(&cfg).args(["config", "init"]).assert().code(1);
    assert!(
        err(&a).contains("already there") && err(&a).contains("--force"),
        "{}",
        err(&a)
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "theme = \"light\"\n"
    );
    workq(&cfg)
        .args(["config", "init", "--force"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        shipped("assets/config.toml")
    );
    let a = workq(&cfg).args(["config", "check"]).assert().success();
    assert!(out(&a).ends_with(": no problems\n"), "{}", out(&a));
}

#[test]
fn config_check_names_every_problem_with_its_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let file = dir.path().join("mine.toml");
    std::fs::write(
        &file,
        "theme = \"purple\"\r\nmouse = \"yes\"\r\n[keys]\r\nhold = \"r\"\r\nfrobnicate = \"x\"\r\nnote = 4\r\n",
    )
    .unwrap();
    let a = workq(&cfg)
        .args(["config", "check"])
        .arg(&file)
        .assert()
        .code(1);
    let lines: Vec<String> = out(&a).lines().map(str::to_string).collect();
    let f = file.display().to_string();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[0].starts_with(&format!("{f}:1: theme 'purple' is not dark or light")));
    assert!(lines[1].starts_with(&format!("{f}:2: mouse: give true or false")));
    assert!(lines[2].starts_with(&format!("{f}:4: keys.hold: 'r' is already 'requeue'")));
    assert!(lines[3].starts_with(&format!("{f}:5: keys.frobnicate: no such command")));
    assert!(lines[4].starts_with(&format!("{f}:6: keys.note: give a key")));
    assert!(err(&a).contains("5 problems"), "{}", err(&a));
    // An unknown setting, as JSON.
    std::fs::write(&file, "mouse = true\ncolour = \"red\"\n").unwrap();
    let a = workq(&cfg)
        .args(["--json", "config", "check"])
        .arg(&file)
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&out(&a)).unwrap();
    let p = v["problems"][0].as_str().unwrap();
    assert!(
        p.starts_with(&format!("{f}:2: ")) && p.contains("colour"),
        "{p}"
    );
    // No file at all is said as such.
    let a = workq(&cfg).args(["config", "check"]).assert().code(1);
    assert!(err(&a).contains("no config file at"), "{}", err(&a));
    // The file the check read is unchanged.
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "mouse = true\ncolour = \"red\"\n"
    );
}

#[test]
fn a_theme_of_ones_own_is_found_beside_the_config_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::create_dir(dir.path().join("themes")).unwrap();
    // Start from a built-in one, as the default config says.
    let a = workq(&cfg)
        .args(["config", "theme", "light"])
        .assert()
        .success();
    assert_eq!(out(&a), shipped("assets/themes/light.toml"));
    let mine = out(&a).replace(
        "title = { fg = \"blue\", bold = true }",
        "title = { fg = \"#ff8800\" }",
    );
    std::fs::write(dir.path().join("themes/sunset.toml"), mine).unwrap();
    std::fs::write(&cfg, "theme = \"sunset\"\n").unwrap();
    workq(&cfg).args(["config", "check"]).assert().success();
    // A broken part is named in the theme's own file, at its line.
    std::fs::write(
        dir.path().join("themes/sunset.toml"),
        "extends = \"light\"\n\ntitle = { fg = \"mauve\" }\n",
    )
    .unwrap();
    let a = workq(&cfg).args(["config", "check"]).assert().code(1);
    assert!(
        out(&a).contains("sunset.toml:3: title: fg: 'mauve' is not a colour"),
        "{}",
        out(&a)
    );
    let a = workq(&cfg)
        .args(["config", "theme", "solar"])
        .assert()
        .code(1);
    assert!(err(&a).contains("no built-in theme 'solar'"), "{}", err(&a));
}

#[test]
fn config_show_prints_the_effective_settings_and_where_each_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "# mine\nmouse = false\nrefresh = \"2s\"\n[keys]\nrequeue = \"alt-r\"\nhold = \"r\"\n",
    )
    .unwrap();
    let a = workq(&cfg)
        .env("WORKQ_DB", dir.path().join("w.db"))
        .args(["config", "show"])
        .assert()
        .success();
    let text = out(&a);
    let f = cfg.display().to_string();
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start} in {text}"))
            .to_string()
    };
    assert!(line("theme = \"dark\"").ends_with("# default"));
    assert!(line("mouse = false").ends_with(&format!("# {f}:2")));
    assert!(line("refresh = \"2s\"").ends_with(&format!("# {f}:3")));
    assert!(line("requeue = \"alt-r\"").ends_with(&format!("# {f}:5")));
    // The refused binding shows the key that applies, and says the problem on stderr.
    assert!(line("hold = \"h\"").ends_with("# default"));
    assert!(err(&a).contains("keys.hold"), "{}", err(&a));
    assert!(text.contains("# WORKQ_DB="), "{text}");
}

/// The completion scripts, from the binary; each parsed by its shell where it is installed.
#[test]
fn completion_scripts_parse_in_their_shells() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    for (shell, check) in [
        ("bash", Some(["bash", "-n"])),
        ("zsh", Some(["zsh", "-n"])),
        ("fish", Some(["fish", "--no-execute"])),
        ("powershell", None),
    ] {
        let a = workq(&cfg).args(["completions", shell]).assert().success();
        let script = out(&a);
        for sub in ["queue", "import", "dequeue", "config", "completions"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
        let Some([prog, flag]) = check else { continue };
        if std::process::Command::new(prog)
            .arg("-c")
            .arg("true")
            .output()
            .is_err()
        {
            assert_ne!(prog, "bash", "bash must be here to check its completions");
            continue;
        }
        let file = dir.path().join(format!("workq.{shell}"));
        std::fs::write(&file, &script).unwrap();
        let r = std::process::Command::new(prog)
            .arg(flag)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let a = workq(&cfg).args(["completions", "tcsh"]).assert().code(2);
    assert!(err(&a).contains("tcsh"), "{}", err(&a));
}

/// What bash offers at a tab: subcommands, flags, and queue names from the database the
/// command line names.
#[test]
fn bash_completes_subcommands_flags_and_queue_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let db = dir.path().join("w.db");
    for q in ["invoices", "inbox-scans"] {
        workq(&cfg)
            .arg("--db")
            .arg(&db)
            .args(["queue", "create", q])
            .assert()
            .success();
    }
    let script = dir.path().join("workq.bash");
    let a = workq(&cfg).args(["completions", "bash"]).assert().success();
    std::fs::write(&script, out(&a)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("workq");
    let complete = |words: &str| -> Vec<String> {
        let line = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _workq_queues workq \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let r = std::process::Command::new("bash")
            .arg("-c")
            .arg(line)
            .env("WORKQ_CONFIG", &cfg)
            .env_remove("WORKQ_DB")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let d = db.display();
    assert_eq!(
        complete(&format!("workq --db {d} queue inspect ''")),
        vec!["inbox-scans", "invoices"]
    );
    assert_eq!(
        complete(&format!("workq --db {d} item ls --queue inv")),
        vec!["invoices"]
    );
    assert_eq!(
        complete(&format!("workq --db {d} import ''")),
        vec!["inbox-scans", "invoices"]
    );
    let subs = complete("workq qu");
    assert_eq!(subs, vec!["queue"]);
    let flags = complete("workq import --dry");
    assert!(flags.contains(&"--dry-run".to_string()), "{flags:?}");
}

#[test]
fn the_man_page_names_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let a = workq(&dir.path().join("c.toml"))
        .arg("man")
        .assert()
        .success();
    let page = out(&a);
    assert!(page.contains(".TH workq 1"), "{page}");
    for sub in ["queue", "import", "serve", "config", "completions"] {
        assert!(page.contains(sub), "{sub}");
    }
}
