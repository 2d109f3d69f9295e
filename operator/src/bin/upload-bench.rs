//! Upload benchmark: an object to Garage through Serre's encrypting writer
//! (`put_encrypted`: client-side AES-256-GCM streamed into a multipart upload) against a
//! plain multipart upload of the same bytes, with an SSE-C upload for reference.
//!
//! ```sh
//! cargo run --release -p serre-operator --bin upload-bench -- --size 1GiB
//! ```
//!
//! The bench starts its own single-node Garage on loopback (`deploy/dev/garage.sh`, ports
//! from `--port-base`) with its state in a scratch directory, and stops it and removes the
//! directory at the end, error or not. It creates one bucket and one key through the admin
//! API. Each round then uploads, in this order on even rounds and reversed on odd ones:
//!
//! - (a) plain: the bytes into `WriteMultipart` with the part size and in-flight limit of
//!   `put_encrypted` (8 MiB, 4);
//! - (b) encrypted: the same bytes through `put_encrypted`;
//! - (c) SSE-C: plain upload to a store with SSE-C on (Garage encrypts server-side).
//!
//! The bytes come from a xorshift64* generator in 1 MiB chunks, never held whole in
//! memory. They are incompressible (Garage tries zstd on every block) and each round has
//! its own seed, shared by (a) and (b); (c) gets another. Garage stores blocks by content
//! hash, so uploading bytes it already holds would skip its block writes and flatter
//! whichever upload came second; the ciphertext of (b) is never a repeat (random salt per
//! object).
//!
//! Before each timed upload `sync` runs and the bench pauses a second, untimed. Reports per
//! upload kind: throughput in MiB/s of plaintext, CPU seconds of the bench process and of
//! Garage (both share the same cores), and peak RSS of the bench (VmHWM, reset before each
//! upload). Then the ratio encrypted/plain throughput (target >= 0.8) as the median of the
//! per-round ratios: a round's uploads run back to back, so each ratio compares them
//! under about the same load from whatever else shares the machine. Finally it downloads one
//! encrypted object with `get_decrypted` and compares the SHA-256 of the plaintext with
//! that of the generator's output.

#[path = "bench_util/mod.rs"]
mod bench_util;
use bench_util::{human, parse_size, reset_hwm, vm_hwm_kib};
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use clap::Parser;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serre_operator::crypto::{DataKey, ciphertext_len};
use serre_operator::storage::StorageProvisioner;
use serre_operator::storage::garage::GarageAdmin;
use serre_operator::storage::objects::{bucket_store, get_decrypted, put_encrypted};
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(about = "Benchmark uploads to Garage: encrypting writer vs plain vs SSE-C")]
struct Args {
    /// Object size: bytes, or with a suffix (KiB, MiB, GiB, K, M, G).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Rounds; each uploads one object of each kind, and the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Parent of the scratch directory holding Garage's state (about 3 × size × rounds).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Garage ports: S3 on this one, RPC on +1, admin on +3.
    #[arg(long, env = "SERRE_GARAGE_PORT_BASE", default_value_t = 13980)]
    port_base: u16,
}

/// Chunk size of the data generator.
const SOURCE_CHUNK: usize = 1 << 20;
/// Multipart part size and parts in flight, as `put_encrypted` uses them.
const PART_SIZE: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 4;
const BUCKET: &str = "serre-upload-bench";
const MIB: f64 = (1u64 << 20) as f64;

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    serre_operator::install_crypto_provider();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    // Dropped on every way out of main (error, panic), which stops Garage and removes
    // its state; if this process is killed, garage.sh's watcher stops Garage.
    let mut garage = Garage::new(base.join(format!("serre-upload-bench-{}", std::process::id())));
    garage.start(args.port_base)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        tokio::select! {
            r = run(&args, &garage) => r,
            Ok(()) = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain = 0,
    Encrypted = 1,
    SseC = 2,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Plain, Kind::Encrypted, Kind::SseC];

    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Encrypted => "encrypted",
            Kind::SseC => "sse-c",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Plain => "(a) plain multipart",
            Kind::Encrypted => "(b) put_encrypted (client-side AES-256-GCM)",
            Kind::SseC => "(c) plain multipart + SSE-C (Garage encrypts)",
        }
    }

    /// Generator seed: (a) and (b) of a round share one, (c) has its own.
    fn seed(self, round: usize) -> u64 {
        let stream = match self {
            Kind::Plain | Kind::Encrypted => 0,
            Kind::SseC => 1,
        };
        splitmix64(round as u64 * 2 + stream + 1)
    }
}

