//! Storage-encryption benchmark: Serre's streaming encryption against the `age` CLI on
//! the same file, file to file, both through the page cache.
//!
//! ```sh
//! cargo run --release -p serre-operator --bin crypto-bench -- --size 1GiB
//! ```
//!
//! Each tool encrypts the plaintext file and decrypts the result, twice over: file to
//! file (what a person would time; on a VM both tools spend most of it in the kernel
//! copying into the page cache) and file to /dev/null (the crypto and read path
//! alone). Reports the median wall time of each step, the ratio Serre/age, and Serre's
//! peak RSS (VmHWM, reset just before Serre runs, so it covers Serre only; age runs as
//! a child process and does not count).

#[path = "bench_util/mod.rs"]
mod bench_util;
use bench_util::{human, parse_size, reset_hwm, vm_hwm_kib};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use serre_operator::crypto::{DataKey, ciphertext_len, decrypt_to, encrypt_to};

#[derive(Parser)]
#[command(about = "Benchmark Serre's storage encryption against the age CLI")]
struct Args {
    /// Plaintext size: bytes, or with a suffix (KiB, MiB, GiB, K, M, G).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Directory for the scratch files (about 3× the size per tool).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timed runs of each step; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip age (measure Serre alone).
    #[arg(long)]
    no_age: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.runs > 0, "--runs must be at least 1");
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("serre-crypto-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Median wall times of one tool: file to file, and to /dev/null (crypto-bound).
#[derive(Clone, Copy)]
struct Times {
    enc_file: Duration,
    dec_file: Duration,
    enc_null: Duration,
    dec_null: Duration,
}

const DEV_NULL: &str = "/dev/null";

fn run(args: &Args, dir: &Path) -> Result<()> {
    let plain = dir.join("plain.bin");
    write_random_file(&plain, args.size)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "plaintext: {} bytes ({}), {} CPUs, {} runs (median), scratch dir {}",
        args.size,
        human(args.size),
        cpus,
        args.runs,
        dir.display()
    );

    let key = DataKey::generate()?;
    let serre_ct = dir.join("serre.enc");
    let serre = |from: &Path, to: &Path, encrypt: bool| -> Result<Duration> {
        settle(to)?;
        let start = Instant::now();
        if encrypt {
            encrypt_to(&key, File::open(from)?, File::create(to)?)?;
        } else {
            decrypt_to(&key, File::open(from)?, File::create(to)?)?;
        }
        Ok(start.elapsed())
    };
    let age = if args.no_age {
        None
    } else {
        Some(AgeCli::new(dir)?)
    };
    let age_ct = dir.join("age.enc");
    let null = Path::new(DEV_NULL);

    let hwm_before = vm_hwm_kib()?;
    reset_hwm();
    let hwm_reset = vm_hwm_kib()?;
    let (mut serre_runs, mut age_runs) = (Vec::new(), Vec::new());
    // The tools alternate run by run, so background writeback hits both alike.
    for _ in 0..args.runs {
        let out = dir.join("serre.out");
        serre_runs.push([
            serre(&plain, &serre_ct, true)?,
            serre(&serre_ct, &out, false)?,
            serre(&plain, null, true)?,
            serre(&serre_ct, null, false)?,
        ]);
        ensure!(
            std::fs::metadata(&serre_ct)?.len() == ciphertext_len(args.size),
            "unexpected ciphertext length"
        );
        ensure!(same_content(&plain, &out)?, "Serre round trip differs");
        std::fs::remove_file(&out)?;
        if let Some(age) = &age {
            let out = dir.join("age.out");
            age_runs.push([
                age.run(&plain, &age_ct, true)?,
                age.run(&age_ct, &out, false)?,
                age.run(&plain, null, true)?,
                age.run(&age_ct, null, false)?,
            ]);
            ensure!(same_content(&plain, &out)?, "age round trip differs");
            std::fs::remove_file(&out)?;
        }
    }
    // Serre ran in this process, age in children: VmHWM is Serre's (plus the
    // comparison loop's 64 KiB buffers).
    let hwm_serre = vm_hwm_kib()?;
    let serre = medians(serre_runs);
    let age = age.map(|_| medians(age_runs));

    // --- report --------------------------------------------------------------
    let gbps = |d: Duration| args.size as f64 / d.as_secs_f64() / 1e9;
    let ratio = |s: Duration, a: Duration| s.as_secs_f64() / a.as_secs_f64();
    for (title, pick) in [
        (
            "file -> file (page cache)",
            (|t: &Times| (t.enc_file, t.dec_file)) as fn(&Times) -> (Duration, Duration),
        ),
        ("file -> /dev/null (crypto-bound)", |t: &Times| {
            (t.enc_null, t.dec_null)
        }),
    ] {
        println!();
        println!("{title}:");
        println!("| tool | encrypt | decrypt | total | throughput enc / dec |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, (e, d): (Duration, Duration)| {
            println!(
                "| {name} | {:.3} s | {:.3} s | {:.3} s | {:.2} / {:.2} GB/s |",
                e.as_secs_f64(),
                d.as_secs_f64(),
                (e + d).as_secs_f64(),
                gbps(e),
                gbps(d)
            );
        };
        row("Serre (AES-256-GCM, 64 KiB segments)", pick(&serre));
        if let Some(age) = &age {
            row("age CLI (X25519, ChaCha20-Poly1305)", pick(age));
            let ((se, sd), (ae, ad)) = (pick(&serre), pick(age));
            println!(
                "ratio Serre/age: encrypt {:.2}, decrypt {:.2}, total {:.2} (target <= 0.5)",
                ratio(se, ae),
                ratio(sd, ad),
                ratio(se + sd, ae + ad)
            );
        }
    }
    println!();
    println!(
        "Serre peak RSS (VmHWM) over all its runs: {:.1} MiB \
         (process before: {:.1} MiB, right after the HWM reset: {:.1} MiB; target <= 64 MB)",
        hwm_serre as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        hwm_reset as f64 / 1024.0
    );
    Ok(())
}

