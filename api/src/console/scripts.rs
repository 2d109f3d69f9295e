//! The console's own scripts (not vendored: written here, in `api/console/js/`), served
//! under `/console/js/` beside htmx and loaded with their Subresource Integrity hash, so a
//! page runs exactly the bytes the gateway was built with. Progressive enhancement only:
//! every page works without them.

use std::sync::LazyLock;

use base64::Engine;
use sha2::{Digest, Sha384};

/// The upload forms' progress bar (`data-progression` on a form).
pub const UPLOAD_PROGRESS: &str = "televersement.js";

/// (path under `/console/js/`, content type, bytes).
pub static SCRIPTS: &[(&str, &str, &[u8])] = &[(
    UPLOAD_PROGRESS,
    "text/javascript; charset=utf-8",
    include_bytes!("../../console/js/televersement.js"),
)];

/// The `integrity` attribute of one of [`SCRIPTS`] (`sha384-…`, W3C SRI); empty for a
/// name that is not one of them.
pub fn integrity(name: &str) -> &'static str {
    static HASHES: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
        SCRIPTS
            .iter()
            .map(|(name, _, bytes)| {
                let digest = Sha384::digest(bytes);
                let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
                (*name, format!("sha384-{b64}"))
            })
            .collect()
    });
    HASHES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, h)| h.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integrity_is_the_sha384_of_the_served_bytes() {
        let h = integrity(UPLOAD_PROGRESS);
        assert!(h.starts_with("sha384-") && h.len() == 7 + 64, "{h}");
        assert_eq!(integrity("other.js"), "");
    }
}
