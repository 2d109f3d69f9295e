//! Test modes: burn CPU time on one thread, hold memory.

use std::hint::black_box;
use std::time::Duration;

use anyhow::Context;

/// CPU time this process has used so far (all threads), from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`.
pub fn process_cpu_time() -> anyhow::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    }
    Ok(Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    ))
}

/// Spins on the calling thread until the process has used `target` of CPU time; returns
/// the CPU time measured at the end.
pub fn burn_cpu(target: Duration) -> anyhow::Result<Duration> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    loop {
        let used = process_cpu_time()?;
        if used >= target {
            return Ok(used);
        }
        // About a millisecond of arithmetic between clock reads.
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        black_box(state);
    }
}

/// Allocates `mib` MiB and writes to every byte, so the memory is resident; the caller keeps
/// the vector alive.
pub fn allocate_mib(mib: u64) -> anyhow::Result<Vec<u8>> {
    let bytes = mib
        .checked_mul(1 << 20)
        .and_then(|b| usize::try_from(b).ok())
        .with_context(|| format!("{mib} MiB does not fit in this machine's address space"))?;
    let mut memory = Vec::new();
    memory
        .try_reserve_exact(bytes)
        .with_context(|| format!("allocating {mib} MiB"))?;
    memory.resize(bytes, 0xa5);
    Ok(black_box(memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_until_the_target() {
        let before = process_cpu_time().unwrap();
        let target = before + Duration::from_millis(50);
        let used = burn_cpu(target).unwrap();
        assert!(used >= target, "{used:?} < {target:?}");
    }

    #[test]
    fn allocates_and_touches() {
        let m = allocate_mib(3).unwrap();
        assert_eq!(m.len(), 3 << 20);
        assert!(m.iter().all(|&b| b == 0xa5));
    }
}
