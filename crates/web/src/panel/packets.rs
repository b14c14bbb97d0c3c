//! The student's traffic: frames and protocol events (filterable, live over
//! SSE), one frame's layers and bytes, a connection's ladder, and a
//! network's pcap. Everything here is the student's own capture: the
//! lookups are keyed by the session's student, so another student's flow
//! or frame number finds nothing.

use super::auth::{url_escape, Subject};
use super::{render, Chrome, PanelError};
use crate::pictures::{clip, ladder};
use crate::AppState;
use applab_controller::captures::{Frame, NodeEvent, Query};
use axum::extract::{Path, Query as Q, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Rows on a page, newest last.
const PAGE_ROWS: usize = 300;

#[derive(Deserialize, Default, Clone)]
pub struct Filter {
    network: Option<String>,
    node: Option<String>,
    protocol: Option<String>,
    /// Only the last N minutes.
    minutes: Option<f64>,
    /// frames | events
    view: Option<String>,
}

impl Filter {
    fn query(&self) -> Query {
        let some = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).cloned();
        Query {
            network: some(&self.network),
            node: some(&self.node),
            protocol: some(&self.protocol),
            since: self
                .minutes
                .filter(|m| *m > 0.0)
                .map(|m| applab_controller::store::now_f() - m * 60.0),
            until: None,
            flow: None,
            offset: 0,
            limit: PAGE_ROWS,
        }
    }

    fn events_view(&self) -> bool {
        self.view.as_deref() != Some("frames")
    }
}

/// Wall-clock time of day, UTC, to the millisecond.
pub fn clock(t: f64) -> String {
    let ms = (t * 1000.0).round() as i64;
    let day = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3_600_000,
        day / 60_000 % 60,
        day / 1000 % 60,
        day % 1000
    )
}

/// One row of the event list, as the page and the live stream show it.
#[derive(Serialize, Clone)]
pub struct EventRow {
    pub id: u64,
    /// Capture time, seconds since the epoch.
    pub t: f64,
    pub time: String,
    pub network: String,
    pub from: String,
    pub to: String,
    pub protocol: String,
    pub text: String,
    pub ladder: String,
    pub frame: String,
}

/// One row of the frame list.
#[derive(Serialize, Clone)]
pub struct FrameRow {
    pub number: u64,
    pub t: f64,
    pub time: String,
    pub network: String,
    pub src: String,
    pub dst: String,
    pub protocol: String,
    pub len: usize,
    pub info: String,
    pub detail: String,
}

pub fn event_row(base: &str, e: &NodeEvent) -> EventRow {
    let who = |n: &Option<String>, a: &std::net::SocketAddr| {
        n.clone().unwrap_or_else(|| a.ip().to_string())
    };
    let (c, s) = (
        who(&e.client_node, &e.event.client),
        who(&e.server_node, &e.event.server),
    );
    let (from, to) = match ladder::direction(&e.event.kind) {
        ladder::Dir::ToClient => (s, c),
        _ => (c, s),
    };
    let net = url_escape(&e.network);
    EventRow {
        id: e.seq,
        t: e.event.time,
        time: clock(e.event.time),
        network: e.network.clone(),
        from,
        to,
        protocol: e.event.kind.protocol().to_string(),
        text: clip(&e.message(), 300),
        ladder: format!("{base}/packets/ladder/{net}/{}#ev-{}", e.event.flow, e.seq),
        frame: format!("{base}/packets/frames/{net}/{}", e.event.frame),
    }
}

pub fn frame_row(base: &str, f: &Frame) -> FrameRow {
    let name = |n: &Option<String>, a: &str| n.clone().unwrap_or_else(|| a.to_string());
    FrameRow {
        number: f.frame.number,
        t: f.frame.time,
        time: clock(f.frame.time),
        network: f.network.clone(),
        src: name(&f.src_node, &f.frame.src),
        dst: name(&f.dst_node, &f.frame.dst),
        protocol: f.frame.protocol.clone(),
        len: f.frame.len,
        info: clip(&f.frame.info, 200),
        detail: format!(
            "{base}/packets/frames/{}/{}",
            url_escape(&f.network),
            f.frame.number
        ),
    }
}

#[derive(askama::Template)]
#[template(path = "packets.html")]
struct PacketsPage {
    c: Chrome,
    networks: Vec<String>,
    nodes: Vec<String>,
    protocols: Vec<&'static str>,
    f_network: String,
    f_node: String,
    f_protocol: String,
    f_minutes: String,
    events_view: bool,
    total: usize,
    events: Vec<EventRow>,
    frames: Vec<FrameRow>,
    stream: String,
    taps: String,
}

