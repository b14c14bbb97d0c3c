//! LOGIN and AUTHENTICATE PLAIN (RFC 3501 §6.2, RFC 4616): the way out of
//! the not-authenticated state.

use crate::mail::conn::{Connection, In, Next, Out};
use crate::mail::imap::session::{Done, Session};
use crate::mail::imap::CAPABILITIES;
use applab_proto::imap::{Token, MAX_LINE};
use applab_proto::line::Line;
use applab_proto::sasl;

impl Session<'_> {
    pub(in crate::mail::imap) async fn login(&mut self, user: &str, pass: &str) -> Done {
        let name = self
            .s
            .users
            .verify_off_loop(user, &self.s.domain, pass)
            .await;
        match name {
            Some(n) => {
                tracing::info!(peer = %self.peer, user = %n, "imap login");
                let _ = std::fs::create_dir_all(self.s.mailstore.user_dir(&n));
                self.user = Some(n);
                Done::Ok(format!("[CAPABILITY {CAPABILITIES}] LOGIN completed"))
            }
            None => {
                tracing::info!(peer = %self.peer, user, "imap login failed");
                Done::No("[AUTHENTICATIONFAILED] invalid user name or password".into())
            }
        }
    }

    pub(in crate::mail::imap) async fn authenticate<R: In, W: Out>(
        &mut self,
        args: &[Token],
        wr: &mut Connection<R, W>,
    ) -> std::io::Result<Done> {
        if args.first().and_then(Token::atom_upper).as_deref() != Some("PLAIN") {
            return Ok(Done::No("only AUTHENTICATE PLAIN is offered".into()));
        }
        let resp = match args.get(1).and_then(Token::as_text) {
            Some(r) => r,
            None => {
                wr.send(b"+ \r\n").await?;
                match wr.line(MAX_LINE).await? {
                    Next::Item(Line::Complete(l)) => String::from_utf8_lossy(&l).into_owned(),
                    _ => return Ok(Done::Bad("authentication aborted".into())),
                }
            }
        };
        if sasl::is_cancel(&resp) {
            return Ok(Done::Bad("authentication cancelled".into()));
        }
        match sasl::plain(&resp) {
            Ok(c) => Ok(self.login(&c.user, &c.password).await),
            Err(e) => Ok(Done::Bad(e.to_string())),
        }
    }
}
