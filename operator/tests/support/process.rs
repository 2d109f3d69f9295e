//! The operator binary as a separate process, to kill and restart it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

pub struct OperatorProcess {
    pub child: Child,
    pub http: String,
    /// Run as PID 1 of its own PID namespace (`child` is then `unshare`).
    as_init: bool,
}

impl OperatorProcess {
    pub fn start(http_port: u16, extra: &[&str]) -> Self {
        Self::spawn(http_port, extra, false)
    }

    /// As in a container: PID 1 of a new PID namespace (`unshare --pid --fork`, root
    /// only), where the kernel drops every signal the process has no handler for, so a
    /// SIGTERM that is not listened to does nothing until the kubelet's SIGKILL.
    pub fn start_as_init(http_port: u16, extra: &[&str]) -> Self {
        Self::spawn(http_port, extra, true)
    }

    fn spawn(http_port: u16, extra: &[&str], as_init: bool) -> Self {
        let http = format!("127.0.0.1:{http_port}");
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("serre-operator-{http_port}.log")),
        )
        .expect("log file");
        let binary = env!("CARGO_BIN_EXE_serre-operator");
        let mut command = if as_init {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--kill-child", binary]);
            c
        } else {
            Command::new(binary)
        };
        let child = command
            .args([
                "run",
                "--http-addr",
                &http,
                "--namespace",
                super::OPERATOR_NAMESPACE,
                "--lease-duration",
                "4s",
            ])
            .args(extra)
            .env("KUBECONFIG", super::kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start serre-operator");
        Self {
            child,
            http,
            as_init,
        }
    }

    /// The operator's own process id: `unshare`'s child when run as PID 1.
    fn operator_pid(&self) -> Option<u32> {
        let own = self.child.id();
        if !self.as_init {
            return Some(own);
        }
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid …: the command may hold spaces, not ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == own).then_some(pid)
        })
    }

    /// SIGKILL: no cleanup, no lease release.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// SIGTERM, then how long the process took to exit; `None` if it still runs after
    /// `limit` (it is then killed).
    pub fn stop_within(mut self, limit: std::time::Duration) -> Option<std::time::Duration> {
        let pid = self.operator_pid().expect("the operator's process");
        let sent = std::time::Instant::now();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        while sent.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(sent.elapsed());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// A gauge from `/metrics` (no labels).
    pub fn gauge(&self, name: &str) -> Option<f64> {
        let body = http_get(&self.http, "/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Sum of a counter family from `/metrics` (all label sets).
    pub fn counter(&self, family: &str) -> Option<f64> {
        let body = http_get(&self.http, "/metrics")?;
        let prefix = format!("{family}_total");
        Some(
            body.lines()
                .filter(|l| l.starts_with(&prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP GET on loopback (status 200 only; the body is read to the close).
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    status
        .split(' ')
        .nth(1)
        .filter(|c| *c == "200")
        .map(|_| body.to_owned())
}
