//! `serre-api`: the gateway (`serve`), development tokens (`dev-token`), the audit log
//! (`audit verify`, `audit export`), the OpenAPI document (`openapi`), a trial run's
//! init step (`fetch-grants`), the node agent exporting RAPL energy (`node-energy`) and
//! the creation of the dataset keys' Secret (`data-keys`).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serre_api::audit::checkpoint::{self, SignedCheckpoint};
use serre_api::audit::{self, ChainChecker, ExportScope, VerifyReport};
use serre_api::config::{Config, LogFormat, parse_duration, read_secret};
use serre_api::identity::dev::{DevClaims, DevIssuer};
use serre_api::store::{AuditRow, Store};
use serre_crypto::CertificateVerifier;
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
struct Verify {
    #[command(flatten)]
    db: Database,
    /// Where the checkpoints are published: the gateway's data store flags.
    #[command(flatten)]
    data: serre_api::config::DataConfig,
    /// Verify a JSON-lines export (`GET /v1/audit?format=jsonl` or `audit export`)
    /// instead of the database.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The export holds only the entries after this sequence number (`--after`).
    #[arg(long, requires = "file", conflicts_with = "tenant")]
    after: Option<i64>,
    /// The export holds only this tenant's entries (`--tenant`).
    #[arg(long, requires = "file")]
    tenant: Option<String>,
    /// `SEQ:HASH` recorded earlier (e.g. from a previous verify): that entry must
    /// still have that hash.
    #[arg(long)]
    anchor: Option<String>,
    /// A signed checkpoint file to check against, instead of the latest one in the object
    /// store (e.g. one kept by an auditor).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The public key (SPKI PEM, `audit public-key`) that checks checkpoints; default:
    /// the one of the signing key in the keys directory.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Check the chain alone, without a checkpoint: neither a truncated tail nor a log
    /// rewritten from scratch is then detected.
    #[arg(long, conflicts_with = "checkpoint")]
    no_checkpoint: bool,
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
    /// Recompute the hash chain and name the first broken entry (exit status 1), against
    /// the latest signed checkpoint published to the object store (or `--checkpoint`).
    Verify(Box<Verify>),
    /// Print the public key (SPKI PEM) that checks the audit checkpoints, for
    /// `--public-key` and for `openssl` (docs/audit.md).
    PublicKey {
        #[arg(long, env = "SERRE_API_DATA_DIR", default_value = ".serre/api")]
        data_dir: PathBuf,
        /// The gateway's keys directory (default `<data-dir>/keys`).
        #[arg(long, env = "SERRE_API_DATA_KEYS_DIR")]
        data_keys_dir: Option<PathBuf>,
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
        Command::Audit(AuditCommand::Verify(v)) => verify(*v).await,
        Command::Audit(AuditCommand::PublicKey {
            data_dir,
            data_keys_dir,
        }) => {
            let dir = data_keys_dir.unwrap_or_else(|| data_dir.join("keys"));
            let signer = serre_api::datasets::keys::load_audit_signer(&dir)?;
            print!("{}", signer.public_key_pem()?);
            Ok(ExitCode::SUCCESS)
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
            if let Some(existing) = api.get_opt(&d.secret).await? {
                let has_key = existing
                    .data
                    .as_ref()
                    .is_some_and(|m| m.contains_key(checkpoint::SIGNING_KEY_FILE));
                if has_key {
                    eprintln!(
                        "Secret {}/{} already exists; left unchanged",
                        d.namespace, d.secret
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                // A Secret made before audit checkpoints: add the signing key, keep the rest.
                let (name, pem) =
                    serre_api::datasets::keys::fresh_signing_key(std::path::Path::new(&d.secret))?;
                let patch = serde_json::json!({"data": {name: base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD, pem.as_bytes())}});
                api.patch(
                    &d.secret,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await?;
                eprintln!(
                    "Secret {}/{} existed without the audit signing key: added {}",
                    d.namespace,
                    d.secret,
                    checkpoint::SIGNING_KEY_FILE
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
            serre_api::node_agent::run(cfg, listener, shutdown)
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

/// `audit verify`: the export or the database, against the anchors and the checkpoint.
async fn verify(v: Verify) -> anyhow::Result<ExitCode> {
    let mut anchors = Vec::new();
    if let Some(a) = &v.anchor {
        let (seq, hash) = a
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--anchor must be SEQ:HASH"))?;
        anchors.push((seq.parse::<i64>()?, hash.to_owned()));
    }
    let checkpoint = match (&v.checkpoint, v.no_checkpoint) {
        (_, true) => None,
        (Some(path), false) => Some(
            serde_json::from_slice::<SignedCheckpoint>(
                &std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        // An export is checked against the checkpoint it is given, or none.
        (None, false) if v.file.is_some() => None,
        (None, false) => {
            let backend = serre_api::datasets::blob_backend(&v.data, &v.db.data_dir)?;
            let keys_dir = serre_api::datasets::keys_dir(&v.data, &v.db.data_dir);
            let keks = serre_api::datasets::DataKeys::load(&keys_dir)?.keks;
            let blobs = serre_api::blobs::BlobStore::new(backend, keks)?;
            checkpoint::latest(&blobs).await?
        }
    };
    if let Some(cp) = &checkpoint {
        let verifier = match &v.public_key {
            Some(path) => CertificateVerifier::from_public_key_pem(
                &std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )?,
            None => serre_api::datasets::keys::load_audit_signer(&serre_api::datasets::keys_dir(
                &v.data,
                &v.db.data_dir,
            ))?
            .verifier(),
        };
        let c = checkpoint::verify(&verifier, cp)?;
        println!(
            "checkpoint of entry {} signed at {} by {}: signature valid",
            c.seq, c.time, cp.key_id
        );
        anchors.push((i64::try_from(c.seq)?, c.hash.clone()));
    }
    let report = match &v.file {
        Some(path) => {
            let scope = match (&v.tenant, v.after) {
                (Some(t), _) => ExportScope::Tenant(t.clone()),
                (None, Some(n)) => ExportScope::After(n),
                (None, None) => ExportScope::Whole,
            };
            verify_file(path, scope, anchors)?
        }
        None => {
            let store = Store::connect_existing(&v.db.url()?).await?;
            let report = audit::verify(&store, &anchors).await?;
            if checkpoint.is_none() && !v.no_checkpoint && report.entries > 0 {
                println!(
                    "no signed checkpoint in the object store (audit-checkpoints/): a truncated or rewritten log cannot be ruled out; the gateway publishes one every --audit-checkpoint-interval, or pass --no-checkpoint to check the chain alone"
                );
                print_report(&report);
                return Ok(ExitCode::FAILURE);
            }
            report
        }
    };
    Ok(print_report(&report))
}

fn verify_file(
    path: &PathBuf,
    scope: ExportScope,
    anchors: Vec<(i64, String)>,
) -> anyhow::Result<VerifyReport> {
    let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut checker = ChainChecker::new(scope, anchors);
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
