//! A tap: an AF_PACKET socket on one network interface (a student's bridge).
//!
//! Opened from the host's network namespace on the bridge of a student
//! network, it receives every frame that crosses the bridge once: frames
//! forwarded between the bridge's ports reach the bridge device only while
//! it is promiscuous, so the tap asks for that (a membership, undone by the
//! kernel when the socket closes). Each frame comes with the kernel's
//! receive timestamp and its length on the wire, even when longer than the
//! buffer (MSG_TRUNC).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

// Linux ABI values (include/uapi/linux/if_packet.h, asm-generic/socket.h),
// spelled out because not every libc build exports them.
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_STATISTICS: libc::c_int = 6;
const SO_TIMESTAMPNS: libc::c_int = 35;

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
}

/// One frame as received.
pub struct Received {
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
        let cname = std::ffi::CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {ifname}"),
            ));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as libc::c_int,
            )
        })?;
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        check(unsafe {
            libc::bind(
                raw,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        let mreq = PacketMreq {
            mr_ifindex: ifindex as i32,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(&fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)?;
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
        Ok(Tap {
            fd,
            ifname: ifname.to_string(),
        })
    }

    /// Receive one frame into `buf`; `Ok(None)` when the timeout passed.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // Room for one timespec control message.
        let mut control = [0u64; 8];
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
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
        let tap = Tap::open("lo", Duration::from_millis(200)).expect("AF_PACKET on lo");
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
}
