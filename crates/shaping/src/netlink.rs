//! The kernel, driven through netlink alone (DESIGN.md decision 3): no
//! `tc`, `ip`, `iptables` or `nsenter` on the host or in the controller's
//! FROM-scratch image, so the same code shapes links in both.
//!
//! - `in_netns`: a container's network namespace, entered with `setns` on
//!   a thread of its own (the rest of the process stays where it is).
//! - `Route`: rtnetlink through netlink-packet-route: the links of a
//!   namespace, and the `tbf` qdisc that limits an interface's rate.
//! - `nft_replace_table` / `nft_delete_table`: one nf_tables table of this
//!   controller's, rebuilt whole in one atomic batch, whose rules send a
//!   shaped node's frames to the delay line's NFQUEUE. No crate writes
//!   nf_tables rules with the xtables NFQUEUE target, so these few
//!   messages are written here.

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols, Socket, SocketAddr};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// Run `f` on a new thread inside the network namespace of process `pid`:
/// sockets it opens belong to that namespace.
pub fn in_netns<T, F>(pid: u32, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let path = format!("/proc/{pid}/ns/net");
    std::thread::Builder::new()
        .name("applab-netns".into())
        .spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // SAFETY: setns on a descriptor we own; it changes only this
            // thread's namespace, and the thread ends with `f`.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "setns({path}): {} (CAP_SYS_ADMIN needed)",
                    std::io::Error::last_os_error()
                ));
            }
            f()
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
}

/// The kernel answers at once; a socket that waits longer has lost an
/// answer, and the caller gets an error instead of a hung reconcile.
fn receive_timeout(sock: &Socket) {
    let tv = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: a valid socket and a timeval of the size given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// One interface of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: String,
    /// A veth's peer (IFLA_LINK): its index in the other namespace.
    pub peer: Option<u32>,
}

/// A token bucket: `rate` in bits per second, `burst` and `limit` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    pub rate_bps: u64,
    pub burst: u32,
    pub limit: u32,
}

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// The kernel's scheduler clock ticks are 64 ns (PSCHED_SHIFT).
const PSCHED_SHIFT: u32 = 6;

impl Tbf {
    /// TCA_OPTIONS of a tbf qdisc: `struct tc_tbf_qopt` (rate and peak
    /// rate specs, limit, buffer in ticks, mtu), the 64-bit rate where the
    /// 32-bit bytes-per-second field is too small, and the burst in bytes
    /// (from which the kernel computes the buffer itself).
    pub fn options(&self) -> Vec<TcOption> {
        let bytes_per_s = self.rate_bps / 8;
        let rate32 = u32::try_from(bytes_per_s).unwrap_or(u32::MAX);
        let buffer_ns = (self.burst as u128 * 1_000_000_000) / bytes_per_s.max(1) as u128;
        let buffer_ticks = u32::try_from(buffer_ns >> PSCHED_SHIFT).unwrap_or(u32::MAX);
        let mut qopt = Vec::with_capacity(36);
        // struct tc_ratespec rate: cell_log, linklayer, overhead, cell_align, mpu, rate.
        qopt.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET]);
        qopt.extend_from_slice(&0u16.to_ne_bytes());
        qopt.extend_from_slice(&0i16.to_ne_bytes());
        qopt.extend_from_slice(&0u16.to_ne_bytes());
        qopt.extend_from_slice(&rate32.to_ne_bytes());
        // peakrate: none.
        qopt.extend_from_slice(&[0u8; 12]);
        qopt.extend_from_slice(&self.limit.to_ne_bytes());
        qopt.extend_from_slice(&buffer_ticks.to_ne_bytes());
        qopt.extend_from_slice(&0u32.to_ne_bytes());
        let mut out = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt))];
        if bytes_per_s > u32::MAX as u64 {
            out.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                bytes_per_s.to_ne_bytes().to_vec(),
            )));
        }
        out.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_BURST,
            self.burst.to_ne_bytes().to_vec(),
        )));
        out
    }
}

/// An rtnetlink socket in the namespace of the thread that opened it.
pub struct Route {
    sock: Socket,
    seq: u32,
}

