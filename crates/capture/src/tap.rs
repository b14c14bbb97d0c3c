//! A tap: an AF_PACKET socket on one network interface (a student's
//! bridge), or on all of them with a filter (`Tap::open_all`, the host
//! tap the `hub` shares between every student network, as `tcpdump -i
//! any` reads all interfaces: one ring whatever the number of networks).
//!
//! Opened from the host's network namespace on the bridge of a student
//! network, it receives every frame that crosses the bridge once: frames
//! forwarded between the bridge's ports reach the bridge device only while
//! it is promiscuous, so the tap asks for that (a membership, undone by the
//! kernel when the socket closes). Each frame comes with the kernel's
//! receive timestamp and its length on the wire, even when longer than the
//! buffer.
//!
//! Frames are read from a TPACKET_V3 ring shared with the kernel (as
//! libpcap and so tcpdump do): the kernel fills blocks of frames, we walk a
//! block and hand it back, with no system call per frame and one wake-up per
//! block. A block is handed over when full or after `BLOCK_TIMEOUT_MS`, which
//! bounds how late a quiet network's frame is seen. Where the ring cannot be
//! set up, frames are read one `recvmsg` at a time (MSG_TRUNC gives the
//! length on the wire).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

// Linux ABI values (include/uapi/linux/if_packet.h, asm-generic/socket.h),
// spelled out because not every libc build exports them.
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_STATISTICS: libc::c_int = 6;
const SO_TIMESTAMPNS: libc::c_int = 35;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;

/// Ring geometry: 16 blocks of 512 KiB (8 MiB, the socket buffer we ask for
/// otherwise).
const BLOCK_SIZE: u32 = 512 << 10;
const BLOCK_NR: u32 = 16;
const FRAME_SIZE: u32 = 2048;
/// A block goes to us at the latest this long after its first frame.
const BLOCK_TIMEOUT_MS: u32 = 8;

#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

/// The mapped ring and where we are in it.
struct Ring {
    base: *mut u8,
    len: usize,
    block: u32,
    /// In the current block: packets left, and the offset of the next one.
    left: u32,
    offset: usize,
}

// SAFETY: the mapping is owned by the Tap and only touched through &mut self.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

pub struct Tap {
    fd: OwnedFd,
    pub ifname: String,
    ring: Option<Ring>,
    timeout: Duration,
}

