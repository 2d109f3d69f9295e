//! A Garage node for this test binary, started with the project's own script.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Garage {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

/// The first of five consecutive free loopback ports in 14000–14999.
fn free_base(pid: u32) -> u32 {
    const SLOTS: u32 = 200;
    (0..SLOTS)
        .map(|i| 14000 + ((pid + i) % SLOTS) * 5)
        .find(|base| {
            (0..5).all(|k| std::net::TcpListener::bind(("127.0.0.1", (base + k) as u16)).is_ok())
        })
        .expect("five free consecutive ports in 14000-14999")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/garage.sh")
}

impl Garage {
    /// Start a node owned by this test process, on five consecutive ports that are free
    /// now, searched below the ephemeral range (where client sockets would take them)
    /// from a point derived from the pid.
    pub fn start_own() -> Self {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("serre-garage-{pid}"));
        let base = free_base(pid);
        let g = Self {
            dir,
            env: HashMap::new(),
        };
        g.run("start", Some(base));
        let env = std::fs::read_to_string(g.dir.join("env")).expect("garage env file");
        let env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { env, ..g }
    }

    fn run(&self, verb: &str, base: Option<u32>) {
        let mut cmd = Command::new(script());
        cmd.arg(verb)
            .arg(&self.dir)
            .env("SERRE_GARAGE_PARENT_PID", std::process::id().to_string());
        if let Some(b) = base {
            cmd.env("SERRE_GARAGE_PORT_BASE", b.to_string());
        }
        let status = cmd.status().expect("run deploy/dev/garage.sh");
        assert!(status.success(), "garage.sh {verb} failed");
    }

    pub fn stop(&self) {
        self.run("stop", None);
    }

    /// Start again after [`stop`](Self::stop), same configuration and data.
    pub fn restart(&self) {
        self.run("start", None);
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from garage env"))
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.get("SERRE_GARAGE_ADMIN_TOKEN_FILE"))
            .expect("admin token")
            .trim()
            .to_owned()
    }

    /// Every file under the data directory contains none of `needle`.
    pub fn data_dir_contains(&self, needle: &[u8]) -> bool {
        fn walk(p: &Path, needle: &[u8]) -> bool {
            let Ok(entries) = std::fs::read_dir(p) else {
                return false;
            };
            entries.flatten().any(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, needle)
                } else {
                    std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
                }
            })
        }
        walk(Path::new(self.get("GARAGE_DATA_DIR")), needle)
    }
}