impl Route {
    pub fn open() -> Result<Route, String> {
        let mut sock =
            Socket::new(protocols::NETLINK_ROUTE).map_err(|e| format!("rtnetlink socket: {e}"))?;
        sock.bind_auto()
            .map_err(|e| format!("rtnetlink bind: {e}"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| format!("rtnetlink connect: {e}"))?;
        receive_timeout(&sock);
        Ok(Route { sock, seq: 0 })
    }

    /// Send one request; the messages of its answer up to the ACK or DONE.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, String> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        m.finalize();
        let mut buf = vec![0; m.header.length as usize];
        m.serialize(&mut buf);
        self.sock
            .send(&buf, 0)
            .map_err(|e| format!("rtnetlink send: {e}"))?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self
                .sock
                .recv_from_full()
                .map_err(|e| format!("rtnetlink receive: {e}"))?;
            let mut at = 0;
            while at < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                    .map_err(|e| format!("rtnetlink answer: {e}"))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err("rtnetlink answer of length 0".into());
                }
                at += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(c) => Err(std::io::Error::from_raw_os_error(-c.get()).to_string()),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
            }
        }
    }

    /// Every interface of this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, String> {
        let answer = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .map(|l| {
                let mut link = Link {
                    index: l.header.index,
                    name: String::new(),
                    mac: String::new(),
                    peer: None,
                };
                for a in l.attributes {
                    match a {
                        LinkAttribute::IfName(n) => link.name = n,
                        LinkAttribute::Address(mac) => {
                            link.mac = mac
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<Vec<_>>()
                                .join(":")
                        }
                        LinkAttribute::Link(p) => link.peer = Some(p),
                        _ => {}
                    }
                }
                link
            })
            .collect())
    }

    fn root_qdisc(ifindex: u32) -> TcMessage {
        let mut m = TcMessage::default();
        m.header.index = ifindex as i32;
        m.header.parent = TcHandle::ROOT;
        m
    }

    /// Put (or replace) a tbf qdisc at the root of an interface.
    pub fn replace_tbf(&mut self, ifindex: u32, t: &Tbf) -> Result<(), String> {
        let mut m = Self::root_qdisc(ifindex);
        m.attributes.push(TcAttribute::Kind("tbf".into()));
        m.attributes.push(TcAttribute::Options(t.options()));
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
        .map_err(|e| format!("tbf on interface {ifindex}: {e}"))
    }

    /// Remove an interface's root qdisc (back to the default).
    pub fn delete_root(&mut self, ifindex: u32) -> Result<(), String> {
        self.request(
            RouteNetlinkMessage::DelQueueDiscipline(Self::root_qdisc(ifindex)),
            NLM_F_ACK,
        )
        .map(drop)
        .map_err(|e| format!("removing the qdisc of interface {ifindex}: {e}"))
    }

    /// The kind of an interface's root qdisc and its options as the kernel
    /// reports them (for tests and `status`).
    pub fn root_qdisc_kind(&mut self, ifindex: u32) -> Result<Option<String>, String> {
        let answer = self.request(
            RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answer.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q)
                if q.header.index == ifindex as i32 && q.header.parent == TcHandle::ROOT =>
            {
                q.attributes.into_iter().find_map(|a| match a {
                    TcAttribute::Kind(k) => Some(k),
                    _ => None,
                })
            }
            _ => None,
        }))
    }
}

/// One rule of the shaping table: frames arriving on bridge `bridge` (its
/// ifindex), optionally from `src`, to `dst`, not to `not_dst`, go to
/// NFQUEUE `queue` (bypassed, so traffic flows undelayed if the line is
/// down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRule {
    pub bridge: u32,
    pub src: Option<Ipv4Addr>,
    pub dst: Option<Ipv4Addr>,
    pub not_dst: Option<Ipv4Addr>,
    pub queue: u16,
}

