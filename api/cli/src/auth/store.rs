//! What `serre login` keeps: the settings (issuer, client id, gateway) and one token set per
//! issuer, under `$XDG_CONFIG_HOME/serre/` (else `~/.config/serre/`), the directory mode
//! 0700 and every file 0600, written atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// What `serre login` saved for the next commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// The tokens of one issuer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSet {
    pub issuer: String,
    pub client_id: String,
    pub token_endpoint: String,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds; absent when the provider did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl TokenSet {
    /// Whether the access token is expired or expires within `margin_s`.
    pub fn expires_within(&self, now: i64, margin_s: i64) -> bool {
        self.expires_at.is_some_and(|t| t - margin_s <= now)
    }
}

/// The configuration directory of `serre`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `$XDG_CONFIG_HOME/serre`, else `$HOME/.config/serre`.
    pub fn locate() -> Result<Store> {
        let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".config"),
                None => {
                    return Err(Failure::Usage(
                        "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the sign-in"
                            .into(),
                    )
                    .into());
                }
            },
        };
        Ok(Store {
            dir: base.join("serre"),
        })
    }

    #[cfg(test)]
    pub fn at(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn settings_path(&self) -> PathBuf {
        self.dir.join("settings.json")
    }

    /// The file of an issuer's tokens: `tokens/<issuer with every byte outside
    /// [A-Za-z0-9.-] as _>.json`.
    pub fn tokens_path(&self, issuer: &str) -> PathBuf {
        let name: String = issuer
            .trim_end_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join("tokens").join(format!("{name}.json"))
    }

    pub fn settings(&self) -> Result<Settings> {
        Ok(read_json(&self.settings_path())?.unwrap_or_default())
    }

    pub fn save_settings(&self, s: &Settings) -> Result<()> {
        self.write_json(&self.settings_path(), s)
    }

    pub fn tokens(&self, issuer: &str) -> Result<Option<TokenSet>> {
        read_json(&self.tokens_path(issuer))
    }

    pub fn save_tokens(&self, t: &TokenSet) -> Result<()> {
        self.write_json(&self.tokens_path(&t.issuer), t)
    }

    /// Forget an issuer's tokens; whether there were any.
    pub fn remove_tokens(&self, issuer: &str) -> Result<bool> {
        let path = self.tokens_path(issuer);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
        }
    }

    fn private_dir(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 700 {}", dir.display()))
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        self.private_dir(&self.dir)?;
        let parent = path.parent().expect("a file in the store");
        self.private_dir(parent)?;
        let tmp = path.with_extension("json.tmp");
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(value)?)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not what serre wrote", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn tokens_are_kept_per_issuer_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::at(tmp.path().join("serre"));
        assert_eq!(store.tokens("https://idp.example").unwrap(), None);
        let t = TokenSet {
            issuer: "https://idp.example/realms/mgp".into(),
            client_id: "serre-cli".into(),
            token_endpoint: "https://idp.example/token".into(),
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(100),
        };
        store.save_tokens(&t).unwrap();
        let path = store.tokens_path(&t.issuer);
        assert!(path.ends_with("tokens/https___idp.example_realms_mgp.json"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(store.tokens(&t.issuer).unwrap(), Some(t.clone()));
        assert_eq!(store.tokens("https://other.example").unwrap(), None);
        assert!(store.remove_tokens(&t.issuer).unwrap());
        assert!(!store.remove_tokens(&t.issuer).unwrap());
    }

    #[test]
    fn settings_round_trip_and_tighten_an_open_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("serre");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::at(dir.clone());
        let s = Settings {
            issuer: Some("https://idp".into()),
            client_id: Some("serre-cli".into()),
            gateway: Some("https://api".into()),
        };
        store.save_settings(&s).unwrap();
        assert_eq!(store.settings().unwrap(), s);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("settings.json")), 0o600);
    }

    #[test]
    fn expiry_margin() {
        let mut t = TokenSet {
            issuer: "i".into(),
            client_id: "c".into(),
            token_endpoint: "t".into(),
            access_token: "a".into(),
            refresh_token: None,
            expires_at: None,
        };
        assert!(!t.expires_within(1000, 30));
        t.expires_at = Some(1020);
        assert!(t.expires_within(1000, 30));
        assert!(!t.expires_within(1000, 10));
    }
}