/// One timed upload.
#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    bench_cpu: f64,
    garage_cpu: f64,
    hwm_kib: u64,
}

/// What every upload needs.
struct Bench {
    plain: Arc<dyn ObjectStore>,
    ssec: Arc<dyn ObjectStore>,
    key: DataKey,
    size: u64,
    garage_pid: u32,
    clk_tck: f64,
}

async fn run(args: &Args, garage: &Garage) -> Result<()> {
    let admin = GarageAdmin::new(
        garage.get("SERRE_GARAGE_ADMIN_ENDPOINT")?,
        garage.admin_token()?,
    )?;
    let quota = args
        .size
        .saturating_add(1 << 30)
        .saturating_mul(3 * args.rounds as u64 + 3)
        .min(i64::MAX as u64);
    let bucket = admin.ensure_bucket(BUCKET, quota, false).await?.info;
    let creds = admin.ensure_key(BUCKET, &bucket.id, false).await?;
    let endpoint = garage.get("SERRE_S3_ENDPOINT")?;
    let region = garage.get("SERRE_S3_REGION")?;
    let key = DataKey::generate()?;
    let bench = Bench {
        plain: bucket_store(endpoint, region, BUCKET, &creds, None)?,
        ssec: bucket_store(endpoint, region, BUCKET, &creds, Some(&key))?,
        key,
        size: args.size,
        garage_pid: garage.pid()?,
        clk_tck: clk_tck(),
    };

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "object: {} bytes ({}), {} rounds (median), {} CPUs shared by the bench, Garage \
         (pid {}) and anything else running; Garage state in {}",
        args.size,
        human(args.size),
        args.rounds,
        cpus,
        bench.garage_pid,
        garage.dir.display()
    );
    let gen_secs = generator_secs(args.size);
    println!(
        "generator alone: {:.0} MiB/s ({:.3} s, paid by every upload alike)",
        args.size as f64 / MIB / gen_secs,
        gen_secs
    );

    // Untimed warm-up: connections, Garage's first writes to the bucket.
    let warm = args.size.min(2 * PART_SIZE as u64);
    for kind in Kind::ALL {
        bench
            .upload(
                kind,
                &Path::from(format!("warmup-{}", kind.name())),
                0,
                warm,
            )
            .await?;
    }

    let mut loads = vec![("start".to_owned(), load_average())];
    let mut samples: [Vec<Sample>; 3] = Default::default();
    let hwm_before = vm_hwm_kib()?;
    for round in 0..args.rounds {
        let mut order = Kind::ALL;
        if round % 2 == 1 {
            order.reverse();
        }
        for kind in order {
            let path = Path::from(format!("{}-r{round}", kind.name()));
            let s = bench.timed(kind, &path, kind.seed(round)).await?;
            eprintln!(
                "round {} {:>9}: {:7.1} MiB/s ({:.2} s; CPU bench {:.2} s, Garage {:.2} s)",
                round + 1,
                kind.name(),
                args.size as f64 / MIB / s.secs,
                s.secs,
                s.bench_cpu,
                s.garage_cpu
            );
            samples[kind as usize].push(s);
        }
        loads.push((format!("after round {}", round + 1), load_average()));
    }

    // Correctness, once: the first encrypted object, downloaded and decrypted.
    let start = Instant::now();
    let path = Path::from("encrypted-r0");
    let plain = get_decrypted(&*bench.plain, &path, &bench.key).await?;
    futures::pin_mut!(plain);
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = plain.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let got = hasher.finalize();
    let verify_secs = start.elapsed().as_secs_f64();
    let want = source_sha256(Kind::Encrypted.seed(0), args.size);
    ensure!(
        n == args.size,
        "decrypted {n} bytes, expected {}",
        args.size
    );
    ensure!(got == want, "decrypted SHA-256 differs from the source's");
    loads.push(("end".to_owned(), load_average()));

    // --- report --------------------------------------------------------------
    let mibs = |secs: f64| args.size as f64 / MIB / secs;
    let of = |kind: Kind| &samples[kind as usize];
    let col = |kind: Kind, f: fn(&Sample) -> f64| median(of(kind).iter().map(f).collect());
    // Each round's uploads run back to back, so per-round ratios pair them under about
    // the same load; their median is the headline figure.
    let paired = |kind: Kind, f: fn(&Sample, &Sample) -> f64| -> Vec<f64> {
        of(Kind::Plain)
            .iter()
            .zip(of(kind))
            .map(|(p, k)| f(p, k))
            .collect()
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!(
        "| upload | MiB/s per round | median MiB/s | CPU s per upload, bench / Garage (medians) \
         | peak RSS |"
    );
    println!("|---|---|---|---|---|");
    for kind in Kind::ALL {
        let per_round: Vec<String> = of(kind)
            .iter()
            .map(|s| format!("{:.0}", mibs(s.secs)))
            .collect();
        let hwm = of(kind).iter().map(|s| s.hwm_kib).max().unwrap_or(0);
        println!(
            "| {} | {} | **{:.0}** | {:.2} / {:.2} | {:.1} MiB |",
            kind.label(),
            per_round.join(", "),
            mibs(col(kind, |s| s.secs)),
            col(kind, |s| s.bench_cpu),
            col(kind, |s| s.garage_cpu),
            hwm as f64 / 1024.0
        );
    }
    let enc = paired(Kind::Encrypted, |p, e| p.secs / e.secs);
    let ssec = paired(Kind::SseC, |p, c| p.secs / c.secs);
    let enc_cpu = paired(Kind::Encrypted, |p, e| e.bench_cpu - p.bench_cpu);
    println!();
    println!(
        "ratio encrypted/plain throughput: {:.2} (median of the per-round ratios {}; ratio \
         of the median throughputs {:.2}) - target >= 0.8",
        median(enc.clone()),
        list(&enc),
        col(Kind::Plain, |s| s.secs) / col(Kind::Encrypted, |s| s.secs)
    );
    println!(
        "ratio SSE-C/plain throughput: {:.2} (median of the per-round ratios {})",
        median(ssec.clone()),
        list(&ssec)
    );
    println!(
        "client-side encryption costs the bench {:+.2} CPU s per upload (median of the \
         per-round differences {}); a plain upload costs {:.2} CPU s in all (bench + Garage)",
        median(enc_cpu.clone()),
        list(&enc_cpu),
        col(Kind::Plain, |s| s.bench_cpu + s.garage_cpu)
    );
    println!(
        "bench peak RSS (VmHWM, reset before each upload): {:.1} MiB; process before the \
         rounds: {:.1} MiB",
        samples
            .iter()
            .flatten()
            .map(|s| s.hwm_kib)
            .max()
            .unwrap_or(0) as f64
            / 1024.0,
        hwm_before as f64 / 1024.0
    );
    println!(
        "verified: encrypted-r0 downloaded with get_decrypted, SHA-256 of the plaintext \
         matches the source ({:.0} MiB/s download + decrypt + hash)",
        mibs(verify_secs)
    );
    let loads: Vec<String> = loads.iter().map(|(w, l)| format!("{w} {l}")).collect();
    println!("load average (1/5/15 min): {}", loads.join("; "));
    Ok(())
}

