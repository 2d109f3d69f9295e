//! What a sandbox may ask to reach beyond the platform (`extraEgressCidrs`), checked the
//! same way by the gateway (on request and on approval) and by the operator (before it
//! builds the network policy), with the same rule names and messages.
//!
//! An extra egress CIDR is refused when it is
//!
//! 1. not a CIDR (`cidr_syntax`);
//! 2. a catch-all: a prefix shorter than `--egress-min-prefix-v4` (default /16) or
//!    `--egress-min-prefix-v6` (default /48) — `0.0.0.0/0` and `::/0` included
//!    (`egress_too_broad`);
//! 3. a private range whole or more (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7),
//!    even when it is long enough (`egress_private_catch_all`);
//! 4. overlapping a reserved range: "this network" 0/8, loopback 127/8 and ::1, link-local
//!    169.254/16 (cloud metadata 169.254.169.254) and fe80::/10, IPv4-mapped IPv6
//!    ::ffff:0:0/96, the AWS IPv6 metadata address fd00:ec2::254 (`egress_reserved`);
//! 5. overlapping the cluster's own pod and service ranges, `--cluster-cidrs` (default
//!    10.244.0.0/16 and 10.96.0.0/12, kubeadm's), which the network policy must keep
//!    closed (`egress_cluster_internal`).
//!
//! Beyond that, `--egress-allowlist` (set by the Métropole) says which destinations a
//! tenant admin may approve: a CIDR inside one of its entries; anything else needs a
//! Métropole admin's approval (the gateway's rule `egress_allowlist`).

use std::net::IpAddr;

use crate::net::parse_cidr;

/// A parsed CIDR: address bits (IPv4 in the low 32 bits) and prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    v6: bool,
    addr: u128,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Result<Net, String> {
        parse_cidr(s)?;
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (missing /prefix)"))?;
        let prefix: u8 = prefix.parse().map_err(|_| format!("{s:?}: bad prefix"))?;
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
        Ok(match ip {
            IpAddr::V4(a) => Net {
                v6: false,
                addr: u128::from(u32::from(a)),
                prefix,
            },
            IpAddr::V6(a) => Net {
                v6: true,
                addr: u128::from(a),
                prefix,
            },
        })
    }

    fn bits(self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    /// The first `prefix` bits of this family's addresses.
    fn mask(self, prefix: u8) -> u128 {
        let bits = u32::from(self.bits());
        let full = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        if prefix == 0 {
            0
        } else {
            (full << (bits - u32::from(prefix))) & full
        }
    }

    fn overlaps(self, other: Net) -> bool {
        let p = self.prefix.min(other.prefix);
        self.v6 == other.v6 && self.addr & self.mask(p) == other.addr & self.mask(p)
    }

    /// Whether every address of `inner` is in `self`.
    fn contains(self, inner: Net) -> bool {
        self.v6 == inner.v6
            && self.prefix <= inner.prefix
            && self.addr & self.mask(self.prefix) == inner.addr & self.mask(self.prefix)
    }
}

/// Ranges no sandbox may reach, whatever the approval: (CIDR, what it is).
pub const RESERVED: [(&str, &str); 8] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    (
        "169.254.0.0/16",
        "link-local (cloud metadata 169.254.169.254)",
    ),
    ("::1/128", "loopback"),
    ("::/128", "the unspecified address"),
    ("fe80::/10", "link-local"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6"),
    ("fd00:ec2::254/128", "the cloud metadata service"),
];

/// Private ranges a sandbox may reach in part, never whole.
pub const PRIVATE: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// Why an extra egress CIDR is refused: a rule name and a message naming the range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRefusal {
    pub rule: &'static str,
    pub message: String,
}

fn refuse(rule: &'static str, message: String) -> EgressRefusal {
    EgressRefusal { rule, message }
}

/// The rules for extra egress, shared by the gateway's and the operator's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct EgressRules {
    /// The cluster's pod and service CIDRs (comma-separated): no sandbox may ask to reach
    /// them as extra egress.
    #[arg(
        long,
        env = "SERRE_CLUSTER_CIDRS",
        value_delimiter = ',',
        default_value = "10.244.0.0/16,10.96.0.0/12"
    )]
    pub cluster_cidrs: Vec<String>,

    /// Shortest IPv4 prefix an extra egress CIDR may have (shorter ones are catch-alls).
    #[arg(long, env = "SERRE_EGRESS_MIN_PREFIX_V4", default_value_t = 16)]
    pub egress_min_prefix_v4: u8,

    /// Shortest IPv6 prefix an extra egress CIDR may have.
    #[arg(long, env = "SERRE_EGRESS_MIN_PREFIX_V6", default_value_t = 48)]
    pub egress_min_prefix_v6: u8,

    /// Destinations (CIDRs, comma-separated) the Métropole lets tenant admins approve as
    /// extra egress; anything outside needs a Métropole admin. Empty: every extra egress
    /// needs a Métropole admin.
    #[arg(long, env = "SERRE_EGRESS_ALLOWLIST", value_delimiter = ',')]
    pub egress_allowlist: Vec<String>,
}

