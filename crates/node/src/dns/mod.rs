//! The dns role: an authoritative name server for the lab's zones.
//!
//! UDP and TCP on one port (RFC 1035 §4.2). Over UDP an answer larger than
//! the client can take (512 bytes, or its EDNS buffer size) is cut down to
//! the header and question with TC set, and the client asks again over TCP,
//! where each message is prefixed by its two-byte length. The answers
//! themselves come from [`zone`]; [`client`] is the stub resolver the mail
//! queue and the `lookup` tool use.

pub mod client;
pub mod zone;

use applab_proto::dns_tcp::{frame, Deframer};
use hickory_proto::op::{Edns, Message};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use zone::{Zone, Zones};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (UDP and TCP).
    #[arg(long, default_value = "0.0.0.0:53")]
    pub listen: String,
    /// An RFC 1035 master file to serve (repeat for more zones).
    #[arg(long)]
    pub zone: Vec<PathBuf>,
    /// A folder whose `*.zone` files are all served.
    #[arg(long)]
    pub zones: Option<PathBuf>,
}

/// Close a TCP connection idle this long (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
const MAX_TCP_CONNS: usize = 128;
/// What a UDP answer may use when the client states no EDNS size.
const CLASSIC_UDP: usize = 512;
/// Our EDNS buffer size (the DNS flag day 2020 value).
const OUR_UDP: u16 = 1232;

pub fn load(args: &Args) -> anyhow::Result<Zones> {
    let mut files = args.zone.clone();
    if let Some(dir) = &args.zones {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zone"))
            .collect();
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        anyhow::bail!("no zones: give --zone FILE or --zones DIR");
    }
    let mut zones = Vec::new();
    for f in &files {
        let z = Zone::load(f).map_err(anyhow::Error::msg)?;
        tracing::info!(zone = %z.origin, records = z.record_count(), file = %f.display(), "zone loaded");
        zones.push(z);
    }
    Ok(Zones(zones))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let zones = Arc::new(load(&args)?);
    let udp = UdpSocket::bind(&args.listen).await?;
    let tcp = TcpListener::bind(&args.listen).await?;
    tracing::info!(addr = %args.listen, "dns listening on UDP and TCP");
    let z = zones.clone();
    let udp_task = tokio::spawn(async move { serve_udp(udp, z).await });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNS));
    let tcp_task = async move {
        loop {
            let (sock, peer) = tcp.accept().await?;
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue; // too many open: dropped, the client retries
            };
            let zones = zones.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_tcp(sock, &zones).await {
                    tracing::debug!(%peer, "dns tcp: {e}");
                }
                drop(permit);
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        r = udp_task => r?,
        r = tcp_task => r,
    }
}

/// The answer to one wire message, ready to send; `None` when the input is
/// not even a DNS header (nothing to answer to).
fn respond(zones: &Zones, wire: &[u8], udp: bool, peer: std::net::SocketAddr) -> Option<Vec<u8>> {
    let req = match Message::from_vec(wire) {
        Ok(m) => m,
        Err(e) => {
            if wire.len() < 12 {
                return None;
            }
            tracing::info!(%peer, "dns: malformed query: {e}");
            // FORMERR keeps the client's id so it stops waiting.
            let id = u16::from_be_bytes([wire[0], wire[1]]);
            let mut m = Message::error_msg(
                id,
                hickory_proto::op::OpCode::Query,
                hickory_proto::op::ResponseCode::FormErr,
            );
            m.metadata.recursion_desired = wire[2] & 1 == 1;
            return m.to_vec().ok();
        }
    };
    if req.metadata.message_type != hickory_proto::op::MessageType::Query {
        return None; // a response sent to us: never answer it (no loops)
    }
    let mut resp = zones.answer(&req);
    let mut limit = CLASSIC_UDP;
    if let Some(e) = &req.edns {
        limit = (e.max_payload() as usize).max(CLASSIC_UDP);
        let mut ours = Edns::new();
        ours.set_max_payload(OUR_UDP);
        resp.set_edns(ours);
    }
    let mut bytes = resp.to_vec().ok()?;
    let mut truncated = false;
    if udp && bytes.len() > limit {
        // The client asks again over TCP (RFC 7766 §5).
        bytes = resp.truncate().to_vec().ok()?;
        truncated = true;
    }
    if let Some(q) = req.queries.first() {
        tracing::info!(
            %peer,
            transport = if udp { "udp" } else { "tcp" },
            name = %q.name,
            qtype = %q.query_type,
            rcode = %client::rcode_name(resp.metadata.response_code),
            answers = resp.answers.len(),
            truncated,
            "dns query"
        );
    }
    Some(bytes)
}

async fn serve_udp(sock: UdpSocket, zones: Arc<Zones>) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors from earlier replies surface here; keep serving.
            Err(e) => {
                tracing::debug!("dns udp recv: {e}");
                continue;
            }
        };
        if let Some(out) = respond(&zones, &buf[..n], true, peer) {
            let _ = sock.send_to(&out, peer).await;
        }
    }
}

async fn serve_tcp(mut sock: TcpStream, zones: &Zones) -> anyhow::Result<()> {
    let peer = sock.peer_addr()?;
    let mut frames = Deframer::default();
    loop {
        let Some(msg) = frames.next_message() else {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(TCP_IDLE, sock.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => frames.feed(&chunk[..n]),
                _ => return Ok(()), // idle, closed or reset: done
            }
            continue;
        };
        let Some(framed) = respond(zones, &msg, false, peer).and_then(|out| frame(&out)) else {
            return Ok(());
        };
        sock.write_all(&framed).await?;
    }
}