// nf_tables netlink numbers (linux/netfilter/nf_tables.h, nfnetlink.h).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_IPV4: u8 = 2;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_IIF: u32 = 4;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFTA_TARGET_NAME: u16 = 1;
const NFTA_TARGET_REV: u16 = 2;
const NFTA_TARGET_INFO: u16 = 3;
/// `struct xt_NFQ_info_v3` flags.
const NFQ_FLAG_BYPASS: u16 = 1;
const NFT_REG_1: u32 = 1;
const NF_INET_PRE_ROUTING: u32 = 0;
/// Mangle's priority: before the bridge's own filtering, as the iptables
/// mangle PREROUTING rules it replaces.
const NF_IP_PRI_MANGLE: i32 = -150;
const NLA_F_NESTED: u16 = 0x8000;
const CHAIN: &str = "prerouting";

/// Netlink attributes written by hand (4-byte aligned TLVs).
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn raw(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize((self.0.len() + 3) & !3, 0);
        self
    }
    fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.raw(kind, &v)
    }
    /// nf_tables numbers are big-endian on the wire.
    fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.raw(kind, &v.to_be_bytes())
    }
    fn nest(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.raw(kind | NLA_F_NESTED, &inner.0)
    }
}

fn expr(name: &str, data: Attrs) -> Attrs {
    let mut e = Attrs::default();
    e.str(NFTA_EXPR_NAME, name).nest(NFTA_EXPR_DATA, data);
    e
}

fn cmp(op: u32, value: &[u8]) -> Attrs {
    let mut v = Attrs::default();
    v.raw(NFTA_DATA_VALUE, value);
    let mut d = Attrs::default();
    d.be32(NFTA_CMP_SREG, NFT_REG_1)
        .be32(NFTA_CMP_OP, op)
        .nest(NFTA_CMP_DATA, v);
    expr("cmp", d)
}

fn ip_field(offset: u32) -> Attrs {
    let mut d = Attrs::default();
    d.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
        .be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER)
        .be32(NFTA_PAYLOAD_OFFSET, offset)
        .be32(NFTA_PAYLOAD_LEN, 4);
    expr("payload", d)
}

impl QueueRule {
    /// The rule's expressions: `meta iif BRIDGE [ip saddr S] [ip daddr D]
    /// [ip daddr != G]` then the NFQUEUE target (queue Q, bypass).
    fn expressions(&self) -> Attrs {
        let mut list = Attrs::default();
        let mut meta = Attrs::default();
        meta.be32(NFTA_META_DREG, NFT_REG_1)
            .be32(NFTA_META_KEY, NFT_META_IIF);
        list.nest(NFTA_LIST_ELEM, expr("meta", meta));
        // The interface index is kept in host order in the register.
        list.nest(NFTA_LIST_ELEM, cmp(NFT_CMP_EQ, &self.bridge.to_ne_bytes()));
        for (offset, addr, op) in [
            (12, self.src, NFT_CMP_EQ),
            (16, self.dst, NFT_CMP_EQ),
            (16, self.not_dst, NFT_CMP_NEQ),
        ] {
            if let Some(a) = addr {
                list.nest(NFTA_LIST_ELEM, ip_field(offset));
                list.nest(NFTA_LIST_ELEM, cmp(op, &a.octets()));
            }
        }
        // The verdict: the NFQUEUE target, revision 3, through nf_tables'
        // xtables compatibility (as iptables-nft writes it), because the
        // native `queue` expression is not in every kernel (not in this
        // one: CONFIG_NFT_QUEUE is unset, NFT_COMPAT and the xt target are
        // there). Its info is `struct xt_NFQ_info_v3` in host order, padded
        // to 8 bytes (XT_ALIGN).
        let mut info = Vec::with_capacity(8);
        info.extend_from_slice(&self.queue.to_ne_bytes());
        info.extend_from_slice(&1u16.to_ne_bytes()); // queues_total
        info.extend_from_slice(&NFQ_FLAG_BYPASS.to_ne_bytes());
        info.extend_from_slice(&[0, 0]);
        let mut t = Attrs::default();
        t.str(NFTA_TARGET_NAME, "NFQUEUE")
            .be32(NFTA_TARGET_REV, 3)
            .raw(NFTA_TARGET_INFO, &info);
        list.nest(NFTA_LIST_ELEM, expr("target", t));
        list
    }
}

