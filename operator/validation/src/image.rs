//! Container image references, parsed as the container runtimes parse them
//! (the grammar of `distribution/reference`), and the check of a reference against a
//! tenant's `allowedRegistries`. One parser serves the gateway's run validation
//! ([`crate::validate_run`]) and the operator's admission webhook, so both accept and
//! refuse the same images.
//!
//! What it refuses, and why each matters for an allowlist:
//! - path components that are not `[a-z0-9]+` joined by `.`, `_`, `__` or `-`: `..`,
//!   `%2e`, empty components, upper case (`registry.example.fr/../x` is not an image of
//!   `registry.example.fr`: it is no image at all);
//! - malformed hosts, ports, tags and digests (`sha256:` needs 64 lower-case hex digits);
//! - look-alike hosts never match: the registry is compared whole (host and port), so
//!   `registry.example.fr.evil.com` and `registry.example.fr:8443` are other registries.
//!
//! A reference without a registry host is Docker Hub's, as runtimes resolve it:
//! `python:3.12` is `docker.io/library/python:3.12`, `vendor/model` is
//! `docker.io/vendor/model`; `index.docker.io` is `docker.io`.

use std::fmt;

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    /// Host, with its port if any, lower case (`registry.example.fr`, `10.0.0.1:5000`,
    /// `[fd00::1]:5000`, `docker.io`).
    pub registry: String,
    /// Repository path in the registry (`library/python`, `vendor/model`).
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`, e.g. `sha256:…`.
    pub digest: Option<String>,
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// One entry of `allowedRegistries`: a registry, optionally with a repository path
/// prefix (`registry.example.fr`, `registry.example.fr/team`, `10.0.0.1:5000/serre`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryPrefix {
    pub registry: String,
    /// Path prefix, matched on whole path components; empty for the whole registry.
    pub path: String,
}

impl ImageReference {
    /// Parse a reference (`[host[:port]/]path[:tag][@digest]`).
    pub fn parse(reference: &str) -> Result<Self, String> {
        if reference.is_empty() {
            return Err("is empty".into());
        }
        if reference.trim() != reference {
            return Err("has leading or trailing spaces".into());
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest)?;
                (rest, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        // A tag is after the last ':' that is not followed by a '/' (a host's port is).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                let tag = &rest[i + 1..];
                check_tag(tag)?;
                (&rest[..i], Some(tag.to_owned()))
            }
            _ => (rest, None),
        };
        if name.len() > MAX_NAME_LENGTH {
            return Err(format!(
                "its name is longer than {MAX_NAME_LENGTH} characters"
            ));
        }
        let (registry, repository) = split_registry(name)?;
        check_path(repository)?;
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Whether this image is in `prefix`'s registry and under its path.
    pub fn is_under(&self, prefix: &RegistryPrefix) -> bool {
        self.registry == prefix.registry
            && (prefix.path.is_empty()
                || self.repository == prefix.path
                || self
                    .repository
                    .strip_prefix(&prefix.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

impl RegistryPrefix {
    /// Parse an `allowedRegistries` entry: its first component is always the registry
    /// host (`myregistry` alone is a host here, not a Docker Hub path). A trailing `/`
    /// is ignored.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.strip_suffix('/').unwrap_or(entry);
        if entry.is_empty() || entry.trim() != entry {
            return Err("is empty or has spaces".into());
        }
        let (host, path) = entry.split_once('/').unwrap_or((entry, ""));
        check_host(host)?;
        if !path.is_empty() {
            check_path(path)?;
        }
        Ok(Self {
            registry: normalise_host(host),
            path: path.to_owned(),
        })
    }
}

/// Check `image` against a tenant's `allowedRegistries`; the error is a sentence for the
/// person who wrote the image. Entries that do not parse never match.
pub fn registry_allowed(image: &str, allowed: &[String]) -> Result<(), String> {
    if image.trim().is_empty() {
        return Err("must name an image".into());
    }
    let parsed = ImageReference::parse(image)
        .map_err(|e| format!("{image:?} is not a valid image reference: it {e}"))?;
    if allowed.is_empty() {
        return Err(format!(
            "{image:?} is refused: the tenant allows no registry (Tenant.spec.allowedRegistries is empty)"
        ));
    }
    let ok = allowed
        .iter()
        .filter_map(|e| RegistryPrefix::parse(e).ok())
        .any(|p| parsed.is_under(&p));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{image:?} (registry {}, repository {}) is not from a registry the tenant allows ({})",
            parsed.registry,
            parsed.repository,
            allowed.join(", ")
        ))
    }
}

/// Split a name into its registry and its path, as `distribution/reference` does: the
/// first component is a registry if it has a `.` or a `:`, is `localhost`, or has an
/// upper-case letter (which a path component cannot); otherwise the name is Docker Hub's.
fn split_registry(name: &str) -> Result<(String, &str), String> {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            check_host(first)?;
            Ok((normalise_host(first), rest))
        }
        _ => Ok((DEFAULT_REGISTRY.to_owned(), name)),
    }
}

fn normalise_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host == "index.docker.io" {
        DEFAULT_REGISTRY.to_owned()
    } else {
        host
    }
}

/// `host[:port]`: DNS labels joined by dots, or an IPv6 address in brackets.
fn check_host(host: &str) -> Result<(), String> {
    let bad = || Err(format!("has an invalid registry host {host:?}"));
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else {
            return bad();
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        match rest {
            "" => (None, None),
            _ => match rest.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return bad(),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || !name.split('.').all(label_ok) {
            return bad();
        }
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return bad();
    }
    Ok(())
}

/// Path components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("has no repository path".into());
    }
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(format!(
                "has an invalid path component {component:?} (lower-case letters and digits, \
                 separated by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__', or one or more '-'; always between alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    if b.is_empty()
        || b.len() > MAX_TAG_LENGTH
        || !word(b[0])
        || !b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
    {
        return Err(format!("has an invalid tag {tag:?}"));
    }
    Ok(())
}

/// `algorithm:hex`; `sha256` needs 64 and `sha512` 128 lower-case hex digits, other
/// algorithms at least 32.
fn check_digest(digest: &str) -> Result<(), String> {
    let bad = || Err(format!("has an invalid digest {digest:?}"));
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return bad();
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .split(['+', '.', '_', '-'])
            .all(|p| !p.is_empty() && p.bytes().all(is_alnum));
    let hex_ok = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let length_ok = match algorithm {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => hex.len() >= 32,
    };
    if algorithm_ok && hex_ok && length_ok {
        Ok(())
    } else {
        bad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:4a5b9e3f1c2d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

    fn parse(s: &str) -> ImageReference {
        ImageReference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn allowed(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn references_parse_into_registry_repository_tag_and_digest() {
        let r = parse("registry.example.fr/team/model:1.2");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("registry.example.fr", "team/model", Some("1.2"))
        );
        let r = parse(&format!("registry.example.fr:5000/model@{SHA}"));
        assert_eq!(r.registry, "registry.example.fr:5000");
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(SHA)));
        let r = parse(&format!("10.250.0.1:16445/serre/model:0.1.0@{SHA}"));
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("10.250.0.1:16445", "serre/model")
        );
        assert_eq!(r.tag.as_deref(), Some("0.1.0"));
        let r = parse("[fd00::1]:5000/x/y");
        assert_eq!(r.registry, "[fd00::1]:5000");
        let r = parse("localhost/model");
        assert_eq!(r.registry, "localhost");
        let r = parse("Registry.Example.FR/model");
        assert_eq!(r.registry, "registry.example.fr");
    }

    #[test]
    fn bare_names_are_docker_hub_images() {
        assert_eq!(parse("python").to_string(), "docker.io/library/python");
        assert_eq!(
            parse("python:3.12").to_string(),
            "docker.io/library/python:3.12"
        );
        assert_eq!(parse("vendor/model").to_string(), "docker.io/vendor/model");
        assert_eq!(
            parse("index.docker.io/vendor/model").registry,
            DEFAULT_REGISTRY
        );
        // `localhost:5000` without a path is Docker Hub's `localhost` with tag 5000.
        assert_eq!(
            parse("localhost:5000").to_string(),
            "docker.io/library/localhost:5000"
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            " python",
            "registry.example.fr/../x:1",
            "registry.example.fr/./x",
            "registry.example.fr//x",
            "registry.example.fr/x/",
            "registry.example.fr/X",
            "registry.example.fr/a..b",
            "registry.example.fr/-a",
            "registry.example.fr/a___b",
            "registry.example.fr/%2e%2e/x",
            "registry.example.fr/x:",
            "registry.example.fr/x:.tag",
            "registry.example.fr/x@sha256:abc",
            "registry.example.fr/x@sha256:4A5B9E3F1C2D7E8F9A0B1C2D3E4F5A6B7C8D9E0F1A2B3C4D5E6F7A8B9C0D1E2F",
            "registry.example.fr/x@",
            "registry.example.fr@evil.com/x",
            "registry.example.fr:99999/x",
            "registry.example.fr:/x",
            "-registry.example.fr/x",
            "registry..example.fr/x",
            "[fd00::zz]:5000/x",
            "registry.example.fr/x y",
            "registry.example.fr\\x",
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} parsed");
        }
        let long = format!("registry.example.fr/{}", "a".repeat(250));
        assert!(ImageReference::parse(&long).is_err());
        assert!(ImageReference::parse(&format!("r.fr/x:{}", "t".repeat(129))).is_err());
        assert!(ImageReference::parse(&format!("r.fr/x:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn path_separators_follow_the_grammar() {
        for good in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2-c3_d4"] {
            assert!(path_component_ok(good), "{good}");
        }
        for bad in ["a.", ".a", "a..b", "a.-b", "a_-b", "a___b", "a-", "", "A"] {
            assert!(!path_component_ok(bad), "{bad}");
        }
    }

    #[test]
    fn registries_match_whole_hosts_and_path_components() {
        let team = allowed(&["registry.example.fr/team"]);
        assert!(registry_allowed("registry.example.fr/team/model:1", &team).is_ok());
        assert!(registry_allowed("registry.example.fr/team:1", &team).is_ok());
        assert!(registry_allowed("registry.example.fr/teamx/model:1", &team).is_err());
        assert!(registry_allowed("registry.example.fr/other/model", &team).is_err());
        let host = allowed(&["registry.example.fr"]);
        assert!(registry_allowed(&format!("registry.example.fr/a/b@{SHA}"), &host).is_ok());
        assert!(registry_allowed(&format!("registry.example.fr/a:1@{SHA}"), &host).is_ok());
        assert!(registry_allowed("REGISTRY.example.fr/a", &host).is_ok());
        // Look-alikes and other ports are other registries.
        for other in [
            "registry.example.fr.evil.com/a",
            "evil.com/registry.example.fr/a",
            "registry.example.fr:8443/a",
            "registry-example.fr/a",
            "registry.example.fr/../a:1",
        ] {
            assert!(registry_allowed(other, &host).is_err(), "{other}");
        }
        // The finding of issue 13: a traversal is not an image of the allowed registry.
        let e = registry_allowed(
            "registry.metropolegrandparis.fr/../x:1",
            &allowed(&["registry.metropolegrandparis.fr"]),
        )
        .unwrap_err();
        assert!(e.contains("not a valid image reference"), "{e}");
        assert!(e.contains("\"..\""), "{e}");
    }

    #[test]
    fn docker_hub_must_be_allowed_by_name() {
        let host = allowed(&["registry.example.fr"]);
        assert!(registry_allowed("python:3.12", &host).is_err());
        let hub = allowed(&["docker.io"]);
        assert!(registry_allowed("python:3.12", &hub).is_ok());
        assert!(registry_allowed("vendor/model", &hub).is_ok());
        assert!(registry_allowed("localhost:5000/model", &hub).is_err());
        let library = allowed(&["docker.io/library"]);
        assert!(registry_allowed("python", &library).is_ok());
        assert!(registry_allowed("vendor/model", &library).is_err());
        assert!(registry_allowed("index.docker.io/library/python", &library).is_ok());
    }

    #[test]
    fn ports_and_local_registries_match_exactly() {
        let local = allowed(&["localhost:5000"]);
        assert!(registry_allowed("localhost:5000/model:1", &local).is_ok());
        assert!(registry_allowed("localhost/model", &local).is_err());
        assert!(registry_allowed("localhost/model", &allowed(&["localhost"])).is_ok());
        let test = allowed(&["10.250.0.1:16445/serre/"]);
        assert!(registry_allowed("10.250.0.1:16445/serre/serre-api:0.1.0", &test).is_ok());
        assert!(registry_allowed("10.250.0.1:16446/serre/serre-api:0.1.0", &test).is_err());
    }

    #[test]
    fn an_empty_or_unusable_allowlist_refuses_and_says_so() {
        let e = registry_allowed("registry.example.fr/team/model:1", &[]).unwrap_err();
        assert!(e.contains("allows no registry"), "{e}");
        // Entries that do not parse match nothing.
        let junk = allowed(&[
            "",
            " ",
            "registry.example.fr/../",
            "http://registry.example.fr",
        ]);
        assert!(registry_allowed("registry.example.fr/x", &junk).is_err());
        assert!(RegistryPrefix::parse("registry.example.fr/Team").is_err());
        assert_eq!(
            RegistryPrefix::parse("Index.Docker.io/library/").unwrap(),
            RegistryPrefix {
                registry: "docker.io".into(),
                path: "library".into()
            }
        );
    }
}
