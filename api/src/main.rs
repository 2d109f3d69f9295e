//! `serre-api`: the gateway (`serve`), development tokens (`dev-token`), the audit log
//! (`audit verify`, `audit export`), the OpenAPI document (`openapi`), a trial run's
//! init step (`fetch-grants`), the node agent exporting RAPL energy (`node-energy`) and
//! the creation of the dataset keys' Secret (`data-keys`).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serre_api::audit::{self, ChainChecker, VerifyReport};
use serre_api::config::{Config, LogFormat, parse_duration, read_secret};
use serre_api::identity::dev::{DevClaims, DevIssuer};
use serre_api::store::{AuditRow, Store};
use utoipa::OpenApi;

#[derive(Parser)]
#[command(name = "serre-api", version, about = "Serre gateway")]
struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "SERRE_API_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(Box<Config>),
    /// Mint a token the development issuer signs (trusted only with --dev-issuer).
    DevToken(DevToken),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// A trial run's init step: fetch the granted views with the run's token.
    FetchGrants(FetchGrants),
    /// Node agent: export the node's RAPL energy and busy CPU time to Prometheus.
    NodeEnergy(NodeEnergy),
    /// Create the gateway's dataset keys as a Secret, unless it exists (the chart's
    /// install hook runs it).
    DataKeys(DataKeysSecret),
}

#[derive(clap::Args)]
struct DataKeysSecret {
    /// Namespace of the Secret (the gateway's).
    #[arg(long)]
    namespace: String,
    /// Name of the Secret (chart value `gateway.data.keysSecret`).
    #[arg(long, default_value = "serre-gateway-data-keys")]
    secret: String,
}

#[derive(clap::Args)]
struct NodeEnergy {
    /// The node's name as Kubernetes knows it (downward API `spec.nodeName`).
    #[arg(long, env = "SERRE_NODE_NAME")]
    node: String,
    /// Address serving `/metrics`.
    #[arg(long, env = "SERRE_NODE_ENERGY_LISTEN", default_value = "0.0.0.0:9102")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value = "/sys/class/powercap")]
    powercap: PathBuf,
    #[arg(long, default_value = "/proc/stat")]
    proc_stat: PathBuf,
    /// Also count the DRAM zones (a separate RAPL domain on servers).
    #[arg(long)]
    dram: bool,
    /// Sampling period: shorter than one wrap of the fastest counter.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    sample: Duration,
}

#[derive(clap::Args)]
struct FetchGrants {
    /// The gateway's URL as the sandbox reaches it.
    #[arg(long, env = "SERRE_GATEWAY_URL")]
    gateway: String,
    /// File holding the run's token (mounted from the run's Secret).
    #[arg(long)]
    token_file: PathBuf,
    /// Directory receiving `<grant>/data.parquet`.
    #[arg(long)]
    out: PathBuf,
    /// The run (default: the run named in the token).
    #[arg(long, env = "SERRE_RUN")]
    run: Option<String>,
    /// Grant ids, one per flag.
    #[arg(long = "grant", required = true)]
    grants: Vec<String>,
}

#[derive(clap::Args)]
struct DevToken {
    /// Subject (`sub`).
    #[arg(long)]
    sub: String,
    /// Groups, comma-separated.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Organisation claim.
    #[arg(long)]
    organisation: Option<String>,
    /// Lifetime of the token.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
    /// Data directory holding the development issuer's key (same as the gateway's).
    #[arg(long, env = "SERRE_API_DATA_DIR", default_value = ".serre/api")]
    data_dir: PathBuf,
    /// Audience (`aud`).
    #[arg(long, env = "SERRE_API_OIDC_AUDIENCE", default_value = "serre-api")]
    audience: String,
}

#[derive(clap::Args)]
struct Database {
    /// Database URL (default: SQLite in the data directory).
    #[arg(long, env = "SERRE_API_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// File holding the database URL.
    #[arg(
        long,
        env = "SERRE_API_DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    database_url_file: Option<PathBuf>,
    #[arg(long, env = "SERRE_API_DATA_DIR", default_value = ".serre/api")]
    data_dir: PathBuf,
}