/// One nfnetlink message: header, `struct nfgenmsg`, attributes.
fn nfmsg(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, a: &Attrs) {
    let len = 16 + 4 + a.0.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(&a.0);
}

/// The batch that makes table `ip NAME` hold exactly `rules` (or, with
/// `None`, removes it): create-if-missing then delete, so one atomic
/// transaction works whether or not a previous one left the table.
/// Returns the bytes and the sequence numbers that want an ACK.
fn batch(table: &str, rules: Option<&[QueueRule]>, first_seq: u32) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut seq = first_seq;
    let mut acked = Vec::new();
    let mut next = |acked: &mut Vec<u32>| {
        seq += 1;
        acked.push(seq);
        seq
    };
    let nft = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
    nfmsg(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        0,
        first_seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &Attrs::default(),
    );
    let mut name = Attrs::default();
    name.str(NFTA_TABLE_NAME, table);
    let s = next(&mut acked);
    nfmsg(
        &mut out,
        nft(NFT_MSG_NEWTABLE),
        NLM_F_CREATE | NLM_F_ACK,
        s,
        NFPROTO_IPV4,
        0,
        &name,
    );
    let s = next(&mut acked);
    nfmsg(
        &mut out,
        nft(NFT_MSG_DELTABLE),
        NLM_F_ACK,
        s,
        NFPROTO_IPV4,
        0,
        &name,
    );
    if let Some(rules) = rules {
        let s = next(&mut acked);
        nfmsg(
            &mut out,
            nft(NFT_MSG_NEWTABLE),
            NLM_F_CREATE | NLM_F_ACK,
            s,
            NFPROTO_IPV4,
            0,
            &name,
        );
        let mut hook = Attrs::default();
        hook.be32(NFTA_HOOK_HOOKNUM, NF_INET_PRE_ROUTING)
            .be32(NFTA_HOOK_PRIORITY, NF_IP_PRI_MANGLE as u32);
        let mut chain = Attrs::default();
        chain
            .str(NFTA_CHAIN_TABLE, table)
            .str(NFTA_CHAIN_NAME, CHAIN)
            .nest(NFTA_CHAIN_HOOK, hook)
            .be32(NFTA_CHAIN_POLICY, 1) // NF_ACCEPT
            .str(NFTA_CHAIN_TYPE, "filter");
        let s = next(&mut acked);
        nfmsg(
            &mut out,
            nft(NFT_MSG_NEWCHAIN),
            NLM_F_CREATE | NLM_F_ACK,
            s,
            NFPROTO_IPV4,
            0,
            &chain,
        );
        for r in rules {
            let mut rule = Attrs::default();
            rule.str(NFTA_RULE_TABLE, table)
                .str(NFTA_RULE_CHAIN, CHAIN)
                .nest(NFTA_RULE_EXPRESSIONS, r.expressions());
            let s = next(&mut acked);
            nfmsg(
                &mut out,
                nft(NFT_MSG_NEWRULE),
                NLM_F_CREATE | NLM_F_ACK | 0x800, // NLM_F_APPEND
                s,
                NFPROTO_IPV4,
                0,
                &rule,
            );
        }
    }
    let end = seq + 1;
    nfmsg(
        &mut out,
        NFNL_MSG_BATCH_END,
        0,
        end,
        0,
        NFNL_SUBSYS_NFTABLES,
        &Attrs::default(),
    );
    (out, acked)
}

