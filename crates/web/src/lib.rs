//! The controller's HTTP face: the instructor's JSON API, the panel's
//! pages and the console WebSocket.
//!
//! The CLI's instructor verbs are clients of the API (bearer token);
//! people use the panel (sessions, `panel/`). The listener refuses
//! connections that arrive on a student bridge's gateway address, so a
//! workstation can never reach the API or the panel through its own network.

mod api;
pub mod panel;
pub mod pictures;
mod sse;
mod tls;

use anyhow::Result;
use applab_controller::Controller;
use ipnet::Ipv4Net;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

pub use api::{router, AppState};

/// A TCP listener that drops connections addressed to a denied network
/// (the student bridges' gateways all fall in the lab address pool). The
/// socket filter of [`refuse_networks`] already stops them in the kernel;
/// this is the second lock, for IPv4-mapped IPv6 and the like.
pub struct GuardedListener {
    inner: TcpListener,
    deny: Vec<Ipv4Net>,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, deny: Vec<Ipv4Net>) -> GuardedListener {
        GuardedListener { inner, deny }
    }

    fn denied(&self, addr: &SocketAddr) -> bool {
        let v4 = match addr {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped(),
        };
        v4.is_some_and(|ip| self.deny.iter().any(|n| n.contains(&ip)))
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((sock, peer)) => {
                    match sock.local_addr() {
                        Ok(local) if !self.denied(&local) && !self.denied(&peer) => {
                            return (sock, peer)
                        }
                        Ok(local) => {
                            tracing::warn!(%peer, %local, "refused: connection from a lab network");
                        }
                        Err(_) => {}
                    }
                    drop(sock);
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Drop, in the kernel, every packet to this socket that comes from a denied
/// network or is addressed to one: a classic BPF socket filter on the
/// listener. A workstation's SYN, whether sent to its bridge's gateway or
/// routed through it to any other host address, is never answered (it looks
/// like a firewall's DROP), with no host firewall tool involved.
pub fn refuse_networks(listener: &TcpListener, deny: &[Ipv4Net]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const SKF_NET_OFF: i32 = -0x100000;
    // (offset in the IPv4 header, network): 12 is the source, 16 the destination.
    let checks: Vec<(i32, &Ipv4Net)> = deny.iter().flat_map(|n| [(12, n), (16, n)]).collect();
    let n = checks.len();
    let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut prog: Vec<libc::sock_filter> = Vec::new();
    for (i, (off, net)) in checks.iter().enumerate() {
        prog.push(ins(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            0,
            0,
            (SKF_NET_OFF + off) as u32,
        ));
        prog.push(ins(
            libc::BPF_ALU | libc::BPF_AND | libc::BPF_K,
            0,
            0,
            u32::from(net.netmask()),
        ));
        // Equal: jump to the final "drop"; else fall through to the next check.
        let to_drop = u8::try_from(3 * n - 3 * i - 2).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many denied networks")
        })?;
        prog.push(ins(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            to_drop,
            0,
            u32::from(net.network()),
        ));
    }
    prog.push(ins(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX));
    prog.push(ins(libc::BPF_RET | libc::BPF_K, 0, 0, 0));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: fprog points into `prog`, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The client's address, for the login rate limit (on any of our listeners).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

/// How `applab serve` listens.
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: serve HTTPS (and Secure cookies).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The labs the instructor's panel offers to launch.
    pub labs: Option<std::path::PathBuf>,
}

/// The listener bound and guarded, ready to serve (so the caller can print
/// the address before serving).
pub struct Bound {
    listener: TcpListener,
    deny: Vec<Ipv4Net>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    labs: Option<std::path::PathBuf>,
    pub local: SocketAddr,
}

pub async fn bind(ctrl: &Controller, o: &ServeOptions) -> Result<Bound> {
    let tls = match &o.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(o.listen).await?;
    let deny = vec![ctrl.cfg.pool];
    refuse_networks(&listener, &deny)?;
    let local = listener.local_addr()?;
    Ok(Bound {
        listener,
        deny,
        tls,
        labs: o.labs.clone(),
        local,
    })
}

impl Bound {
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Serve the API and the panel until the future `shutdown` completes.
pub async fn serve(
    ctrl: Arc<Controller>,
    bound: Bound,
    token: String,
    public_url: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(listen = %bound.local, scheme = bound.scheme(), "API and panel listening");
    let app = router(AppState {
        ctrl,
        token: Arc::new(token),
        panel: Arc::new(panel::PanelState::new(
            bound.tls.is_some(),
            public_url,
            bound.labs.clone(),
        )),
    });
    // Before routing: a staff member's look at a student's page becomes
    // that page (panel::staff_view).
    let app = tower::Layer::layer(&axum::middleware::from_fn(panel::staff_view), app);
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<Peer>(
        app,
    );
    let guarded = GuardedListener::new(bound.listener, bound.deny);
    match bound.tls {
        None => {
            axum::serve(guarded, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(guarded, acceptor), app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn connects(addr: SocketAddr) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await,
            Ok(Ok(_))
        )
    }

    #[tokio::test]
    async fn the_socket_filter_drops_denied_networks_in_the_kernel() {
        // Loopback as the "lab pool": the handshake itself must not complete.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        refuse_networks(
            &l,
            &[
                "10.0.0.0/8".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
            ],
        )
        .unwrap();
        assert!(!connects(addr).await, "a denied source gets no SYN-ACK");

        let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = open.local_addr().unwrap();
        refuse_networks(&open, &["10.213.0.0/16".parse().unwrap()]).unwrap();
        assert!(connects(addr).await, "other sources still connect");
    }

    #[test]
    fn the_listener_knows_denied_addresses() {
        let g = GuardedListener {
            inner: {
                let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                std.set_nonblocking(true).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .unwrap();
                let _e = rt.enter();
                TcpListener::from_std(std).unwrap()
            },
            deny: vec!["10.213.0.0/16".parse().unwrap()],
        };
        assert!(g.denied(&"10.213.4.1:7700".parse().unwrap()));
        assert!(g.denied(&"[::ffff:10.213.4.1]:7700".parse().unwrap()));
        assert!(!g.denied(&"192.0.2.2:7700".parse().unwrap()));
    }
}
