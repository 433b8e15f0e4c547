//! A detached tmux on a socket of its own, driving the real binary: keys in, screen out.
//! Shared by the console smoke tests (local demo and remote console).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long a wait for the screen may take before the test fails (a guard, not a figure).
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Tmux {
    pub socket: String,
    /// The session the keys go to and the screen is read from.
    pub session: &'static str,
}

#[allow(dead_code)] // each test file uses its own part of it
impl Tmux {
    /// A server socket no other test run shares.
    pub fn new(tag: &str, session: &'static str) -> Tmux {
        Tmux {
            socket: format!(
                "workq-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ),
            session,
        }
    }
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", self.session]).stdout)
            .into_owned()
    }
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", self.session, k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    /// Waits until the screen shows every one of `texts`.
    pub fn wait_for(&self, texts: &[&str], what: &str) -> String {
        self.wait(what, texts, |s| texts.iter().all(|t| s.contains(t)))
    }
    /// Waits until the screen shows one of `texts`.
    pub fn wait_any(&self, texts: &[&str], what: &str) -> String {
        self.wait(what, texts, |s| texts.iter().any(|t| s.contains(t)))
    }
    fn wait(&self, what: &str, texts: &[&str], done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            if start.elapsed() > PATIENCE {
                panic!("waited {PATIENCE:?} for {what} ({texts:?}); the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
