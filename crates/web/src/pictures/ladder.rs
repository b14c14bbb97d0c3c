//! A ladder (sequence) diagram of one connection or exchange, as the
//! lecture draws them: a column per end, an arrow per message, its time
//! beside it, from the student's real traffic.

use super::{clip, esc};
use applab_controller::captures::NodeEvent;
use applab_proto::event::EventKind;
use std::fmt::Write;

const ROW: i32 = 34;
const LEFT: i32 = 90;
const SPAN: i32 = 520;
const TOP: i32 = 56;
/// Arrows past this many are left out (the page says how many).
pub const MAX_ROWS: usize = 400;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dir {
    ToServer,
    ToClient,
    /// The connection itself (a close, a malformed stretch).
    Both,
}

pub fn direction(k: &EventKind) -> Dir {
    match k {
        EventKind::TcpOpen => Dir::ToServer,
        EventKind::TcpClose { .. } | EventKind::Malformed { .. } => Dir::Both,
        k if k.asks() => Dir::ToServer,
        _ => Dir::ToClient,
    }
}

/// `events` are one flow's, in order. `highlight`: event ids to mark (the
/// evidence a check pointed at).
pub fn svg(events: &[NodeEvent], highlight: &[u64]) -> String {
    let (client, server) = match events.first() {
        Some(e) => (
            e.client_node
                .clone()
                .unwrap_or_else(|| e.event.client.ip().to_string()),
            e.server_node
                .clone()
                .unwrap_or_else(|| e.event.server.ip().to_string()),
        ),
        None => ("client".into(), "server".into()),
    };
    let (cport, sport) = events
        .first()
        .map(|e| (e.event.client.port(), e.event.server.port()))
        .unwrap_or((0, 0));
    let shown = &events[..events.len().min(MAX_ROWS)];
    let width = LEFT + SPAN + 40;
    let height = TOP + (shown.len().max(1) as i32) * ROW + 30;
    let (x1, x2) = (LEFT, LEFT + SPAN);
    let t0 = events.first().map(|e| e.event.time).unwrap_or(0.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="ladder" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="ladder-title"><title id="ladder-title">Messages between {c} and {sv}</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>"#,
        c = esc(&client),
        sv = esc(&server),
    );
    let _ = write!(
        s,
        r#"<text class="end" x="{x1}" y="20" text-anchor="middle">{c}</text><text class="port" x="{x1}" y="36" text-anchor="middle">port {cport}</text><text class="end" x="{x2}" y="20" text-anchor="middle">{sv}</text><text class="port" x="{x2}" y="36" text-anchor="middle">port {sport}</text><line class="life" x1="{x1}" y1="{TOP}" x2="{x1}" y2="{bottom}"/><line class="life" x1="{x2}" y1="{TOP}" x2="{x2}" y2="{bottom}"/>"#,
        c = esc(&clip(&client, 24)),
        sv = esc(&clip(&server, 24)),
        bottom = height - 10,
    );
    for (i, e) in shown.iter().enumerate() {
        let y = TOP + 20 + i as i32 * ROW;
        let dt = (e.event.time - t0) * 1000.0;
        let label = esc(&clip(&e.message(), 70));
        let mark = if highlight.contains(&e.seq) {
            " evidence"
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<g class="msg{mark}" id="ev-{id}"><text class="time" x="{tx}" y="{ty}" text-anchor="end">+{dt:.1} ms</text>"#,
            id = e.seq,
            tx = LEFT - 12,
            ty = y + 4,
        );
        match direction(&e.event.kind) {
            Dir::Both => {
                let _ = write!(
                    s,
                    r#"<line class="event" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/><text x="{mx}" y="{ly}" text-anchor="middle">{label}</text>"#,
                    mx = (x1 + x2) / 2,
                    ly = y - 5,
                );
            }
            d => {
                // A slight slope: a message takes time to cross.
                let (a, b) = if d == Dir::ToServer {
                    (x1, x2)
                } else {
                    (x2, x1)
                };
                let _ = write!(
                    s,
                    r#"<line class="arrow {cls}" x1="{a}" y1="{y0}" x2="{b}" y2="{y1}" marker-end="url(#arrow)"/><text x="{mx}" y="{ly}" text-anchor="middle">{label}</text>"#,
                    cls = if d == Dir::ToServer { "out" } else { "in" },
                    y0 = y - 6,
                    y1 = y + 6,
                    mx = (x1 + x2) / 2,
                    ly = y - 8,
                );
            }
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use applab_proto::event::Event;

    fn ev(id: u64, t: f64, kind: EventKind) -> NodeEvent {
        NodeEvent {
            seq: id,
            network: "net".into(),
            client_node: Some("ws".into()),
            server_node: Some("origin".into()),
            event: Event {
                time: t,
                flow: 1,
                frame: id,
                client: "10.0.0.5:40000".parse().unwrap(),
                server: "10.0.0.2:80".parse().unwrap(),
                kind,
            },
        }
    }

    #[test]
    fn a_request_goes_right_and_its_response_comes_back() {
        let events = vec![
            ev(1, 10.0, EventKind::TcpOpen),
            ev(
                2,
                10.001,
                EventKind::HttpRequest {
                    method: "GET".into(),
                    target: "/<b>".into(),
                    version: "HTTP/1.1".into(),
                    host: None,
                    headers: vec![],
                    body_bytes: 0,
                    nth_on_connection: 1,
                },
            ),
            ev(
                3,
                10.0025,
                EventKind::HttpResponse {
                    status: 200,
                    reason: "OK".into(),
                    version: "HTTP/1.1".into(),
                    headers: vec![],
                    body_bytes: 5,
                    request_method: None,
                    request_target: None,
                    nth_on_connection: 1,
                },
            ),
            ev(4, 10.003, EventKind::TcpClose { reset: false }),
        ];
        let s = svg(&events, &[3]);
        assert!(s.contains(">ws<") && s.contains(">origin<"));
        assert!(s.contains("GET /&lt;b&gt; HTTP/1.1"), "{s}");
        assert!(s.contains("+1.0 ms") && s.contains("+2.5 ms"));
        assert!(s.contains(r#"class="arrow out" x1="90""#));
        assert!(s.contains(r#"class="arrow in" x1="610""#));
        assert!(s.contains(r#"class="msg evidence" id="ev-3""#));
        assert_eq!(direction(&events[3].event.kind), Dir::Both);
    }
}