impl EgressRules {
    /// Check the settings; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        for c in &self.cluster_cidrs {
            Net::parse(c).map_err(|e| format!("--cluster-cidrs: {e}"))?;
        }
        for c in &self.egress_allowlist {
            Net::parse(c).map_err(|e| format!("--egress-allowlist: {e}"))?;
            if let Err(r) = self.check(c) {
                return Err(format!("--egress-allowlist: {}", r.message));
            }
        }
        if !(1..=32).contains(&self.egress_min_prefix_v4) {
            return Err("--egress-min-prefix-v4 must be 1 to 32".into());
        }
        if !(1..=128).contains(&self.egress_min_prefix_v6) {
            return Err("--egress-min-prefix-v6 must be 1 to 128".into());
        }
        Ok(())
    }

    /// Whether a sandbox may ever reach `cidr` as extra egress.
    pub fn check(&self, cidr: &str) -> Result<(), EgressRefusal> {
        let net = Net::parse(cidr).map_err(|e| refuse("cidr_syntax", e))?;
        let min = if net.v6 {
            self.egress_min_prefix_v6
        } else {
            self.egress_min_prefix_v4
        };
        if net.prefix < min {
            return Err(refuse(
                "egress_too_broad",
                format!(
                    "{cidr} is too broad: an extra egress destination is at most a /{} \
                     (IPv4) or /{} (IPv6); name the hosts the sandbox needs",
                    self.egress_min_prefix_v4, self.egress_min_prefix_v6
                ),
            ));
        }
        for range in PRIVATE {
            if let Ok(p) = Net::parse(range)
                && net.contains(p)
            {
                return Err(refuse(
                    "egress_private_catch_all",
                    format!(
                        "{cidr} covers the whole private range {range}: name the hosts the \
                         sandbox needs"
                    ),
                ));
            }
        }
        for (range, what) in RESERVED {
            if let Ok(r) = Net::parse(range)
                && net.overlaps(r)
            {
                return Err(refuse(
                    "egress_reserved",
                    format!("{cidr} overlaps {range}, {what}: never reachable from a sandbox"),
                ));
            }
        }
        for range in &self.cluster_cidrs {
            if let Ok(r) = Net::parse(range)
                && net.overlaps(r)
            {
                return Err(refuse(
                    "egress_cluster_internal",
                    format!(
                        "{cidr} overlaps the cluster's own range {range} (pods or services): \
                         sandboxes reach cluster services only through the platform egress"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether `cidr` lies inside the Métropole's allowlist (a tenant admin may approve it).
    pub fn allowlisted(&self, cidr: &str) -> bool {
        let Ok(net) = Net::parse(cidr) else {
            return false;
        };
        self.egress_allowlist
            .iter()
            .filter_map(|a| Net::parse(a).ok())
            .any(|a| a.contains(net))
    }
}

/// The default rules (for tests and tools): the flags' defaults, no allowlist.
pub fn default_rules() -> EgressRules {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct P {
        #[command(flatten)]
        r: EgressRules,
    }
    P::parse_from(["rules"]).r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(r: &EgressRules, cidr: &str) -> &'static str {
        match r.check(cidr) {
            Ok(()) => "ok",
            Err(e) => e.rule,
        }
    }

    #[test]
    fn egress_refuses_catch_alls_reserved_and_cluster_ranges() {
        let r = default_rules();
        assert_eq!(r.validate(), Ok(()));
        for (cidr, expected) in [
            ("0.0.0.0/0", "egress_too_broad"),
            ("::/0", "egress_too_broad"),
            ("10.0.0.0/8", "egress_too_broad"),
            ("2001:db8::/32", "egress_too_broad"),
            ("192.168.0.0/16", "egress_private_catch_all"),
            ("169.254.169.254/32", "egress_reserved"),
            ("169.254.0.0/16", "egress_reserved"),
            ("127.0.0.1/32", "egress_reserved"),
            ("0.0.0.0/32", "egress_reserved"),
            ("::1/128", "egress_reserved"),
            ("fe80::1/128", "egress_reserved"),
            ("::ffff:169.254.169.254/128", "egress_reserved"),
            ("fd00:ec2::254/128", "egress_reserved"),
            ("10.96.0.1/32", "egress_cluster_internal"),
            ("10.244.3.0/24", "egress_cluster_internal"),
            ("10.0.0.0/16", "ok"),
            ("192.168.1.0/24", "ok"),
            ("192.0.2.10/32", "ok"),
            ("2001:db8:1::/48", "ok"),
            ("bogus", "cidr_syntax"),
            ("10.0.0.0/33", "cidr_syntax"),
        ] {
            assert_eq!(rule(&r, cidr), expected, "{cidr}");
        }
        let e = r.check("0.0.0.0/0").unwrap_err();
        assert!(
            e.message.starts_with("0.0.0.0/0 is too broad"),
            "{}",
            e.message
        );
        let e = r.check("169.254.169.254/32").unwrap_err();
        assert!(e.message.contains("169.254.0.0/16"), "{}", e.message);
    }

    #[test]
    fn egress_cluster_ranges_and_allowlist_are_settings() {
        let mut r = default_rules();
        r.cluster_cidrs = vec!["10.42.0.0/16".into(), "10.43.0.0/16".into()];
        assert_eq!(rule(&r, "10.96.0.1/32"), "ok");
        assert_eq!(rule(&r, "10.43.0.10/32"), "egress_cluster_internal");
        r.egress_allowlist = vec!["192.0.2.0/24".into()];
        assert_eq!(r.validate(), Ok(()));
        assert!(r.allowlisted("192.0.2.0/28"));
        assert!(r.allowlisted("192.0.2.0/24"));
        assert!(!r.allowlisted("192.0.0.0/16"));
        assert!(!r.allowlisted("198.51.100.0/24"));
        assert!(!r.allowlisted("2001:db8::/48"));
        r.egress_allowlist = vec!["0.0.0.0/0".into()];
        assert!(r.validate().unwrap_err().starts_with("--egress-allowlist"));
        r.egress_allowlist = vec![];
        r.cluster_cidrs = vec!["nope".into()];
        assert!(r.validate().unwrap_err().starts_with("--cluster-cidrs"));
    }
}
