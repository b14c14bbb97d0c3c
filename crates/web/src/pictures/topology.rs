//! A student's topology: one horizontal line per network, one box per node
//! above them, a drop from each node to every network it joins, labelled
//! with its address, its aliases and the link's shaping.

use super::{clip, esc};
use applab_controller::NodeState;
use std::fmt::Write;

pub struct Net {
    pub name: String,
    pub subnet: Option<String>,
}

pub struct Attach {
    pub network: String,
    pub address: Option<String>,
    pub aliases: Vec<String>,
    /// "delay 50 ms · 10 Mbit/s · loss 1 %", empty when unshaped.
    pub shaping: String,
}

pub struct Node {
    pub name: String,
    pub role: String,
    pub state: NodeState,
    pub healthy: bool,
    pub stopped_on_purpose: bool,
    pub attach: Vec<Attach>,
}

const COL: i32 = 190;
const BOX_W: i32 = 160;
const BOX_H: i32 = 58;
const TOP: i32 = 20;
const NET_GAP: i32 = 90;

/// The words and symbol for a node's state: colour is never the only signal.
pub fn state_label(n: &Node) -> (&'static str, String) {
    if n.state == NodeState::Running && n.healthy {
        ("ok", "✓ running".into())
    } else if n.state == NodeState::Running {
        ("warn", "… starting".into())
    } else if n.stopped_on_purpose {
        ("off", "■ stopped".into())
    } else {
        ("bad", format!("✗ {}", n.state))
    }
}

pub fn svg(nets: &[Net], nodes: &[Node]) -> String {
    let width = (nodes.len().max(1) as i32) * COL + 40;
    let first_net = TOP + BOX_H + 70;
    let height = first_net + (nets.len().max(1) as i32 - 1) * NET_GAP + 50;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="topology" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="topo-title"><title id="topo-title">Your nodes and networks</title>"#
    );
    let net_y = |name: &str| {
        nets.iter()
            .position(|n| n.name == name)
            .map(|i| first_net + i as i32 * NET_GAP)
    };
    for (i, n) in nets.iter().enumerate() {
        let y = first_net + i as i32 * NET_GAP;
        let label = match &n.subnet {
            Some(sub) => format!("{} {}", n.name, sub),
            None => n.name.clone(),
        };
        let _ = write!(
            s,
            r#"<g class="net"><line x1="10" y1="{y}" x2="{x2}" y2="{y}"/><text x="14" y="{ty}">network {label}</text></g>"#,
            x2 = width - 10,
            ty = y + 18,
            label = esc(&label),
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        let x = 20 + i as i32 * COL;
        let cx = x + BOX_W / 2;
        // Drops first, so the boxes are drawn over them.
        for a in &n.attach {
            let Some(y) = net_y(&a.network) else { continue };
            let _ = write!(
                s,
                r#"<line class="drop" x1="{cx}" y1="{y0}" x2="{cx}" y2="{y}"/><circle class="port" cx="{cx}" cy="{y}" r="4"/>"#,
                y0 = TOP + BOX_H,
            );
            let mut lines = Vec::new();
            if let Some(addr) = &a.address {
                lines.push(addr.clone());
            }
            if !a.aliases.is_empty() {
                lines.push(format!("aka {}", a.aliases.join(", ")));
            }
            if !a.shaping.is_empty() {
                lines.push(a.shaping.clone());
            }
            for (j, l) in lines.iter().enumerate() {
                let _ = write!(
                    s,
                    r#"<text class="attach{cls}" x="{tx}" y="{ty}">{t}</text>"#,
                    cls = if l == &a.shaping { " shaped" } else { "" },
                    tx = cx + 6,
                    ty = y - 40 + (j as i32) * 13,
                    t = esc(&clip(l, 30)),
                );
            }
        }
        let (cls, label) = state_label(n);
        let _ = write!(
            s,
            r#"<g class="node {cls}"><rect x="{x}" y="{TOP}" width="{BOX_W}" height="{BOX_H}" rx="6"/><text class="name" x="{tx}" y="{y1}">{name}</text><text x="{tx}" y="{y2}">{role}</text><text class="state" x="{tx}" y="{y3}">{state}</text></g>"#,
            tx = x + 10,
            y1 = TOP + 18,
            y2 = TOP + 34,
            y3 = TOP + 50,
            name = esc(&clip(&n.name, 20)),
            role = esc(&n.role),
            state = esc(&label),
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_network_address_and_shaping_is_drawn() {
        let nets = vec![Net {
            name: "access".into(),
            subnet: Some("10.213.0.0/26".into()),
        }];
        let nodes = vec![
            Node {
                name: "ws".into(),
                role: "workstation".into(),
                state: NodeState::Running,
                healthy: true,
                stopped_on_purpose: false,
                attach: vec![Attach {
                    network: "access".into(),
                    address: Some("10.213.0.5".into()),
                    aliases: vec![],
                    shaping: "delay 50 ms".into(),
                }],
            },
            Node {
                name: "mail-b<x>".into(),
                role: "mail".into(),
                state: NodeState::Exited,
                healthy: false,
                stopped_on_purpose: true,
                attach: vec![Attach {
                    network: "access".into(),
                    address: None,
                    aliases: vec!["mail.b.lab".into()],
                    shaping: String::new(),
                }],
            },
        ];
        let s = svg(&nets, &nodes);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        for want in [
            "network access 10.213.0.0/26",
            ">ws<",
            "10.213.0.5",
            "delay 50 ms",
            "aka mail.b.lab",
            "mail-b&lt;x&gt;",
            "■ stopped",
            "✓ running",
        ] {
            assert!(s.contains(want), "{want} missing from {s}");
        }
        assert!(!s.contains("<x>"));
    }
}
