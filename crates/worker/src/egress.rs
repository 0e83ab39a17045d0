//! Outgoing HTTP (webhooks, robots) under an egress policy: http and https only; every
//! address a name resolves to is checked, and only checked addresses are connected to
//! (the resolver hands ureq exactly those, so a second lookup cannot swap them: no DNS
//! rebinding); loopback, private, link-local (cloud metadata), CGNAT and other special
//! ranges are refused unless the allow-list names them; redirects are not followed;
//! connect and total timeouts; the response body is read up to a bound.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_domain::integrations::blocked_address;
use ipnet::IpNet;

/// Which special addresses may be reached anyway (e.g. `127.0.0.1/32` for a local
/// receiver, or a private network's integration host).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allowed: Vec<IpNet>,
}

impl Policy {
    /// Parses a comma-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<Policy, String> {
        let mut allowed = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = match part.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => part
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("`{part}` is not an address or CIDR network"))?,
            };
            allowed.push(net);
        }
        Ok(Policy { allowed })
    }

    /// `Err(reason)` when the policy refuses the address.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match blocked_address(ip) {
            Some(why) => Err(format!("{ip} is a {why} address")),
            None => Ok(()),
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The body, up to [`MAX_BODY`] bytes, lossy UTF-8.
    pub body: String,
    pub latency: Duration,
}

/// Why nothing came back.
#[derive(Debug, Clone)]
pub enum SendError {
    /// The egress policy refused the URL or every address it resolves to.
    Refused(String),
    /// Connecting, sending or reading failed (timeouts included).
    Transport { message: String, latency: Duration },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Refused(m) => write!(f, "refused by the egress policy: {m}"),
            SendError::Transport { message, .. } => write!(f, "{message}"),
        }
    }
}

/// The most of a response body read.
pub const MAX_BODY: u64 = 64 * 1024;

const REFUSED: &str = "refused by the egress policy";

/// An HTTP client bound to a policy.
#[derive(Clone)]
pub struct Egress {
    agent: ureq::Agent,
}

impl Egress {
    /// Connect timeout 3 s and total 10 s are what webhooks use.
    pub fn new(policy: Policy, connect: Duration, total: Duration) -> Egress {
        let policy = Arc::new(policy);
        let resolver = move |netloc: &str| -> std::io::Result<Vec<SocketAddr>> {
            let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
            let mut refused = Vec::new();
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused.push(why);
                        false
                    }
                })
                .collect();
            if ok.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{REFUSED}: {}", refused.join("; ")),
                ));
            }
            Ok(ok)
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .timeout(total)
            .redirects(0)
            .user_agent("crm-webhooks/1")
            .resolver(resolver)
            .build();
        Egress { agent }
    }

    /// POSTs a JSON body. Any status is a [`Reply`]; only transport failures and
    /// refusals are errors.
    pub fn post_json(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<Reply, SendError> {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(SendError::Refused("only http and https URLs".into()));
        }
        let mut req = self.agent.post(url).set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let started = Instant::now();
        let resp = match req.send_string(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                let message = t.to_string();
                if message.contains(REFUSED) {
                    let why = message.split(REFUSED).nth(1).unwrap_or("").trim_start_matches(": ");
                    return Err(SendError::Refused(why.to_owned()));
                }
                return Err(SendError::Transport {
                    message,
                    latency: started.elapsed(),
                });
            }
        };
        let status = resp.status();
        let retry_after = resp.header("Retry-After").map(str::to_owned);
        let mut buf = Vec::new();
        let read = resp.into_reader().take(MAX_BODY).read_to_end(&mut buf);
        if let Err(e) = read {
            if buf.is_empty() && status < 300 {
                return Err(SendError::Transport {
                    message: format!("reading the response: {e}"),
                    latency: started.elapsed(),
                });
            }
        }
        Ok(Reply {
            status,
            retry_after,
            body: String::from_utf8_lossy(&buf).into_owned(),
            latency: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_opens_named_ranges_only() {
        let p = Policy::parse("127.0.0.1, 10.8.0.0/16").unwrap_or_default();
        assert!(p
            .check("127.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
            .is_ok());
        assert!(p
            .check("10.8.3.4".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
            .is_ok());
        assert!(p
            .check("10.9.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
            .is_err());
        assert!(p
            .check("127.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
            .is_err());
        assert!(Policy::parse("nope").is_err());
        assert!(Policy::default()
            .check("8.8.8.8".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
            .is_ok());
    }
}
