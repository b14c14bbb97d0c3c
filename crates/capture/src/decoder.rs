//! Frames in, a frame list and protocol events out.
//!
//! For every Ethernet frame the decoder makes a one-line summary, as
//! Wireshark's packet list does, and feeds TCP segments to the connection
//! they belong to (reassembled by [`crate::tcp`]) and UDP datagrams to
//! their protocol. Which protocol a flow speaks is decided by its server
//! port. Every flow's memory is bounded, and so is the number of flows:
//! the least recently active flows are dropped first.

use crate::dns::{self, DnsStream};
use crate::event::{Event, EventKind, Transport};
use crate::http::HttpFlow;
use crate::imap::ImapFlow;
use crate::pop3::Pop3Flow;
use crate::smtp::SmtpFlow;
use crate::tcp::{Delivery, HalfStream};
use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Bounds on what the decoder holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Out-of-order bytes held per direction of a connection.
    pub held_per_direction: usize,
    /// Connections tracked at once.
    pub flows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            held_per_direction: 1 << 20,
            flows: 4096,
        }
    }
}

/// One line of the frame list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// From 1, in capture order.
    pub number: u64,
    /// Seconds since the Unix epoch, with microseconds.
    pub time: f64,
    /// Bytes on the wire.
    pub len: usize,
    /// Source and destination: IP addresses, or MAC addresses below IP.
    pub src: String,
    pub dst: String,
    /// The highest protocol recognised ("HTTP", "DNS", "TCP", "UDP", "ARP" ...).
    pub protocol: String,
    pub info: String,
    /// The flow the frame belongs to, if it is TCP or UDP.
    pub flow: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    Http,
    Dns,
    Smtp,
    Pop3,
    Imap,
    Other,
}

/// The protocol a server port speaks in the labs.
fn default_app(port: u16) -> App {
    match port {
        80 | 8080 | 3128 | 8000 => App::Http,
        53 | 5353 => App::Dns,
        25 | 587 | 2525 => App::Smtp,
        110 | 1110 => App::Pop3,
        143 | 1143 => App::Imap,
        _ => App::Other,
    }
}

enum AppState {
    Http(Box<HttpFlow>),
    Dns(Box<[DnsStream; 2]>),
    Smtp(Box<SmtpFlow>),
    Pop3(Box<Pop3Flow>),
    Imap(Box<ImapFlow>),
    Other,
}

struct Flow {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    /// [client → server, server → client]
    halves: [HalfStream; 2],
    app: AppState,
    last_frame: u64,
    closed: bool,
}

type Key = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