/// The newest page of what matches (the list reads oldest first).
fn newest<T>(all: impl Fn(usize) -> (usize, Vec<T>)) -> (usize, Vec<T>) {
    let (total, first) = all(0);
    if total <= PAGE_ROWS {
        (total, first)
    } else {
        all(total - PAGE_ROWS)
    }
}

pub async fn list(
    State(st): State<AppState>,
    s: Subject,
    Q(f): Q<Filter>,
) -> Result<Response, PanelError> {
    st.ctrl
        .ensure_capture_names(&s.run.name, &s.student.id)
        .await?;
    let q = f.query();
    let caps = &st.ctrl.captures;
    let (run, id) = (&s.run.name, &s.student.id);
    let (total, events, frames) = if f.events_view() {
        let (t, ev) = newest(|offset| {
            caps.events(
                run,
                id,
                &Query {
                    offset,
                    ..q.clone()
                },
            )
        });
        (
            t,
            ev.iter().map(|e| event_row(&s.base, e)).collect(),
            vec![],
        )
    } else {
        let (t, fr) = newest(|offset| {
            caps.frames(
                run,
                id,
                &Query {
                    offset,
                    ..q.clone()
                },
            )
        });
        (
            t,
            vec![],
            fr.iter().map(|x| frame_row(&s.base, x)).collect(),
        )
    };
    let taps = caps.taps_open(run, id);
    let closed: Vec<&String> = taps
        .iter()
        .filter(|(_, open)| !**open)
        .map(|(n, _)| n)
        .collect();
    let mut stream = format!(
        "{}/packets/stream?view={}",
        s.base,
        if f.events_view() { "events" } else { "frames" }
    );
    for (k, v) in [
        ("network", &f.network),
        ("node", &f.node),
        ("protocol", &f.protocol),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            stream.push_str(&format!("&{k}={}", url_escape(v)));
        }
    }
    render(&PacketsPage {
        c: Chrome::of(&s, "Packets", "packets"),
        networks: s.lab.networks.iter().map(|n| n.name.clone()).collect(),
        nodes: s.lab.nodes.iter().map(|n| n.name.clone()).collect(),
        protocols: vec![
            "HTTP", "DNS", "SMTP", "POP3", "IMAP", "TCP", "UDP", "ARP", "ICMP",
        ],
        f_network: f.network.clone().unwrap_or_default(),
        f_node: f.node.clone().unwrap_or_default(),
        f_protocol: f.protocol.clone().unwrap_or_default(),
        f_minutes: f.minutes.map(|m| m.to_string()).unwrap_or_default(),
        events_view: f.events_view(),
        total,
        events,
        frames,
        stream,
        taps: if closed.is_empty() {
            String::new()
        } else {
            format!(
                "Not capturing on {} yet (the network is being set up).",
                closed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    })
}

/// New frames or events as they are captured, matching the page's filters,
/// as server-sent events ready to show.
pub async fn stream(
    State(st): State<AppState>,
    s: Subject,
    Q(f): Q<Filter>,
) -> Result<Response, PanelError> {
    use axum::response::sse::Event as SseEvent;
    st.ctrl
        .ensure_capture_names(&s.run.name, &s.student.id)
        .await?;
    let q = f.query();
    let base = s.base.clone();
    let keep_net = move |n: &str| q.network.as_ref().is_none_or(|x| x == n);
    let node = f.node.clone().filter(|x| !x.is_empty());
    let on_node = move |a: &Option<String>, b: &Option<String>| {
        node.as_ref()
            .is_none_or(|n| a.as_ref() == Some(n) || b.as_ref() == Some(n))
    };
    let proto = f.protocol.clone().filter(|x| !x.is_empty());
    let of_proto = move |p: &str| proto.as_ref().is_none_or(|x| x.eq_ignore_ascii_case(p));
    let (run, id) = (&s.run.name, &s.student.id);
    Ok(if f.events_view() {
        crate::sse::stream(st.ctrl.captures.subscribe(run, id), move |e: NodeEvent| {
            (keep_net(&e.network)
                && on_node(&e.client_node, &e.server_node)
                && of_proto(e.event.kind.protocol()))
            .then(|| {
                SseEvent::default()
                    .event("event")
                    .json_data(event_row(&base, &e))
            })
        })
    } else {
        crate::sse::stream(
            st.ctrl.captures.subscribe_frames(run, id),
            move |fr: Frame| {
                (keep_net(&fr.network)
                    && on_node(&fr.src_node, &fr.dst_node)
                    && of_proto(&fr.frame.protocol))
                .then(|| {
                    SseEvent::default()
                        .event("frame")
                        .json_data(frame_row(&base, &fr))
                })
            },
        )
    })
}

fn known_network(s: &Subject, network: &str) -> Result<(), PanelError> {
    if s.lab.networks.iter().any(|n| n.name == network) {
        Ok(())
    } else {
        Err(PanelError::not_found(format!(
            "You have no network {network:?}."
        )))
    }
}

#[derive(askama::Template)]
#[template(path = "frame.html")]
struct FramePage {
    c: Chrome,
    row: FrameRow,
    layers: Vec<(String, Vec<(String, String)>)>,
    hex: Vec<String>,
    events: Vec<EventRow>,
    missing: bool,
}

/// The layers etherparse finds in a frame, as (layer, [(field, value)]).
fn layers(data: &[u8]) -> Vec<(String, Vec<(String, String)>)> {
    use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut out = Vec::new();
    let p = match SlicedPacket::from_ethernet(data) {
        Ok(p) => p,
        Err(e) => return vec![("Undecoded".into(), vec![("reason".into(), e.to_string())])],
    };
    if let Some(LinkSlice::Ethernet2(e)) = &p.link {
        out.push((
            "Ethernet II".into(),
            vec![
                ("source".into(), mac(e.source())),
                ("destination".into(), mac(e.destination())),
                ("type".into(), format!("{:?}", e.ether_type())),
            ],
        ));
    }
    match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            out.push((
                "IPv4".into(),
                vec![
                    ("source".into(), h.source_addr().to_string()),
                    ("destination".into(), h.destination_addr().to_string()),
                    ("time to live".into(), h.ttl().to_string()),
                    ("protocol".into(), format!("{:?}", h.protocol())),
                    ("total length".into(), h.total_len().to_string()),
                ],
            ));
        }
        Some(NetSlice::Ipv6(_)) => out.push(("IPv6".into(), vec![])),
        Some(NetSlice::Arp(a)) => out.push((
            "ARP".into(),
            vec![("operation".into(), format!("{:?}", a.operation()))],
        )),
        None => {}
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let mut flags = Vec::new();
            for (on, name) in [
                (t.syn(), "SYN"),
                (t.ack(), "ACK"),
                (t.psh(), "PSH"),
                (t.fin(), "FIN"),
                (t.rst(), "RST"),
            ] {
                if on {
                    flags.push(name);
                }
            }
            out.push((
                "TCP".into(),
                vec![
                    ("source port".into(), t.source_port().to_string()),
                    ("destination port".into(), t.destination_port().to_string()),
                    ("sequence number".into(), t.sequence_number().to_string()),
                    (
                        "acknowledgment".into(),
                        t.acknowledgment_number().to_string(),
                    ),
                    ("flags".into(), flags.join(" ")),
                    ("window".into(), t.window_size().to_string()),
                    ("payload bytes".into(), t.payload().len().to_string()),
                ],
            ));
        }
        Some(TransportSlice::Udp(u)) => out.push((
            "UDP".into(),
            vec![
                ("source port".into(), u.source_port().to_string()),
                ("destination port".into(), u.destination_port().to_string()),
                ("length".into(), u.length().to_string()),
            ],
        )),
        Some(TransportSlice::Icmpv4(_)) => out.push(("ICMP".into(), vec![])),
        _ => {}
    }
    out
}