impl Database {
    fn url(&self) -> anyhow::Result<String> {
        if let Some(u) = &self.database_url {
            return Ok(u.clone());
        }
        if let Some(p) = &self.database_url_file {
            return Ok(read_secret(p)?);
        }
        Ok(format!(
            "sqlite://{}",
            self.data_dir.join("serre-api.db").display()
        ))
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and name the first broken entry (exit status 1).
    Verify {
        #[command(flatten)]
        db: Database,
        /// Verify a JSON-lines export (`GET /v1/audit?format=jsonl` or `audit export`)
        /// instead of the database.
        #[arg(long)]
        file: Option<PathBuf>,
        /// `SEQ:HASH` recorded earlier (e.g. from a previous verify): that entry must
        /// still have that hash.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Write entries as JSON lines (as stored, verifiable with `verify --file`).
    Export {
        #[command(flatten)]
        db: Database,
        /// Only this tenant's entries.
        #[arg(long)]
        tenant: Option<String>,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Several TLS stacks in the tree (kube, reqwest, object_store) enable different
    // rustls providers, so none is chosen automatically: pick ring before any client.
    serre_api::install_crypto_provider();
    let cli = Cli::parse();
    // The tools print their results; only the server logs at info level by default.
    let default = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default);
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("serre-api: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(config) => {
            let running = serre_api::app::start(*config, true).await?;
            running.wait().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::DevToken(t) => {
            let issuer = DevIssuer::load_or_create(&t.data_dir)?;
            let token = issuer.mint(
                &DevClaims {
                    subject: t.sub,
                    groups: t.groups,
                    organisation: t.organisation,
                    ttl: t.ttl,
                },
                &t.audience,
            )?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify { db, file, anchor }) => {
            let anchor = match &anchor {
                None => None,
                Some(a) => {
                    let (seq, hash) = a
                        .split_once(':')
                        .ok_or_else(|| anyhow::anyhow!("--anchor must be SEQ:HASH"))?;
                    Some((seq.parse::<i64>()?, hash.to_owned()))
                }
            };
            let anchor = anchor.as_ref().map(|(s, h)| (*s, h.as_str()));
            let report = match file {
                Some(path) => verify_file(&path, anchor)?,
                None => {
                    let store = Store::connect_existing(&db.url()?).await?;
                    audit::verify(&store, anchor).await?
                }
            };
            Ok(print_report(&report))
        }
        Command::Audit(AuditCommand::Export { db, tenant, after }) => {
            let store = Store::connect_existing(&db.url()?).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut cursor = after;
            loop {
                let page = store.audit_page(tenant.as_deref(), cursor, 1000).await?;
                let Some(last) = page.last() else { break };
                cursor = last.seq;
                for row in &page {
                    serde_json::to_writer(&mut out, row)?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::FetchGrants(f) => {
            // A first line as soon as the step starts: the run's log shows when fetching
            // began, and how long it took until the lines below.
            println!(
                "fetch-grants: fetching {} grant(s) from {}",
                f.grants.len(),
                f.gateway
            );
            let fetched = serre_api::runs::fetch::fetch_all(
                &f.gateway,
                &f.token_file,
                f.run.as_deref(),
                &f.grants,
                &f.out,
            )
            .await?;
            for v in fetched {
                println!(
                    "{} {} bytes sha256 {} -> {}",
                    v.grant,
                    v.bytes,
                    v.sha256,
                    v.path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::DataKeys(d) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!("no usable kubeconfig (KUBECONFIG or in-cluster): {e}")
            })?;
            let api =
                kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, &d.namespace);
            if api.get_opt(&d.secret).await?.is_some() {
                eprintln!(
                    "Secret {}/{} already exists; left unchanged",
                    d.namespace, d.secret
                );
                return Ok(ExitCode::SUCCESS);
            }
            let secret = serre_api::datasets::DataKeys::generate_secret(&d.namespace, &d.secret)?;
            match api.create(&Default::default(), &secret).await {
                Ok(_) => eprintln!(
                    "Secret {}/{} created with new dataset keys",
                    d.namespace, d.secret
                ),
                // Another hook run created it meanwhile: its keys stand.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    eprintln!(
                        "Secret {}/{} already exists; left unchanged",
                        d.namespace, d.secret
                    )
                }
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::NodeEnergy(n) => {
            let listener = tokio::net::TcpListener::bind(n.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", n.listen))?;
            eprintln!("serre-api node-energy: node {} on {}", n.node, n.listen);
            let cfg = serre_api::energy::node_agent::AgentConfig {
                node: n.node,
                powercap: n.powercap,
                proc_stat: n.proc_stat,
                with_dram: n.dram,
                sample: n.sample,
            };
            let shutdown = async {
                let term = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = term => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            };
            // The error's own text names the path and the OS reason once.
            serre_api::energy::node_agent::run(cfg, listener, shutdown)
                .await
                .map_err(|e| anyhow::anyhow!("cannot export node energy: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", serre_api::http::ApiDoc::openapi().to_pretty_json()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify_file(path: &PathBuf, anchor: Option<(i64, &str)>) -> anyhow::Result<VerifyReport> {
    let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut checker = ChainChecker::new(anchor);
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: AuditRow = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
        if !checker.push(&row) {
            break;
        }
    }
    Ok(checker.finish())
}

fn print_report(r: &VerifyReport) -> ExitCode {
    match &r.broken {
        None => {
            match &r.head {
                Some((seq, hash)) => println!(
                    "audit chain intact: {} entries; head {seq}:{hash} (record it, then verify later with --anchor {seq}:{hash})",
                    r.entries
                ),
                None => println!("audit chain intact: no entries"),
            }
            ExitCode::SUCCESS
        }
        Some(b) => {
            println!(
                "audit chain BROKEN at entry {}: {} ({} entries verified before it)",
                b.seq, b.reason, r.entries
            );
            ExitCode::FAILURE
        }
    }
}
