use super::*;

// ---------------------------------------------------------------------------------------
// Processes: CPU time, memory, load
// ---------------------------------------------------------------------------------------

pub(crate) struct Pids {
    pub(crate) operator: u32,
    pub(crate) apiserver: Option<u32>,
    pub(crate) etcd: Option<u32>,
    pub(crate) controller_manager: Option<u32>,
}

/// CPU ticks (user + system) of the processes involved and of the whole machine.
pub(crate) struct CpuSample {
    pub(crate) processes: Vec<(&'static str, u64)>,
    pub(crate) machine_busy: u64,
}

impl CpuSample {
    pub(crate) fn take(p: &Pids) -> Self {
        let me = std::process::id();
        let processes = [
            ("operator", Some(p.operator)),
            ("kube-apiserver", p.apiserver),
            ("etcd", p.etcd),
            ("kube-controller-manager", p.controller_manager),
            ("benchmark client", Some(me)),
        ]
        .into_iter()
        .filter_map(|(name, pid)| Some((name, process_ticks(pid?)?)))
        .collect();
        Self {
            processes,
            machine_busy: machine_busy_ticks().unwrap_or(0),
        }
    }

    /// CPU seconds per process between two samples, with everything else on the machine
    /// (other engineers' builds) as "others".
    pub(crate) fn since(&self, before: &CpuSample, wall: Duration) -> Value {
        let hz = clock_ticks_per_second();
        let mut out = serde_json::Map::new();
        let mut ours = 0;
        for (name, t) in &self.processes {
            if let Some((_, b)) = before.processes.iter().find(|(n, _)| n == name) {
                ours += t - b;
                out.insert((*name).to_owned(), json!((t - b) as f64 / hz));
            }
        }
        let busy = self.machine_busy.saturating_sub(before.machine_busy);
        out.insert(
            "others".into(),
            json!(busy.saturating_sub(ours) as f64 / hz),
        );
        out.insert("machine_busy".into(), json!(busy as f64 / hz));
        out.insert("wall".into(), json!(wall.as_secs_f64()));
        out.into()
    }
}

pub(crate) fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    Some(cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?)
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (VmHWM, VmRSS) in KiB.
pub(crate) fn proc_status_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

pub(crate) fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

pub(crate) fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
