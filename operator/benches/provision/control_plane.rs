use super::*;

// ---------------------------------------------------------------------------------------
// Control plane and operator processes
// ---------------------------------------------------------------------------------------

/// A control plane of its own in a temporary directory; stopped when dropped, and its
/// directory removed unless the run failed or `KEEP_CONTROL_PLANE` is set.
pub(crate) struct ControlPlane {
    pub(crate) dir: PathBuf,
    pub(crate) port_base: u16,
    pub(crate) keep: bool,
    pub(crate) succeeded: bool,
}

impl ControlPlane {
    pub(crate) fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/control-plane.sh")
    }

    pub(crate) fn start(port_base: u16, keep: bool) -> Result<Self> {
        for port in [
            port_base,
            port_base + 1,
            port_base + 2,
            port_base + 3,
            port_base + 4,
        ] {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                bail!("port {port} is in use: set SERRE_CP_PORT_BASE to a free range of 5 ports");
            }
        }
        let dir =
            std::env::temp_dir().join(format!("serre-bench-provision-{}", std::process::id()));
        let cp = Self {
            dir,
            port_base,
            keep,
            succeeded: false,
        };
        let status = Command::new(Self::script())
            .arg("start")
            .arg(&cp.dir)
            .env("SERRE_CP_PORT_BASE", port_base.to_string())
            // Torn down even if this process is killed.
            .env("SERRE_CP_PARENT_PID", std::process::id().to_string())
            .status()
            .context("run deploy/dev/control-plane.sh")?;
        if !status.success() {
            bail!(
                "the control plane did not start (logs in {})",
                cp.dir.display()
            );
        }
        Ok(cp)
    }

    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(crate) fn token(&self) -> Option<String> {
        let csv = std::fs::read_to_string(self.dir.join("pki/tokens.csv")).ok()?;
        Some(csv.split(',').next()?.trim().to_owned())
    }

    /// The kube-apiserver's `/metrics`, read with the admin token and the cluster CA.
    pub(crate) fn apiserver_metrics(&self) -> Result<Prom> {
        let ca = self.dir.join("pki/ca.crt");
        // The API server listens on the host address (deploy/dev/lib.sh), as its kubeconfig says.
        let kubeconfig = std::fs::read_to_string(self.dir.join("kubeconfig"))
            .context("read the control plane's kubeconfig")?;
        let server = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .context("no server in the control plane's kubeconfig")?;
        let url = format!("{server}/metrics");
        self.curl(&["--cacert", &ca.to_string_lossy(), &url])
            .context("kube-apiserver /metrics")
    }

    /// The controller-manager's own `/metrics` (its `rest_client_requests_total` says
    /// how many writes it sent). Its serving certificate is self-signed, hence `-k`.
    pub(crate) fn controller_manager_metrics(&self) -> Option<Prom> {
        let url = format!("https://127.0.0.1:{}/metrics", self.port_base + 2);
        self.curl(&["-k", &url]).ok()
    }

    /// GET with the admin token (curl: the metrics endpoints are plain text over TLS).
    pub(crate) fn curl(&self, args: &[&str]) -> Result<Prom> {
        let token = self.token().context("no admin token in pki/tokens.csv")?;
        let out = Command::new("curl")
            .args(["-sSf", "--max-time", "20", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(args)
            .output()
            .context("run curl")?;
        if !out.status.success() {
            bail!(
                "curl failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Prom::parse(&String::from_utf8_lossy(&out.stdout)))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        if self.succeeded && !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "provision: control plane directory kept: {}",
                self.dir.display()
            );
        }
    }
}

/// The operator binary as a child process; killed when dropped.
pub(crate) struct Operator {
    pub(crate) child: Child,
    pub(crate) http: String,
}

impl Operator {
    pub(crate) fn args(p: &Params) -> Vec<String> {
        [
            "run",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--platform-egress",
            PLATFORM_EGRESS,
            "--resync",
            p.resync.as_str(),
            "--lease-duration",
            "5s",
            "--http-addr",
            p.operator_http().as_str(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    pub(crate) fn start(p: &Params, kubeconfig: &Path, log: &Path) -> Result<Self> {
        let child = Command::new(OPERATOR_BIN)
            .args(Self::args(p))
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("start serre-operator")?;
        Ok(Self {
            child,
            http: p.operator_http(),
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub(crate) fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
