//! Syntax of the network settings and fields: CIDRs, egress entries, label selectors.

/// Parse an IPv4 or IPv6 CIDR, e.g. `10.0.0.0/8` or `2001:db8::/32`.
pub fn parse_cidr(s: &str) -> Result<(), String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (missing /prefix)"))?;
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max => Ok(()),
        _ => Err(format!("{s:?}: prefix must be 0..={max}")),
    }
}

/// Parse `CIDR` or `CIDR:PORT` (IPv6 with a port: `[2001:db8::/32]:443`).
pub fn parse_egress(entry: &str) -> Result<(String, Option<u16>), String> {
    let (cidr, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (cidr, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("{entry:?}: missing ]"))?;
        (cidr, tail.strip_prefix(':'))
    } else {
        match entry.rsplit_once(':') {
            Some((c, p)) if !c.contains(':') => (c, Some(p)),
            _ => (entry, None),
        }
    };
    parse_cidr(cidr)?;
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{entry:?}: bad port {p:?}"))?,
        ),
        None => None,
    };
    Ok((cidr.to_owned(), port))
}

/// Parse a single `key=value` label selector.
pub fn parse_selector(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_entries_parse() {
        assert_eq!(
            parse_egress("10.0.0.0/8").unwrap(),
            ("10.0.0.0/8".into(), None)
        );
        assert_eq!(
            parse_egress("10.1.2.3/32:3900").unwrap(),
            ("10.1.2.3/32".into(), Some(3900))
        );
        assert_eq!(
            parse_egress("2001:db8::/32").unwrap(),
            ("2001:db8::/32".into(), None)
        );
        assert_eq!(
            parse_egress("[2001:db8::/32]:443").unwrap(),
            ("2001:db8::/32".into(), Some(443))
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "nope/8",
            "10.0.0.0/8:0",
            "10.0.0.0/8:http",
            "[::/0",
        ] {
            assert!(parse_egress(bad).is_err(), "{bad}");
        }
    }
}
