//! Where an HTTP alert may go: its host must resolve to public addresses only, unless the
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
            let first = v6.segments()[0];
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
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "100.128.0.1"] {
            assert_eq!(forbidden(ip.parse().unwrap()), None, "{ip}");
        }
        let allowed = vec!["hooks.internal".to_string(), "127.0.0.1".to_string(), "[::1]".to_string()];
        assert!(listed(&allowed, "HOOKS.internal") && listed(&allowed, "127.0.0.1") && listed(&allowed, "[::1]"));
        assert!(!listed(&allowed, "127.0.0.2"));
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
