//! The workstation role: the student's machine inside the topology.
//!
//! It must simply stay up (the panel's console and `applab exec` run the
//! shell and tools in it), and it answers the echo service (RFC 862) on a
//! port so that liveness and isolation probes have something to knock on.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct Args {
    /// Where the echo service listens.
    #[arg(long, default_value = "0.0.0.0:7")]
    pub echo: String,
}

/// Bound on one echo connection's lifetime, so idle probes cannot pile up.
const ECHO_IDLE: Duration = Duration::from_secs(60);
const MAX_CONNS: usize = 64;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.echo).await?;
    tracing::info!(addr = %args.echo, "workstation up, echo service listening");
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNS));
    loop {
        let (mut sock, peer) = listener.accept().await?;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // dropped: too many open echo connections
        };
        tokio::spawn(async move {
            let _permit = permit;
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout(ECHO_IDLE, sock.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        if sock.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            tracing::debug!(%peer, "echo connection closed");
        });
    }
}
