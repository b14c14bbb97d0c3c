//! Server-sent events from a broadcast channel: what the panel's live
//! parts and the API's streams all are. A subscriber that falls behind by
//! more than the channel holds is told how many it missed (`lagged`).

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// Each item `pick` keeps (Some) becomes one event, in order.
pub fn stream<T, F>(rx: Receiver<T>, pick: F) -> Response
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Option<Result<Event, axum::Error>> + Send + Sync + 'static,
{
    let pick = std::sync::Arc::new(pick);
    let s = futures_util::stream::unfold(rx, move |mut rx| {
        let pick = pick.clone();
        async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(item) => match pick(item) {
                        Some(ev) => ev,
                        None => continue,
                    },
                    Err(RecvError::Lagged(n)) => {
                        Ok(Event::default().event("lagged").data(n.to_string()))
                    }
                    Err(RecvError::Closed) => return None,
                };
                let ev = ev.unwrap_or_else(|_| Event::default().comment("unserialisable"));
                return Some((Ok::<_, std::convert::Infallible>(ev), rx));
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}