/// 16 bytes a line: offset, hex, and the printable ones as text.
pub fn hex_dump(data: &[u8]) -> Vec<String> {
    data.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = c
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:04x}  {:<48} {text}", i * 16, hex.join(" "))
        })
        .collect()
}

pub async fn frame(
    State(st): State<AppState>,
    s: Subject,
    Path((network, number)): Path<(String, u64)>,
) -> Result<Response, PanelError> {
    known_network(&s, &network)?;
    let (run, id) = (&s.run.name, &s.student.id);
    let Some(fr) = st.ctrl.captures.frame(run, id, &network, number) else {
        return Err(PanelError::not_found(format!(
            "Frame {number} of {network} is not (or no longer) in your capture."
        )));
    };
    let bytes = {
        let (ctrl, run, id, fr) = (st.ctrl.clone(), run.clone(), id.clone(), fr.clone());
        tokio::task::spawn_blocking(move || ctrl.captures.frame_bytes(&run, &id, &fr))
            .await
            .map_err(PanelError::internal)?
            .map_err(PanelError::internal)?
    };
    let q = Query {
        network: Some(network.clone()),
        since: Some(fr.frame.time - 0.001),
        until: Some(fr.frame.time + 0.001),
        limit: 100,
        ..Default::default()
    };
    let (_, evs) = st.ctrl.captures.events(run, id, &q);
    let events = evs
        .iter()
        .filter(|e| e.event.frame == number)
        .map(|e| event_row(&s.base, e))
        .collect();
    let data = bytes.unwrap_or_default();
    render(&FramePage {
        c: Chrome::of(&s, format!("Frame {number}"), "packets"),
        row: frame_row(&s.base, &fr),
        layers: layers(&data),
        hex: hex_dump(&data[..data.len().min(4096)]),
        events,
        missing: data.is_empty(),
    })
}