impl Bench {
    /// One upload, timed, after a settle.
    async fn timed(&self, kind: Kind, path: &Path, seed: u64) -> Result<Sample> {
        settle().await?;
        reset_hwm();
        let cpu0 = (cpu_secs("self", self.clk_tck)?, self.garage_cpu()?);
        let start = Instant::now();
        self.upload(kind, path, seed, self.size).await?;
        let secs = start.elapsed().as_secs_f64();
        let cpu1 = (cpu_secs("self", self.clk_tck)?, self.garage_cpu()?);
        let hwm_kib = vm_hwm_kib()?;
        Ok(Sample {
            secs,
            bench_cpu: cpu1.0 - cpu0.0,
            garage_cpu: cpu1.1 - cpu0.1,
            hwm_kib,
        })
    }

    async fn upload(&self, kind: Kind, path: &Path, seed: u64, size: u64) -> Result<()> {
        let data = source(seed, size);
        let (store, expected) = match kind {
            Kind::Plain => {
                put_plain(&*self.plain, path, data).await?;
                (&self.plain, size)
            }
            Kind::Encrypted => {
                let written = put_encrypted(&*self.plain, path, &self.key, data).await?;
                ensure!(
                    written == ciphertext_len(size),
                    "put_encrypted wrote {written} bytes, expected {}",
                    ciphertext_len(size)
                );
                (&self.plain, written)
            }
            Kind::SseC => {
                put_plain(&*self.ssec, path, data).await?;
                (&self.ssec, size)
            }
        };
        let stored = store.head(path).await?.size;
        ensure!(
            stored == expected,
            "{path} holds {stored} bytes, expected {expected}"
        );
        Ok(())
    }