fn medians(runs: Vec<[Duration; 4]>) -> Times {
    let col = |i: usize| {
        let mut v: Vec<Duration> = runs.iter().map(|r| r[i]).collect();
        median(&mut v)
    };
    Times {
        enc_file: col(0),
        dec_file: col(1),
        enc_null: col(2),
        dec_null: col(3),
    }
}

/// The age CLI with a fresh X25519 identity.
struct AgeCli {
    identity: PathBuf,
    recipient: String,
}

impl AgeCli {
    fn new(dir: &Path) -> Result<Self> {
        let identity = dir.join("age.key");
        let status = Command::new("age-keygen")
            .arg("-o")
            .arg(&identity)
            .stderr(std::process::Stdio::null())
            .status()
            .context("running age-keygen (apt-get install age)")?;
        ensure!(status.success(), "age-keygen failed");
        let recipient = Command::new("age-keygen")
            .arg("-y")
            .arg(&identity)
            .output()?;
        ensure!(recipient.status.success(), "age-keygen -y failed");
        let recipient = String::from_utf8(recipient.stdout)?.trim().to_owned();
        Ok(Self {
            identity,
            recipient,
        })
    }

    fn run(&self, from: &Path, to: &Path, encrypt: bool) -> Result<Duration> {
        settle(to)?;
        let mut cmd = Command::new("age");
        if encrypt {
            cmd.arg("-r").arg(&self.recipient);
        } else {
            cmd.arg("-d").arg("-i").arg(&self.identity);
        }
        cmd.arg("-o").arg(to).arg(from);
        timed(&mut cmd)
    }
}

/// Before a timed step: remove the previous output (freeing its page cache is not
/// the next step's work) and flush dirty pages, so no step pays for another's
/// writeback.
fn settle(output: &Path) -> Result<()> {
    if output != Path::new(DEV_NULL) && output.exists() {
        std::fs::remove_file(output)?;
    }
    let status = Command::new("sync").status().context("running sync")?;
    ensure!(status.success(), "sync failed");
    Ok(())
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let status = cmd.status().context("running age (apt-get install age)")?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(elapsed)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Incompressible data from xorshift64*, written 1 MiB at a time.
fn write_random_file(path: &Path, size: u64) -> Result<()> {
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = usize::try_from(left.min(buf.len() as u64))?;
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(())
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (mut a, mut b) = (
        BufReader::new(File::open(a)?),
        BufReader::new(File::open(b)?),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_up_to(&mut a, &mut x)?;
        let m = read_up_to(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