/// One flow's events, oldest first; 404 when the student has no such flow.
fn flow_of(
    st: &AppState,
    s: &Subject,
    network: &str,
    flow: u64,
) -> Result<Vec<NodeEvent>, PanelError> {
    known_network(s, network)?;
    let q = Query {
        network: Some(network.to_string()),
        flow: Some(flow),
        limit: applab_controller::captures::KEEP_EVENTS,
        ..Default::default()
    };
    let (_, evs) = st.ctrl.captures.events(&s.run.name, &s.student.id, &q);
    if evs.is_empty() {
        return Err(PanelError::not_found(format!(
            "Connection {flow} of {network} is not (or no longer) in your capture."
        )));
    }
    Ok(evs)
}

#[derive(askama::Template)]
#[template(path = "ladder.html")]
struct LadderPage {
    c: Chrome,
    network: String,
    flow: u64,
    svg: String,
    shown: usize,
    total: usize,
    pcap: String,
    events: Vec<EventRow>,
}

pub async fn ladder(
    State(st): State<AppState>,
    s: Subject,
    Path((network, flow)): Path<(String, u64)>,
) -> Result<Response, PanelError> {
    let evs = flow_of(&st, &s, &network, flow)?;
    let t0 = evs[0].event.time;
    let t1 = evs[evs.len() - 1].event.time;
    render(&LadderPage {
        c: Chrome::of(&s, format!("Ladder of connection {flow}"), "packets"),
        pcap: format!(
            "{}/packets/pcap/{}?since={:.6}&until={:.6}",
            s.base,
            url_escape(&network),
            t0 - 0.5,
            t1 + 0.5
        ),
        network,
        flow,
        svg: ladder::svg(&evs, &[]),
        shown: evs.len().min(ladder::MAX_ROWS),
        total: evs.len(),
        events: evs
            .iter()
            .take(ladder::MAX_ROWS)
            .map(|e| event_row(&s.base, e))
            .collect(),
    })
}

pub async fn ladder_svg(
    State(st): State<AppState>,
    s: Subject,
    Path((network, flow)): Path<(String, u64)>,
) -> Result<Response, PanelError> {
    let evs = flow_of(&st, &s, &network, flow)?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        ladder::svg(&evs, &[]),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Range {
    since: Option<f64>,
    until: Option<f64>,
}

/// A network's frames as a pcap file (Wireshark and tshark open it).
pub async fn pcap(
    State(st): State<AppState>,
    s: Subject,
    Path(network): Path<String>,
    Q(r): Q<Range>,
) -> Result<Response, PanelError> {
    known_network(&s, &network)?;
    let secs =
        |t: Option<f64>, d: f64| std::time::Duration::from_secs_f64(t.unwrap_or(d).clamp(0.0, 4e9));
    let (from, to) = (secs(r.since, 0.0), secs(r.until, 4e9));
    let name = format!("{}-{}.pcap", s.student.id, network);
    let (ctrl, run, id) = (st.ctrl.clone(), s.run.name.clone(), s.student.id.clone());
    let body =
        tokio::task::spawn_blocking(move || ctrl.captures.pcap(&run, &id, &network, from, to))
            .await
            .map_err(PanelError::internal)?
            .map_err(PanelError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.tcpdump.pcap".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    name.replace(
                        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
                        "_"
                    )
                ),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_hex_dump() {
        assert_eq!(clock(86_400.0 * 3.0 + 3_723.045_6), "01:02:03.046");
        let d = hex_dump(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(d.len(), 2);
        assert!(d[0].starts_with("0000  47 45 54 20"));
        assert!(d[0].ends_with("GET / HTTP/1.1.."));
    }

    #[test]
    fn a_tcp_frame_has_its_layers() {
        let mut buf = Vec::new();
        etherparse::PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1])
            .ipv4([10, 0, 0, 5], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1000, 512)
            .syn()
            .write(&mut buf, b"")
            .unwrap();
        let l = layers(&buf);
        let names: Vec<&str> = l.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Ethernet II", "IPv4", "TCP"]);
        assert!(l[2].1.contains(&("flags".to_string(), "SYN".to_string())));
        assert!(l[1]
            .1
            .contains(&("source".to_string(), "10.0.0.5".to_string())));
    }
}