/// One frame as received.
pub struct Received {
    /// The interface it was seen on.
    pub ifindex: i32,
    /// Kernel timestamp, since the Unix epoch.
    pub time: Duration,
    /// Bytes placed in the buffer.
    pub captured: usize,
    /// Length on the wire.
    pub wire_len: usize,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Tap {
    /// Open a promiscuous tap on `ifname`; reads give up after `timeout` so
    /// a capture thread can notice it should stop.
    pub fn open(ifname: &str, timeout: Duration) -> io::Result<Tap> {
        let ifindex = index_of(ifname)?;
        let tap = Tap::socket(ifindex as i32, ifname, timeout)?;
        tap.add_promisc(ifindex as i32)?;
        Ok(tap)
    }

    /// One tap for every interface of this namespace, passing nothing
    /// until `set_interfaces` says which.
    pub fn open_all(timeout: Duration) -> io::Result<Tap> {
        let tap = Tap::socket(0, "any", timeout)?;
        tap.set_interfaces(&[])?;
        Ok(tap)
    }

    fn socket(ifindex: i32, ifname: &str, timeout: Duration) -> io::Result<Tap> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as libc::c_int,
            )
        })?;
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if ifindex == 0 {
            // Nothing passes before the filter names the interfaces.
            attach_filter(&fd, &[])?;
        }
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        check(unsafe {
            libc::bind(
                raw,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        setsockopt(&fd, libc::SOL_SOCKET, SO_TIMESTAMPNS, &1 as &libc::c_int)?;
        // Room for bursts while the writer is busy (the kernel doubles it).
        let _ = setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &(8 << 20) as &libc::c_int,
        );
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as _,
            tv_usec: timeout.subsec_micros() as _,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        let ring = match map_ring(&fd) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::debug!(ifname, "no TPACKET_V3 ring, reading frame by frame: {e}");
                None
            }
        };
        Ok(Tap {
            fd,
            ifname: ifname.to_string(),
            ring,
            timeout,
        })
    }

    fn membership(&self, ifindex: i32, add: bool) -> io::Result<()> {
        let mreq = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        let op = if add {
            PACKET_ADD_MEMBERSHIP
        } else {
            PACKET_DROP_MEMBERSHIP
        };
        setsockopt(&self.fd, SOL_PACKET, op, &mreq)
    }

    /// Make an interface promiscuous while this socket lives (or until
    /// `drop_promisc`): forwarded frames reach a bridge device only then.
    pub fn add_promisc(&self, ifindex: i32) -> io::Result<()> {
        self.membership(ifindex, true)
    }

    pub fn drop_promisc(&self, ifindex: i32) -> io::Result<()> {
        self.membership(ifindex, false)
    }

    /// On a tap of every interface: pass the frames of exactly these
    /// (a classic BPF filter, replaced atomically). Past what one filter
    /// can hold, everything passes and the reader picks.
    pub fn set_interfaces(&self, ifindexes: &[i32]) -> io::Result<()> {
        attach_filter(&self.fd, ifindexes)
    }

    /// Receive one frame into `buf`; `Ok(None)` when the timeout passed.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        if self.ring.is_some() {
            return self.recv_ring(buf);
        }
        self.recv_socket(buf)
    }

    fn recv_ring(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let fd = self.fd.as_raw_fd();
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let r = self.ring.as_mut().expect("ring mode");
        loop {
            let block = unsafe { r.base.add(r.block as usize * BLOCK_SIZE as usize) };
            // tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1
            // { block_status, num_pkts, offset_to_first_pkt, ... }.
            let status_ptr = unsafe { block.add(8) as *mut u32 };
            if r.left == 0 {
                if r.offset != 0 {
                    // Done with this block: give it back, move on.
                    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
                    unsafe { std::ptr::write_volatile(status_ptr, TP_STATUS_KERNEL) };
                    r.block = (r.block + 1) % BLOCK_NR;
                    r.offset = 0;
                    continue;
                }
                let status = unsafe { std::ptr::read_volatile(status_ptr) };
                if status & TP_STATUS_USER == 0 {
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLIN | libc::POLLERR,
                        revents: 0,
                    };
                    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
                    if n < 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() == io::ErrorKind::Interrupted {
                            return Ok(None);
                        }
                        return Err(e);
                    }
                    if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                        // The interface went away.
                        return Err(io::Error::new(io::ErrorKind::BrokenPipe, "interface gone"));
                    }
                    let status = unsafe { std::ptr::read_volatile(status_ptr) };
                    if status & TP_STATUS_USER == 0 {
                        return Ok(None);
                    }
                }
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                r.left = unsafe { std::ptr::read_volatile(block.add(12) as *const u32) };
                r.offset = unsafe { std::ptr::read_volatile(block.add(16) as *const u32) } as usize;
                if r.left == 0 {
                    // An empty block (timed out with nothing): hand it back.
                    r.offset = 1;
                    continue;
                }
            }
            // tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, net.
            let h = unsafe { block.add(r.offset) };
            let rd = |o: usize| unsafe { std::ptr::read_unaligned(h.add(o) as *const u32) };
            let next = rd(0) as usize;
            let (sec, nsec, snaplen, len) = (rd(4), rd(8), rd(12) as usize, rd(16) as usize);
            let mac = unsafe { std::ptr::read_unaligned(h.add(24) as *const u16) } as usize;
            let n = snaplen.min(buf.len());
            // Never read past the block, whatever the header says.
            if r.offset + mac + n > BLOCK_SIZE as usize {
                r.left = 0;
                continue;
            }
            unsafe { std::ptr::copy_nonoverlapping(h.add(mac), buf.as_mut_ptr(), n) };
            // The sockaddr_ll after the 48-byte header: sll_ifindex at 4.
            let ifindex = unsafe { std::ptr::read_unaligned(h.add(48 + 4) as *const i32) };
            r.left -= 1;
            if r.left > 0 {
                r.offset += next;
            }
            return Ok(Some(Received {
                ifindex,
                time: Duration::new(sec as u64, nsec),
                captured: n,
                wire_len: len,
            }));
        }
    }

    fn recv_socket(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // Room for one timespec control message.
        let mut control = [0u64; 8];
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as _;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut time = None;
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    time = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let time = time.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        });
        let wire_len = n as usize;
        Ok(Some(Received {
            ifindex: from.sll_ifindex,
            time,
            captured: wire_len.min(buf.len()),
            wire_len,
        }))
    }

    /// Frames received and dropped by the kernel since the last call.
    pub fn stats(&self) -> io::Result<(u64, u64)> {
        let mut s = TpacketStats::default();
        let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                &mut s as *mut _ as *mut libc::c_void,
                &mut len,
            )
        })?;
        Ok((s.tp_packets as u64, s.tp_drops as u64))
    }
}