pub struct Decoder {
    limits: Limits,
    /// Ports beyond the usual ones, and what they speak.
    extra_ports: HashMap<u16, App>,
    flows: HashMap<Key, Flow>,
    udp_flows: HashMap<Key, u64>,
    next_flow: u64,
    frames: u64,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            extra_ports: HashMap::new(),
            flows: HashMap::new(),
            udp_flows: HashMap::new(),
            next_flow: 1,
            frames: 0,
        }
    }

    /// Treat `port` as an HTTP server port too (a node on a test port).
    pub fn http_port(mut self, port: u16) -> Decoder {
        self.extra_ports.insert(port, App::Http);
        self
    }

    /// Treat `port` as an SMTP server port too.
    pub fn smtp_port(mut self, port: u16) -> Decoder {
        self.extra_ports.insert(port, App::Smtp);
        self
    }

    /// Treat `port` as a POP3 server port too.
    pub fn pop3_port(mut self, port: u16) -> Decoder {
        self.extra_ports.insert(port, App::Pop3);
        self
    }

    /// Treat `port` as an IMAP server port too.
    pub fn imap_port(mut self, port: u16) -> Decoder {
        self.extra_ports.insert(port, App::Imap);
        self
    }

    /// Treat `port` as a DNS server port too.
    pub fn dns_port(mut self, port: u16) -> Decoder {
        self.extra_ports.insert(port, App::Dns);
        self
    }

    fn app_for_port(&self, port: u16) -> App {
        self.extra_ports
            .get(&port)
            .copied()
            .unwrap_or_else(|| default_app(port))
    }

    /// Decode one Ethernet frame captured at `time` (seconds since the
    /// epoch); events it completes are appended to `events`.
    pub fn frame(&mut self, time: f64, data: &[u8], events: &mut Vec<Event>) -> FrameInfo {
        self.frames += 1;
        let number = self.frames;
        let mut info = FrameInfo {
            number,
            time,
            len: data.len(),
            src: String::new(),
            dst: String::new(),
            protocol: "Ethernet".into(),
            info: String::new(),
            flow: None,
        };
        let p = match SlicedPacket::from_ethernet(data) {
            Ok(p) => p,
            Err(e) => {
                info.info = format!("malformed: {e}");
                return info;
            }
        };
        if let Some(LinkSlice::Ethernet2(eth)) = &p.link {
            info.src = mac(&eth.source());
            info.dst = mac(&eth.destination());
            info.info = format!("{:?}", eth.ether_type());
        }
        let (src_ip, dst_ip): (IpAddr, IpAddr) = match &p.net {
            Some(NetSlice::Ipv4(v4)) => (
                v4.header().source_addr().into(),
                v4.header().destination_addr().into(),
            ),
            Some(NetSlice::Ipv6(v6)) => (
                v6.header().source_addr().into(),
                v6.header().destination_addr().into(),
            ),
            Some(NetSlice::Arp(arp)) => {
                info.protocol = "ARP".into();
                let ip = |b: &[u8]| match b {
                    [a, b, c, d] => format!("{a}.{b}.{c}.{d}"),
                    _ => "?".into(),
                };
                info.info = match arp.operation().0 {
                    1 => format!(
                        "Who has {}? Tell {}",
                        ip(arp.target_protocol_addr()),
                        ip(arp.sender_protocol_addr())
                    ),
                    2 => format!(
                        "{} is at {}",
                        ip(arp.sender_protocol_addr()),
                        mac(arp.sender_hw_addr())
                    ),
                    op => format!("operation {op}"),
                };
                return info;
            }
            None => return info,
        };
        info.src = src_ip.to_string();
        info.dst = dst_ip.to_string();
        info.protocol = "IP".into();
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let src = SocketAddr::new(src_ip, t.source_port());
                let dst = SocketAddr::new(dst_ip, t.destination_port());
                info.protocol = "TCP".into();
                let mut flags = Vec::new();
                for (on, name) in [
                    (t.syn(), "SYN"),
                    (t.fin(), "FIN"),
                    (t.rst(), "RST"),
                    (t.psh(), "PSH"),
                    (t.ack(), "ACK"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                info.info = format!(
                    "{} → {} [{}] Seq={} Ack={} Win={} Len={}",
                    t.source_port(),
                    t.destination_port(),
                    flags.join(", "),
                    t.sequence_number(),
                    t.acknowledgment_number(),
                    t.window_size(),
                    t.payload().len()
                );
                let payload = t.payload();
                let smtp = self.app_for_port(t.source_port()) == App::Smtp
                    || self.app_for_port(t.destination_port()) == App::Smtp;
                let app = |a| {
                    self.app_for_port(t.source_port()) == a
                        || self.app_for_port(t.destination_port()) == a
                };
                let pop = app(App::Pop3);
                let imap = app(App::Imap);
                if (smtp || pop || imap) && !payload.is_empty() {
                    // tshark's names for them.
                    info.protocol = if smtp {
                        "SMTP"
                    } else if pop {
                        "POP"
                    } else {
                        "IMAP"
                    }
                    .into();
                    let line = payload.split(|&b| b == b'\n').next().unwrap_or(b"");
                    info.info = String::from_utf8_lossy(line).trim_end().to_string();
                }
                if (self.app_for_port(t.source_port()) == App::Http
                    || self.app_for_port(t.destination_port()) == App::Http)
                    && starts_http(payload)
                {
                    info.protocol = "HTTP".into();
                    let line = payload.split(|&b| b == b'\n').next().unwrap_or(b"");
                    info.info = String::from_utf8_lossy(line).trim_end().to_string();
                }
                let seg = Seg {
                    seq: t.sequence_number(),
                    syn: t.syn(),
                    ack: t.ack(),
                    fin: t.fin(),
                    rst: t.rst(),
                    payload,
                };
                info.flow = Some(self.tcp(time, number, src, dst, seg, events));
            }
            Some(TransportSlice::Udp(u)) => {
                let src = SocketAddr::new(src_ip, u.source_port());
                let dst = SocketAddr::new(dst_ip, u.destination_port());
                info.protocol = "UDP".into();
                info.info = format!(
                    "{} → {} Len={}",
                    u.source_port(),
                    u.destination_port(),
                    u.payload().len()
                );
                let k = key(src, dst);
                let next = &mut self.next_flow;
                let flow = *self.udp_flows.entry(k).or_insert_with(|| {
                    *next += 1;
                    *next - 1
                });
                if self.udp_flows.len() > self.limits.flows {
                    self.udp_flows.clear();
                }
                info.flow = Some(flow);
                let dns_server = if self.app_for_port(u.destination_port()) == App::Dns {
                    Some((src, dst))
                } else if self.app_for_port(u.source_port()) == App::Dns {
                    Some((dst, src))
                } else {
                    None
                };
                if let Some((client, server)) = dns_server {
                    info.protocol = "DNS".into();
                    let kind = dns::message(u.payload(), Transport::Udp);
                    info.info = dns_summary(&kind);
                    events.push(Event {
                        time,
                        flow,
                        frame: number,
                        client,
                        server,
                        kind,
                    });
                }
            }
            Some(TransportSlice::Icmpv4(_)) => info.protocol = "ICMP".into(),
            Some(TransportSlice::Icmpv6(_)) => info.protocol = "ICMPv6".into(),
            _ => {}
        }
        info
    }

    fn tcp(
        &mut self,
        time: f64,
        frame: u64,
        src: SocketAddr,
        dst: SocketAddr,
        seg: Seg<'_>,
        events: &mut Vec<Event>,
    ) -> u64 {
        let k = key(src, dst);
        if !self.flows.contains_key(&k) {
            if self.flows.len() >= self.limits.flows {
                self.evict(time, events);
            }
            // The client is whoever sent the SYN; mid-connection, the side
            // on the higher (ephemeral) port.
            let (client, server) = if seg.syn && !seg.ack {
                (src, dst)
            } else if seg.syn && seg.ack {
                (dst, src)
            } else if src.port() > dst.port() {
                (src, dst)
            } else {
                (dst, src)
            };
            let app = match self.app_for_port(server.port()) {
                App::Http => AppState::Http(Box::default()),
                App::Dns => AppState::Dns(Box::default()),
                App::Smtp => AppState::Smtp(Box::default()),
                App::Pop3 => AppState::Pop3(Box::default()),
                App::Imap => AppState::Imap(Box::default()),
                App::Other => AppState::Other,
            };
            let id = self.next_flow;
            self.next_flow += 1;
            if seg.syn && !seg.ack {
                events.push(Event {
                    time,
                    flow: id,
                    frame,
                    client,
                    server,
                    kind: EventKind::TcpOpen,
                });
            }
            self.flows.insert(
                k,
                Flow {
                    id,
                    client,
                    server,
                    halves: Default::default(),
                    app,
                    last_frame: frame,
                    closed: false,
                },
            );
        }
        let limit = self.limits.held_per_direction;
        let flow = self.flows.get_mut(&k).expect("inserted above");
        flow.last_frame = frame;
        let dir = if src == flow.client { 0 } else { 1 };
        let mut out = Vec::new();
        flow.halves[dir].segment(seg.seq, seg.syn, seg.fin, seg.payload, limit, &mut out);
        let mut kinds = Vec::new();
        for d in out {
            flow.deliver(dir, d, &mut kinds);
        }
        if seg.rst && !flow.closed {
            flow.close_halves(&mut kinds);
            flow.closed = true;
            kinds.push(EventKind::TcpClose { reset: true });
        } else if !flow.closed && flow.halves.iter().all(|h| h.is_finished()) {
            flow.closed = true;
            kinds.push(EventKind::TcpClose { reset: false });
        }
        events.extend(kinds.into_iter().map(|k| flow.event(time, frame, k)));
        // A closed flow stays (its half streams hold nothing) so the last
        // ACKs are still numbered with it; eviction reclaims it later.
        flow.id
    }

    /// Drop the least recently active quarter of the flows.
    fn evict(&mut self, time: f64, events: &mut Vec<Event>) {
        let mut ages: Vec<(u64, Key)> =
            self.flows.iter().map(|(k, f)| (f.last_frame, *k)).collect();
        ages.sort();
        for (_, k) in ages.iter().take((ages.len() / 4).max(1)) {
            if let Some(mut f) = self.flows.remove(k) {
                let mut kinds = Vec::new();
                f.close_halves(&mut kinds);
                events.extend(kinds.into_iter().map(|k| f.event(time, f.last_frame, k)));
            }
        }
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

struct Seg<'a> {
    seq: u32,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    payload: &'a [u8],
}

