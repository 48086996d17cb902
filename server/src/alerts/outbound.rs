//! Where an HTTP or SMTP alert may go: its host must resolve to public addresses only, unless the
//! operator listed that host in `alert_allowed_hosts`. The check is made on the addresses the
//! request then connects to (a resolver of ureq's own), so a name that resolves elsewhere a
//! moment later cannot slip past it; redirects are not followed.

use std::net::IpAddr;
use std::sync::Arc;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Why an address is not one alerts may reach unless allowed by name.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata)")
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some("private")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 {
                Some("not a host")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let low_v4 = std::net::Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8);
            // Forms that carry an IPv4 address: IPv4-compatible (`::a.b.c.d`) and NAT64
            // (`64:ff9b::a.b.c.d`) in their low 32 bits, 6to4 (`2002:AABB:CCDD::`) after 2002.
            let compatible = seg[..6].iter().all(|s| *s == 0) && !v6.is_loopback() && !v6.is_unspecified();
            let nat64 = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|s| *s == 0);
            if compatible || nat64 {
                return forbidden(IpAddr::V4(low_v4));
            }
            if seg[0] == 0x2002 {
                let v4 = std::net::Ipv4Addr::new((seg[1] >> 8) as u8, seg[1] as u8, (seg[2] >> 8) as u8, seg[2] as u8);
                if let Some(why) = forbidden(IpAddr::V4(v4)) {
                    return Some(why);
                }
            }
            let first = seg[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local (cloud metadata)")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a host")
            } else {
                None
            }
        }
    }
}

/// Whether `host` (as in a URL) is listed in `allowed` (names compared without case).
fn listed(allowed: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    allowed.iter().any(|a| a.trim_start_matches('[').trim_end_matches(']').eq_ignore_ascii_case(host))
}

/// Resolves as ureq does, then keeps only the addresses alerts may reach.
#[derive(Debug)]
struct GuardedResolver {
    allowed: Arc<Vec<String>>,
}

impl Resolver for GuardedResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        if listed(&self.allowed, host) {
            return Ok(all);
        }
        let mut kept = self.empty();
        let mut refused = None;
        for addr in all.iter() {
            match forbidden(addr.ip()) {
                None => kept.push(*addr),
                Some(why) => refused = Some((addr.ip(), why)),
            }
        }
        match (kept.is_empty(), refused) {
            (true, Some((ip, why))) => Err(ureq::Error::BadUri(format!(
                "{host} is {ip}, a {why} address: alerts go there only if alert_allowed_hosts lists {host}"
            ))),
            _ => Ok(kept),
        }
    }
}

/// The address an SMTP alert connects to: `host` resolved once, its first address alerts may
/// reach (any of them when `allowed` lists the host). The caller connects to that address, so
/// a name that resolves elsewhere a moment later cannot slip past.
pub fn smtp_address(allowed: &[String], host: &str, port: u16) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let all: Vec<_> = (host, port).to_socket_addrs().map_err(|e| format!("resolving {host}: {e}"))?.collect();
    if listed(allowed, host) {
        return all.first().copied().ok_or_else(|| format!("{host} has no address"));
    }
    if let Some(ok) = all.iter().find(|a| forbidden(a.ip()).is_none()) {
        return Ok(*ok);
    }
    match all.first() {
        Some(a) => Err(format!(
            "{host} is {}, a {} address: alerts go there only if alert_allowed_hosts lists {host}",
            a.ip(),
            forbidden(a.ip()).unwrap_or("refused")
        )),
        None => Err(format!("{host} has no address")),
    }
}

/// The largest `ca_file` an e-mail integration may name.
pub const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// Reads an e-mail integration's `ca_file`: a regular file of at most [`MAX_CA_FILE_BYTES`]
/// (never a device or a pipe that would not end); errors never quote its contents.
pub fn read_ca_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("reading ca_file {path}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("reading ca_file {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("ca_file {path} is not a regular file"));
    }
    if meta.len() > MAX_CA_FILE_BYTES {
        return Err(format!("ca_file {path} is over {MAX_CA_FILE_BYTES} bytes"));
    }
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES).read_to_end(&mut pem).map_err(|e| format!("reading ca_file {path}: {e}"))?;
    Ok(pem)
}

/// An HTTP client for alerts: the guarded resolver, no redirects, every status handed back.
pub fn agent(allowed: Arc<Vec<String>>, timeout: std::time::Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build();
    ureq::Agent::with_parts(config, DefaultConnector::new(), GuardedResolver { allowed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_mapped_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::",
            "::127.0.0.1",
            "::169.254.169.254",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a00:1::1",
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "100.128.0.1", "64:ff9b::808:808"] {
            assert_eq!(forbidden(ip.parse().unwrap()), None, "{ip}");
        }
        let allowed = vec!["hooks.internal".to_string(), "127.0.0.1".to_string(), "[::1]".to_string()];
        assert!(listed(&allowed, "HOOKS.internal") && listed(&allowed, "127.0.0.1") && listed(&allowed, "[::1]"));
        assert!(!listed(&allowed, "127.0.0.2"));
    }

    #[test]
    fn an_smtp_host_on_a_private_address_is_refused_unless_listed() {
        let refused = smtp_address(&[], "127.0.0.1", 25).unwrap_err();
        assert!(refused.contains("alert_allowed_hosts lists 127.0.0.1"), "{refused}");
        let listed = smtp_address(&["localhost".to_string()], "localhost", 2525).unwrap();
        assert!(listed.ip().is_loopback() && listed.port() == 2525, "{listed}");
    }

    #[test]
    fn a_ca_file_must_be_a_small_regular_file() {
        assert!(read_ca_file("/dev/zero").unwrap_err().contains("not a regular file"));
        let dir = std::env::temp_dir().join(format!("baton-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'x'; (MAX_CA_FILE_BYTES + 1) as usize]).unwrap();
        assert!(read_ca_file(big.to_str().unwrap()).unwrap_err().contains("over"));
        let ok = dir.join("ca.pem");
        std::fs::write(&ok, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(read_ca_file(ok.to_str().unwrap()).unwrap().len(), 28);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_request_to_a_private_address_is_refused_before_it_connects() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let refused = agent(Arc::new(Vec::new()), std::time::Duration::from_secs(5)).post(&url).send("x").unwrap_err();
        assert!(refused.to_string().contains("alert_allowed_hosts lists 127.0.0.1"), "{refused}");
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "no connection was made");
    }
}
