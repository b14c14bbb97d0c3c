//! The controller's HTTP face: the instructor's JSON API.
//!
//! The CLI's instructor verbs are clients of this API (bearer token). The
//! listener refuses connections that arrive on a student bridge's gateway
//! address, so a workstation can never reach the API (or, later, another
//! student's panel pages) through its own network.

mod api;

use anyhow::Result;
use applab_controller::Controller;
use ipnet::Ipv4Net;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

pub use api::{router, AppState, LaunchRequest};

/// A TCP listener that drops connections addressed to a denied network
/// (the student bridges' gateways all fall in the lab address pool).
pub struct GuardedListener {
    inner: TcpListener,
    deny: Vec<Ipv4Net>,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, deny: Vec<Ipv4Net>) -> GuardedListener {
        GuardedListener { inner, deny }
    }

    fn denied(&self, local: &SocketAddr) -> bool {
        match local {
            SocketAddr::V4(a) => self.deny.iter().any(|n| n.contains(a.ip())),
            SocketAddr::V6(a) => a
                .ip()
                .to_ipv4_mapped()
                .is_some_and(|ip| self.deny.iter().any(|n| n.contains(&ip))),
        }
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
                        Ok(local) if !self.denied(&local) => return (sock, peer),
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

/// Serve the API until the future `shutdown` completes.
pub async fn serve(
    ctrl: Arc<Controller>,
    listen: SocketAddr,
    token: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "API listening");
    let deny = vec![ctrl.cfg.pool];
    let app = router(AppState { ctrl, token: Arc::new(token) });
    axum::serve(GuardedListener::new(listener, deny), app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