impl Flow {
    fn event(&self, time: f64, frame: u64, kind: EventKind) -> Event {
        Event {
            time,
            flow: self.id,
            frame,
            client: self.client,
            server: self.server,
            kind,
        }
    }

    /// End both directions now (RST, eviction): held bytes are delivered
    /// after their gaps; a FIN is not invented.
    fn close_halves(&mut self, out: &mut Vec<EventKind>) {
        for h in 0..2 {
            let mut rest = Vec::new();
            self.halves[h].close(&mut rest);
            for d in rest {
                if d != Delivery::Fin {
                    self.deliver(h, d, out);
                }
            }
        }
    }

    fn deliver(&mut self, dir: usize, d: Delivery, out: &mut Vec<EventKind>) {
        let client = dir == 0;
        match &mut self.app {
            AppState::Http(h) => match d {
                Delivery::Data(b) if client => h.client_data(&b, out),
                Delivery::Data(b) => h.server_data(&b, out),
                Delivery::Gap(n) => h.gap(client, n, out),
                Delivery::Fin => h.fin(client, out),
            },
            AppState::Dns(s) => match d {
                Delivery::Data(b) => s[dir].data(&b, out),
                Delivery::Gap(n) => s[dir].gap(n, out),
                Delivery::Fin => {}
            },
            AppState::Smtp(s) => match d {
                Delivery::Data(b) if client => s.client_data(&b, out),
                Delivery::Data(b) => s.server_data(&b, out),
                Delivery::Gap(n) => s.gap(n, out),
                Delivery::Fin => {}
            },
            AppState::Pop3(s) => match d {
                Delivery::Data(b) if client => s.client_data(&b, out),
                Delivery::Data(b) => s.server_data(&b, out),
                Delivery::Gap(n) => s.gap(n, out),
                Delivery::Fin => {}
            },
            AppState::Imap(s) => match d {
                Delivery::Data(b) if client => s.client_data(&b, out),
                Delivery::Data(b) => s.server_data(&b, out),
                Delivery::Gap(n) => s.gap(n, out),
                Delivery::Fin => {}
            },
            AppState::Other => {}
        }
    }
}

fn starts_http(p: &[u8]) -> bool {
    const STARTS: [&[u8]; 9] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"PATCH ",
        b"HTTP/1.",
    ];
    STARTS.iter().any(|s| p.starts_with(s))
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn dns_summary(k: &EventKind) -> String {
    match k {
        EventKind::DnsQuery {
            id, name, qtype, ..
        } => {
            format!("Standard query 0x{id:04x} {qtype} {name}")
        }
        EventKind::DnsResponse {
            id,
            name,
            qtype,
            rcode,
            answers,
            ..
        } => format!(
            "Standard query response 0x{id:04x} {qtype} {name} {rcode} ({} answers)",
            answers.len()
        ),
        EventKind::Malformed { reason, .. } => format!("malformed: {reason}"),
        _ => String::new(),
    }
}
