use super::*;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;

// ---------------------------------------------------------------------------------------
// In-cluster mode (IN_CLUSTER=1): Serre installed with Helm on the control plane's node
// ---------------------------------------------------------------------------------------

/// The operator as ops run it: `deploy/dev/node.sh` adds a real node to the bench's
/// control plane and `deploy/dev/install.sh` builds the images, pushes them to the node's
/// registry, starts Garage and installs the chart (two operator replicas, storage on).
/// Garage and the OpenID provider are stopped when dropped (the node stops with the
/// control plane).
pub(crate) struct Installed {
    state: PathBuf,
    /// The leader Pod's `/metrics` address (its Pod IP, routed to the node from here).
    pub(crate) http: String,
    /// The leader's `serre-operator` process, as this machine sees it.
    pub(crate) pid: u32,
    pub(crate) leader: String,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/dev/{name}"))
}

impl Installed {
    pub(crate) async fn start(p: &Params, cp: &ControlPlane, client: &Client) -> Result<Self> {
        let state = cp.dir.join("serre");
        let status = Command::new(script("node.sh"))
            .arg("start")
            .arg(&cp.dir)
            .status()
            .context("run deploy/dev/node.sh")?;
        if !status.success() {
            bail!("the node did not start (logs in {})", cp.dir.display());
        }
        // The bench's resync period; everything else is the chart's default.
        let values = cp.dir.join("bench-values.yaml");
        std::fs::write(&values, format!("runtime:\n  resync: {}\n", p.resync))?;
        let profile = std::env::var("SERRE_CARGO_PROFILE").unwrap_or_else(|_| "release".into());
        let status = Command::new(script("install.sh"))
            .arg("up")
            .arg(&cp.dir)
            .arg(&state)
            .env("SERRE_INSTALL_VALUES", &values)
            .env("SERRE_CARGO_PROFILE", profile)
            .status()
            .context("run deploy/dev/install.sh")?;
        let mut installed = Self {
            state,
            http: String::new(),
            pid: 0,
            leader: String::new(),
        };
        if !status.success() {
            bail!("helm install failed (see above)");
        }
        installed.find_leader(client).await?;
        Ok(installed)
    }

    /// The install's state directory (Garage, Prometheus, the OpenID provider).
    pub(crate) fn state(&self) -> &Path {
        &self.state
    }

    /// Every Pod of the cluster by uid: `namespace/component` (its
    /// `app.kubernetes.io/component` label, else its name).
    pub(crate) async fn pods(client: &Client) -> Result<HashMap<String, String>> {
        let pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await?;
        Ok(pods
            .items
            .iter()
            .filter_map(|p| {
                let what = p
                    .labels()
                    .get("app.kubernetes.io/component")
                    .cloned()
                    .unwrap_or_else(|| p.name_any());
                Some((p.uid()?, format!("{}/{what}", p.namespace()?)))
            })
            .collect())
    }

    /// Garage's `/metrics` (its admin port, no token: Garage's default), if it answers.
    pub(crate) fn garage_metrics(&self) -> Option<Prom> {
        let env = std::fs::read_to_string(self.state.join("garage/env")).ok()?;
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix("SERRE_GARAGE_ADMIN_ENDPOINT="))?;
        scrape(url.trim().trim_start_matches("http://"))
    }

    /// The Pod that holds the leader Lease: its metrics address and host process.
    async fn find_leader(&mut self, client: &Client) -> Result<()> {
        let leases = Api::<Lease>::namespaced(client.clone(), OPERATOR_NAMESPACE);
        let pods = Api::<Pod>::namespaced(client.clone(), OPERATOR_NAMESPACE);
        let deadline = Instant::now() + Duration::from_secs(60);
        let leader = loop {
            let holder = leases
                .get_opt("serre-operator-leader")
                .await?
                .and_then(|l| l.spec?.holder_identity);
            match holder {
                Some(h) => break h,
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                None => bail!("no operator holds the Lease serre-operator-leader"),
            }
        };
        let pod = pods.get(&leader).await.context("the leader Pod")?;
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .context("the leader Pod has no IP")?;
        let uid = pod.uid().context("the leader Pod has no uid")?;
        self.pid = operator_process(&uid)
            .with_context(|| format!("no serre-operator process in Pod {leader}'s cgroup"))?;
        self.http = format!("{ip}:8080");
        self.leader = leader;
        Ok(())
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new(script("install.sh"))
            .arg("down")
            .arg(&self.state)
            .status();
    }
}

/// The `serre-operator` process whose cgroup path names the Pod's uid (the kubelet's
/// cgroupfs layout: `…/kubepods/<class>/pod<uid>/<container>`).
fn operator_process(pod_uid: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        (comm.trim() == "serre-operator" && cgroup.contains(&format!("pod{pod_uid}")))
            .then_some(pid)
    })
}
