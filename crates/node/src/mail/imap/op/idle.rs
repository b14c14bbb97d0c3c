//! IDLE (RFC 2177): the session reports changes as they happen until the
//! client sends DONE.

use crate::mail::conn::{Connection, In, Out};
use crate::mail::imap::session::{Done, Session};
use applab_proto::imap::MAX_LINE;
use applab_proto::line::Line;
use std::time::Duration;

impl Session<'_> {
    /// IDLE (RFC 2177): report changes as they happen until DONE.
    pub(in crate::mail::imap) async fn idle<R: In, W: Out>(
        &mut self,
        wr: &mut Connection<R, W>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<Done> {
        wr.send(b"+ idling\r\n").await?;
        let mut delivered = self.s.store.delivered.subscribe();
        let deadline = tokio::time::Instant::now() + self.s.idle;
        loop {
            if let Some(sel) = self.sel.as_mut() {
                let mut updates = Vec::new();
                sel.updates(true, false, &mut updates);
                if !updates.is_empty() {
                    wr.send(&updates).await?;
                }
            }
            match wr.buffered_line(MAX_LINE) {
                Some(Line::Complete(l)) if l.eq_ignore_ascii_case(b"DONE") => {
                    return Ok(Done::Ok("IDLE terminated".into()))
                }
                Some(_) => return Ok(Done::Bad("expected DONE".into())),
                None => {}
            }
            tokio::select! {
                r = wr.read_some() => if !r? {
                    return Ok(Done::Bad("connection closed while idling".into()));
                },
                _ = delivered.changed() => {}
                // Other sessions' changes: looked at every second.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    out.extend_from_slice(b"* BYE idle too long\r\n");
                    return Ok(Done::Ok("IDLE terminated".into()));
                }
            }
        }
    }
}