fn nft_transaction(table: &str, rules: Option<&[QueueRule]>) -> Result<(), String> {
    let mut sock =
        Socket::new(protocols::NETLINK_NETFILTER).map_err(|e| format!("nfnetlink socket: {e}"))?;
    sock.bind_auto()
        .map_err(|e| format!("nfnetlink bind: {e}"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| format!("nfnetlink connect: {e}"))?;
    receive_timeout(&sock);
    let first = std::process::id().wrapping_mul(7919) & 0x00ff_ffff;
    let (bytes, mut waiting) = batch(table, rules, first);
    sock.send(&bytes, 0)
        .map_err(|e| format!("nf_tables send: {e}"))?;
    let mut first_error = None;
    while !waiting.is_empty() {
        let (data, _) = sock
            .recv_from_full()
            .map_err(|e| format!("nf_tables receive: {e}"))?;
        let mut at = 0;
        while at + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap_or_default()) as usize;
            let kind = u16::from_ne_bytes([data[at + 4], data[at + 5]]);
            let seq = u32::from_ne_bytes(data[at + 8..at + 12].try_into().unwrap_or_default());
            if len < 16 || at + len > data.len() {
                return Err("nf_tables: a malformed answer".into());
            }
            // NLMSG_ERROR carries an errno (0: the ACK).
            if kind == 2 && len >= 20 {
                let errno =
                    i32::from_ne_bytes(data[at + 16..at + 20].try_into().unwrap_or_default());
                waiting.retain(|s| *s != seq);
                if errno != 0 && first_error.is_none() {
                    first_error = Some(std::io::Error::from_raw_os_error(-errno).to_string());
                    // A failed batch is aborted whole: no more ACKs come.
                    waiting.clear();
                }
            }
            at += (len + 3) & !3;
        }
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(format!(
            "nf_tables table ip {table}: {e} (CAP_NET_ADMIN needed)"
        )),
    }
}

/// Make `ip TABLE` hold exactly these rules, in one transaction.
pub fn nft_replace_table(table: &str, rules: &[QueueRule]) -> Result<(), String> {
    nft_transaction(table, Some(rules))
}

/// Remove `ip TABLE` if it exists.
pub fn nft_delete_table(table: &str) -> Result<(), String> {
    nft_transaction(table, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut a = Attrs::default();
        a.str(1, "ab");
        // len 7 (4 + "ab\0"), kind 1, value, one byte of padding.
        assert_eq!(a.0, [7, 0, 1, 0, b'a', b'b', 0, 0]);
    }

    #[test]
    fn a_batch_is_framed_begin_to_end_with_an_ack_per_command() {
        let rule = QueueRule {
            bridge: 7,
            src: Some(Ipv4Addr::new(10, 0, 0, 2)),
            dst: None,
            not_dst: Some(Ipv4Addr::new(10, 0, 0, 1)),
            queue: 20001,
        };
        let (bytes, acked) = batch("t", Some(&[rule]), 100);
        // new, delete, new table; chain; one rule.
        assert_eq!(acked, [101, 102, 103, 104, 105]);
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            kinds.push(u16::from_ne_bytes([bytes[at + 4], bytes[at + 5]]));
            assert_eq!(len % 4, 0, "every message is aligned");
            at += len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            kinds,
            [0x10, 0xa00, 0xa02, 0xa00, 0xa03, 0xa06, 0x11],
            "begin, table, delete, table, chain, rule, end"
        );
        // The NFQUEUE target with its queue number (host order, as xtables).
        assert!(bytes.windows(8).any(|w| w == b"NFQUEUE\0"));
        let q = 20001u16.to_ne_bytes();
        assert!(bytes.windows(2).any(|w| w == q));
    }

    #[test]
    fn tbf_options_carry_rate_burst_and_limit() {
        let t = Tbf {
            rate_bps: 8_000_000,
            burst: 15_000,
            limit: 64_000,
        };
        let o = t.options();
        assert_eq!(o.len(), 2, "parms and burst; no 64-bit rate needed");
        let TcOption::Other(parms) = &o[0] else {
            panic!("{o:?}")
        };
        let mut v = vec![0; netlink_packet_core::Nla::value_len(parms)];
        netlink_packet_core::Nla::emit_value(parms, &mut v);
        assert_eq!(v.len(), 36);
        assert_eq!(u32::from_ne_bytes(v[8..12].try_into().unwrap()), 1_000_000);
        assert_eq!(u32::from_ne_bytes(v[24..28].try_into().unwrap()), 64_000);
        // 15 kB at 1 MB/s is 15 ms: 234,375 ticks of 64 ns.
        assert_eq!(u32::from_ne_bytes(v[28..32].try_into().unwrap()), 234_375);
        let fast = Tbf {
            rate_bps: 100_000_000_000,
            ..t
        };
        assert_eq!(fast.options().len(), 3, "over 4 GB/s needs TCA_TBF_RATE64");
    }
}