/// The index of an interface of this namespace.
pub fn index_of(ifname: &str) -> io::Result<u32> {
    let cname = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
    match unsafe { libc::if_nametoindex(cname.as_ptr()) } {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {ifname}"),
        )),
        i => Ok(i),
    }
}

/// The classic BPF program that passes frames of these interfaces whole:
/// `ld ifindex; (jeq #i, ret all)*; ret 0`. Two instructions each, within
/// the kernel's 4,096; past that, everything passes.
fn filter_program(ifindexes: &[i32]) -> Vec<libc::sock_filter> {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    // SKF_AD_OFF + SKF_AD_IFINDEX: the device's index, not packet bytes.
    const IFINDEX: u32 = 0xfffff000 + 8;
    const ALL: u32 = 0x40000;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    if ifindexes.len() > 2000 {
        return vec![op(BPF_RET_K, 0, 0, ALL)];
    }
    let mut p = vec![op(BPF_LD_W_ABS, 0, 0, IFINDEX)];
    for &i in ifindexes {
        p.push(op(BPF_JEQ_K, 0, 1, i as u32));
        p.push(op(BPF_RET_K, 0, 0, ALL));
    }
    p.push(op(BPF_RET_K, 0, 0, 0));
    p
}

fn attach_filter(fd: &OwnedFd, ifindexes: &[i32]) -> io::Result<()> {
    let mut prog = filter_program(ifindexes);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Set up and map a TPACKET_V3 receive ring on the socket.
fn map_ring(fd: &OwnedFd) -> io::Result<Ring> {
    setsockopt(fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V3)?;
    let req = TpacketReq3 {
        tp_block_size: BLOCK_SIZE,
        tp_block_nr: BLOCK_NR,
        tp_frame_size: FRAME_SIZE,
        tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
        tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req)?;
    let len = (BLOCK_SIZE * BLOCK_NR) as usize;
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Ring {
        base: base as *mut u8,
        len,
        block: 0,
        left: 0,
        offset: 0,
    })
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_frames_arrive_with_times() {
        // Needs CAP_NET_RAW (the tests run as root, as the controller does).
        let mut tap = Tap::open("lo", Duration::from_millis(200)).expect("AF_PACKET on lo");
        assert!(tap.ring.is_some(), "the TPACKET_V3 ring is set up");
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sock.local_addr().unwrap();
        sock.send_to(b"applab-tap-probe", to).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut found = false;
        for _ in 0..50 {
            if let Some(r) = tap.recv(&mut buf).unwrap() {
                assert!(r.time > Duration::from_secs(1_600_000_000));
                if buf[..r.captured]
                    .windows(16)
                    .any(|w| w == b"applab-tap-probe")
                {
                    found = true;
                    break;
                }
            }
        }
        assert!(found, "the probe datagram was not seen on lo");
        let (packets, _drops) = tap.stats().unwrap();
        assert!(packets > 0);
    }

    /// A datagram to ourselves on loopback; whether `tap` saw it, and where.
    fn probe(tap: &mut Tap, word: &[u8]) -> Option<i32> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(word, sock.local_addr().unwrap()).unwrap();
        let mut buf = vec![0u8; 2048];
        for _ in 0..20 {
            if let Some(r) = tap.recv(&mut buf).unwrap() {
                if buf[..r.captured].windows(word.len()).any(|w| w == word) {
                    return Some(r.ifindex);
                }
            }
        }
        None
    }

    #[test]
    fn a_tap_of_every_interface_passes_the_ones_it_is_told() {
        let mut tap = Tap::open_all(Duration::from_millis(50)).expect("AF_PACKET on all");
        assert!(tap.ring.is_some());
        assert_eq!(
            probe(&mut tap, b"applab-any-closed"),
            None,
            "nothing passes at first"
        );
        let lo = index_of("lo").unwrap() as i32;
        tap.set_interfaces(&[9999, lo]).unwrap();
        assert_eq!(probe(&mut tap, b"applab-any-open"), Some(lo));
        tap.set_interfaces(&[9999]).unwrap();
        assert_eq!(probe(&mut tap, b"applab-any-again"), None);
    }

    #[test]
    fn the_filter_is_two_instructions_an_interface_and_passes_all_past_its_limit() {
        assert_eq!(filter_program(&[]).len(), 2);
        assert_eq!(filter_program(&[3, 4, 5]).len(), 8);
        assert_eq!(filter_program(&vec![1; 3000]).len(), 1);
    }
}
