//! The accept loop the servers with one task per connection share (the
//! mail protocols, the proxy): a bounded number of connections, a "try
//! later" for the next one, and accept errors (out of descriptors) waited
//! out instead of spun on or died of.

use std::sync::Arc;
use std::time::Duration;

/// Accept connections forever, at most `max` open at once; one more gets
/// `busy` (the protocol's "try later") and is closed.
pub async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    max: usize,
    busy: &'static [u8],
    what: &'static str,
    handle: F,
) -> anyhow::Result<()>
where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::AsyncWriteExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
    let handle = Arc::new(handle);
    loop {
        let (mut sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                tracing::warn!("{what} accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = slots.clone().try_acquire_owned();
        let handle = handle.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permit else {
                let _ = sock.write_all(busy).await;
                return;
            };
            handle(sock, peer).await;
        });
    }
}
