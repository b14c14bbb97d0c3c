//! A stub resolver: one question to one server, UDP first, TCP when the
//! answer comes back truncated (or when asked to), as RFC 1035 §4.2 and
//! RFC 7766 describe. The mail queue uses it to find the other domain's
//! mail server (MX, falling back to A, RFC 5321 §5.1); `lookup` shows it.

use applab_proto::dns_tcp;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// The mnemonic RFC 1035 and dig use for a response code.
pub fn rcode_name(rc: ResponseCode) -> String {
    match u16::from(rc) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// The answer and how it came; `truncated_udp` when UDP said TC first.
pub struct Answer {
    pub message: Message,
    pub transport: Transport,
    pub truncated_udp: bool,
}

const TRIES: usize = 2;

/// Ask `server` one question.
pub async fn query(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    force_tcp: bool,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let mut q = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(name.clone(), qtype));
    let wire = q.to_vec()?;
    let mut truncated_udp = false;
    if !force_tcp {
        let m = udp(server, &wire, &q, timeout).await?;
        if !m.metadata.truncation {
            return Ok(Answer {
                message: m,
                transport: Transport::Udp,
                truncated_udp: false,
            });
        }
        truncated_udp = true;
    }
    let m = tokio::time::timeout(timeout, tcp(server, &wire, &q))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {server} over TCP within {timeout:?}"))??;
    Ok(Answer {
        message: m,
        transport: Transport::Tcp,
        truncated_udp,
    })
}

/// A reply belongs to our question: same id, same question.
fn matches(reply: &Message, q: &Message) -> bool {
    reply.metadata.id == q.metadata.id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries == q.queries
}

async fn udp(
    server: SocketAddr,
    wire: &[u8],
    q: &Message,
    timeout: Duration,
) -> anyhow::Result<Message> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    let mut buf = vec![0u8; 65535];
    for _ in 0..TRIES {
        sock.send(wire).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        // Skip stray datagrams (a late reply to an earlier try, spoofs).
        while let Ok(r) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            let n = match r {
                Ok(n) => n,
                Err(e) => anyhow::bail!("{server}: {e}"),
            };
            if let Ok(m) = Message::from_vec(&buf[..n]) {
                if matches(&m, q) {
                    return Ok(m);
                }
            }
        }
    }
    anyhow::bail!("no answer from {server} over UDP ({TRIES} tries, {timeout:?} each)")
}

async fn tcp(server: SocketAddr, wire: &[u8], q: &Message) -> anyhow::Result<Message> {
    let mut s = TcpStream::connect(server).await?;
    let framed = dns_tcp::frame(wire).ok_or_else(|| anyhow::anyhow!("query too long for TCP"))?;
    s.write_all(&framed).await?;
    let mut frames = dns_tcp::Deframer::default();
    let buf = loop {
        if let Some(m) = frames.next_message() {
            break m;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "{server} closed the TCP connection before answering");
        frames.feed(&chunk[..n]);
    };
    let m = Message::from_vec(&buf)?;
    anyhow::ensure!(
        matches(&m, q),
        "{server} answered another question over TCP"
    );
    Ok(m)
}

/// Where to deliver mail for a domain, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    pub preference: u16,
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

/// Why no mail host was found: the domain does not exist (permanent) or
/// the DNS did not answer (try again later).
#[derive(Debug)]
pub enum MxError {
    Permanent(String),
    Temporary(String),
}

impl std::fmt::Display for MxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MxError::Permanent(m) | MxError::Temporary(m) => f.write_str(m),
        }
    }
}

/// MX records of `domain` with their addresses; with no MX, the domain's own
/// A record is the implicit MX (RFC 5321 §5.1).
pub async fn mail_hosts(
    server: SocketAddr,
    domain: &str,
    timeout: Duration,
) -> Result<Vec<MailHost>, MxError> {
    let name = Name::from_ascii(format!("{}.", domain.trim_end_matches('.')))
        .map_err(|e| MxError::Permanent(format!("{domain:?} is not a domain name: {e}")))?;
    let temp = |e: anyhow::Error| MxError::Temporary(format!("MX lookup of {domain}: {e}"));
    let a = query(server, &name, RecordType::MX, false, timeout)
        .await
        .map_err(temp)?;
    match a.message.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            return Err(MxError::Permanent(format!(
                "domain {domain} does not exist (NXDOMAIN)"
            )))
        }
        rc => return Err(MxError::Temporary(format!("MX lookup of {domain}: {rc}"))),
    }
    let mut hosts: Vec<MailHost> = a
        .message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some(MailHost {
                preference: mx.preference,
                host: mx.exchange.to_ascii(),
                addrs: vec![],
            }),
            _ => None,
        })
        .collect();
    if hosts.is_empty() {
        hosts.push(MailHost {
            preference: 0,
            host: name.to_ascii(),
            addrs: vec![],
        });
    }
    hosts.sort_by_key(|h| h.preference);
    for h in &mut hosts {
        // Addresses from the additional section when the server gave them.
        h.addrs = a
            .message
            .additionals
            .iter()
            .filter(|r| r.name.to_ascii().eq_ignore_ascii_case(&h.host))
            .filter_map(|r| match &r.data {
                RData::A(x) => Some(IpAddr::V4(x.0)),
                _ => None,
            })
            .collect();
        if h.addrs.is_empty() {
            if let Ok(n) = Name::from_ascii(&h.host) {
                if let Ok(ans) = query(server, &n, RecordType::A, false, timeout).await {
                    h.addrs = ans
                        .message
                        .answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(x) => Some(IpAddr::V4(x.0)),
                            _ => None,
                        })
                        .collect();
                }
            }
        }
    }
    hosts.retain(|h| !h.addrs.is_empty());
    if hosts.is_empty() {
        return Err(MxError::Temporary(format!(
            "no address for any mail host of {domain}"
        )));
    }
    Ok(hosts)
}

/// A `HOST:PORT` given on the command line, with a name resolved by the
/// system (inside a lab: the engine's resolver knows the node names).
pub async fn server_addr(spec: &str, default_port: u16) -> anyhow::Result<SocketAddr> {
    let spec = spec.trim();
    if let Ok(a) = spec.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let with_port = if spec
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        spec.to_string()
    } else {
        format!("{spec}:{default_port}")
    };
    let found = tokio::net::lookup_host(with_port).await?.next();
    found.ok_or_else(|| anyhow::anyhow!("{spec}: no address"))
}

/// The first `nameserver` of /etc/resolv.conf.
pub fn system_server() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next()?.parse::<IpAddr>().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}
