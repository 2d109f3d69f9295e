use super::*;

// ---------------------------------------------------------------------------------------
// CPU time per component: every process of the bench's stack, by what it is
// ---------------------------------------------------------------------------------------

/// The processes the bench knows by pid, and (in a cluster) how to recognise the node's.
pub(crate) struct Pids {
    pub(crate) operator: u32,
    pub(crate) apiserver: Option<u32>,
    pub(crate) etcd: Option<u32>,
    pub(crate) controller_manager: Option<u32>,
    pub(crate) node: Option<NodeProcesses>,
}

/// The node of `deploy/dev/node.sh` and what `deploy/dev/install.sh` starts beside it.
pub(crate) struct NodeProcesses {
    /// Long-lived processes by their pid files: (component, pid).
    by_pid: Vec<(&'static str, u32)>,
    /// The node's mount namespace (containerd's): its shims and helpers share it.
    mount_ns: Option<PathBuf>,
    /// `/serre-nN/`: the cgroup root of the node's Pods.
    pod_cgroup: String,
    /// What each Pod is, by uid: `namespace/component` (its `app.kubernetes.io/component`
    /// label, else its name).
    pods: HashMap<String, String>,
}

impl NodeProcesses {
    /// From the control plane's directory (`node/*.pid`, `net-index`) and the install's
    /// state directory (`garage/`, `prometheus/`, `oidc/`).
    pub(crate) fn find(
        cluster: &Path,
        state: &Path,
        pods: HashMap<String, String>,
    ) -> Option<Self> {
        let pid =
            |p: PathBuf| -> Option<u32> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        let node = cluster.join("node");
        let by_pid: Vec<(&'static str, u32)> = [
            ("containerd", node.join("containerd.pid")),
            ("kubelet", node.join("kubelet.pid")),
            ("kube-proxy", node.join("kube-proxy.pid")),
            ("kube-scheduler", node.join("kube-scheduler.pid")),
            ("registry", node.join("registry.pid")),
            ("garage", state.join("garage/garage.pid")),
            ("prometheus", state.join("prometheus/prometheus.pid")),
            ("oidc-provider", state.join("oidc/oidc-provider.pid")),
        ]
        .into_iter()
        .filter_map(|(name, p)| Some((name, pid(p)?)))
        .collect();
        let index = std::fs::read_to_string(cluster.join("net-index")).ok()?;
        let containerd = by_pid.iter().find(|(n, _)| *n == "containerd").map(|p| p.1);
        Some(Self {
            mount_ns: containerd.and_then(|p| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok()),
            pod_cgroup: format!("/serre-n{}/", index.trim()),
            pods,
            by_pid,
        })
    }
}

/// One process as sampled: its component and CPU ticks (its own, plus those of the
/// children it has reaped: runc, CNI plugins, iptables, mount…).
struct Proc {
    component: String,
    ticks: u64,
}

/// CPU ticks of every process of the stack, and of the whole machine.
pub(crate) struct CpuSample {
    /// By (pid, start time): a pid reused within the window is another process.
    processes: HashMap<(u32, u64), Proc>,
    machine_busy: u64,
}

impl CpuSample {
    pub(crate) fn take(p: &Pids) -> Self {
        let me = std::process::id();
        let known: Vec<(&'static str, u32)> = [
            ("operator", Some(p.operator)),
            ("kube-apiserver", p.apiserver),
            ("etcd", p.etcd),
            ("kube-controller-manager", p.controller_manager),
            ("benchmark client", Some(me)),
        ]
        .into_iter()
        .filter_map(|(n, pid)| Some((n, pid?)))
        .chain(p.node.iter().flat_map(|n| n.by_pid.iter().copied()))
        .collect();
        let mut processes = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(stat) = read_stat(pid) else { continue };
            let component = known
                .iter()
                .find(|(_, k)| *k == pid)
                .map(|(n, _)| (*n).to_owned())
                .or_else(|| {
                    p.node
                        .as_ref()
                        .and_then(|n| node_component(n, pid, &stat.comm))
                });
            if let Some(component) = component {
                processes.insert(
                    (pid, stat.start),
                    Proc {
                        component,
                        ticks: stat.ticks,
                    },
                );
            }
        }
        Self {
            processes,
            machine_busy: machine_busy_ticks().unwrap_or(0),
        }
    }

    /// CPU seconds per component between two samples; what the machine spent besides
    /// (other sessions' builds, the system) is "outside the bench". A process that
    /// started within the window counts from zero; one that ended within it is lost
    /// (its reaped time shows in its parent, if the parent is ours).
    pub(crate) fn since(&self, before: &CpuSample, wall: Duration) -> Value {
        let hz = clock_ticks_per_second();
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for (key, p) in &self.processes {
            let b = before.processes.get(key).map_or(0, |b| b.ticks);
            *by.entry(p.component.as_str()).or_default() += p.ticks.saturating_sub(b);
        }
        let ours: u64 = by.values().sum();
        let busy = self.machine_busy.saturating_sub(before.machine_busy);
        let mut out = serde_json::Map::new();
        for (name, t) in &by {
            out.insert((*name).to_owned(), json!(round2(*t as f64 / hz)));
        }
        out.insert("stack_total".into(), json!(round2(ours as f64 / hz)));
        out.insert(
            "outside_the_bench".into(),
            json!(round2(busy.saturating_sub(ours) as f64 / hz)),
        );
        out.insert("machine_busy".into(), json!(round2(busy as f64 / hz)));
        out.insert(
            "machine_capacity".into(),
            json!(round2(
                wall.as_secs_f64()
                    * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
            )),
        );
        out.insert("wall".into(), json!(wall.as_secs_f64()));
        out.into()
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A node process not known by pid: a Pod's process (by its cgroup, named after its
/// Pod) or one of the node's helpers (by its mount namespace).
fn node_component(n: &NodeProcesses, pid: u32, comm: &str) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if cgroup.contains(&n.pod_cgroup) {
        if comm == "pause" {
            return Some("Pods' pause containers".into());
        }
        // …/kubepods/<class>/pod<uid>/<container>
        let pod = cgroup
            .split('/')
            .find_map(|part| part.strip_prefix("pod"))
            .and_then(|uid| n.pods.get(uid));
        return Some(match pod.map(String::as_str) {
            // The leader is known by pid: any other operator process is the standby.
            Some(p) if p.ends_with("/operator") => "operator (standby Pod)".into(),
            Some(p) if p.ends_with("/gateway") => "gateway Pod".into(),
            Some(p) => format!("Pod {p}"),
            None => "other Pods".into(),
        });
    }
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
    if Some(&ns) != n.mount_ns.as_ref() {
        return None;
    }
    Some(if comm.starts_with("containerd-shim") {
        "containerd shims".into()
    } else {
        "node: other processes".into()
    })
}

struct Stat {
    comm: String,
    start: u64,
    ticks: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // After the command name: state is field 3; utime, stime, cutime, cstime are
    // fields 14–17 and starttime is field 22.
    let f: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Stat {
        comm,
        start: n(19)?,
        ticks: n(11)? + n(12)? + n(13)? + n(14)?,
    })
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
