//! Writing a Delta Sharing profile file: it holds a bearer token, so it is created
//! owner-only (0600) and an existing file is kept unless the caller forces it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::error::Failure;

/// Write `profile` (the gateway's JSON) to `path`, mode 0600; refuse to replace an
/// existing file unless `force`. What was written, without the token.
pub fn write(path: &Path, profile: &Value, force: bool) -> Result<Value> {
    if profile.get("bearerToken").and_then(Value::as_str).is_none() {
        anyhow::bail!("the gateway's profile has no bearerToken: {profile}");
    }
    let mut text = serde_json::to_string_pretty(profile)?;
    text.push('\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::Error::new(Failure::Usage(format!(
                "{} exists: pass --force to replace it, or --out another file",
                path.display()
            )))
        } else {
            anyhow::Error::new(e).context(format!("create {}", path.display()))
        }
    })?;
    // An existing file replaced with --force keeps its mode on open: narrow it first.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("make {} owner-only", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(json!({
        "file": path.display().to_string(),
        "endpoint": profile.get("endpoint"),
        "expirationTime": profile.get("expirationTime"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_only_and_no_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.share");
        let p = json!({"shareCredentialsVersion": 1, "endpoint": "https://x/delta-sharing",
                       "bearerToken": "t", "expirationTime": "2027-01-01T00:00:00Z"});
        let w = write(&path, &p, false).unwrap();
        assert_eq!(w["endpoint"], "https://x/delta-sharing");
        assert!(w.get("bearerToken").is_none());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = write(&path, &p, false).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), crate::error::EXIT_USAGE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, &p, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