    fn garage_cpu(&self) -> Result<f64> {
        cpu_secs(&self.garage_pid.to_string(), self.clk_tck)
    }
}

/// A plain streaming multipart upload, shaped like `put_encrypted` without the crypto.
async fn put_plain(
    store: &dyn ObjectStore,
    path: &Path,
    data: impl Stream<Item = Result<Bytes, Infallible>>,
) -> Result<()> {
    futures::pin_mut!(data);
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    while let Some(chunk) = data.next().await {
        let Ok(chunk) = chunk;
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.write(&chunk);
    }
    writer.finish().await?;
    Ok(())
}

/// Incompressible bytes from xorshift64*, `size` in all, in chunks of [`SOURCE_CHUNK`].
fn source(seed: u64, size: u64) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::iter(Generator::new(seed, size).map(Ok))
}

struct Generator {
    state: u64,
    left: u64,
}

impl Generator {
    fn new(seed: u64, size: u64) -> Self {
        Self {
            state: seed | 1,
            left: size,
        }
    }
}

impl Iterator for Generator {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let n = self.left.min(SOURCE_CHUNK as u64) as usize;
        let mut buf = vec![0u8; n.next_multiple_of(8)];
        for word in buf.chunks_exact_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            word.copy_from_slice(&self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        buf.truncate(n);
        self.left -= n as u64;
        Some(Bytes::from(buf))
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Seconds the generator alone takes for `size` bytes.
fn generator_secs(size: u64) -> f64 {
    let start = Instant::now();
    let mut acc = 0u8;
    for chunk in Generator::new(1, size) {
        acc ^= chunk[0];
        std::hint::black_box(&chunk);
    }
    std::hint::black_box(acc);
    start.elapsed().as_secs_f64()
}

fn source_sha256(seed: u64, size: u64) -> sha2::digest::Output<Sha256> {
    let mut hasher = Sha256::new();
    for chunk in Generator::new(seed, size) {
        hasher.update(&chunk);
    }
    hasher.finalize()
}

/// The median (upper median for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Before a timed upload: flush dirty pages (Garage's writes of the previous upload)
/// and let Garage's background work after an upload finish.
async fn settle() -> Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    ensure!(status.success(), "sync failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// The single-node Garage of this run; stopped, and its state removed, when dropped.
struct Garage {
    dir: PathBuf,
    env: HashMap<String, String>,
}

fn garage_script() -> PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/garage.sh")
}

impl Garage {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            env: HashMap::new(),
        }
    }

    fn start(&mut self, port_base: u16) -> Result<()> {
        let status = Command::new(garage_script())
            .arg("start")
            .arg(&self.dir)
            .env("SERRE_GARAGE_PORT_BASE", port_base.to_string())
            .env("SERRE_GARAGE_PARENT_PID", std::process::id().to_string())
            .status()
            .context("running deploy/dev/garage.sh")?;
        ensure!(status.success(), "garage.sh start failed: {status}");
        let env = std::fs::read_to_string(self.dir.join("env")).context("Garage env file")?;
        self.env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(())
    }

    fn get(&self, key: &str) -> Result<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("{key} missing from Garage's env file"))
    }

    fn admin_token(&self) -> Result<String> {
        let file = self.get("SERRE_GARAGE_ADMIN_TOKEN_FILE")?;
        Ok(std::fs::read_to_string(file)?.trim().to_owned())
    }

    fn pid(&self) -> Result<u32> {
        let pid = std::fs::read_to_string(self.dir.join("garage.pid"))?;
        pid.trim().parse().context("garage.pid")
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let stopped = Command::new(garage_script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("garage.sh stop {} failed: {stopped:?}", self.dir.display());
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}

/// User + system CPU seconds of a process (`self` or a pid), all threads.
fn cpu_secs(pid: &str, clk_tck: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces: state is field 3,
    // utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        let f = fields.get(i).context("short /proc/PID/stat")?;
        Ok(f.parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / clk_tck)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
