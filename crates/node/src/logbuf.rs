//! Log lines gathered in memory and written to stderr in batches.
//!
//! A busy origin logs one line per exchange; a write(2) per line costs more
//! than the exchange. Lines are appended to a shared buffer and written
//! every 100 ms, or at once when 64 KiB are waiting, and on exit. Like
//! nginx's `access_log ... buffer= flush=`, a SIGKILL can lose the last
//! 100 ms of lines; it never loses or interleaves parts of one. The mail
//! queue's lines (queued, delivered, deferred, bounced) are the exception:
//! they go out at once, so a crash never hides why a message was doubled or
//! lost.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

const FLUSH_BYTES: usize = 64 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

static BUF: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Start the flusher thread; call once.
pub fn start() {
    let _ = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(|| loop {
            std::thread::sleep(FLUSH_EVERY);
            flush();
        });
}

/// Write out whatever is waiting.
pub fn flush() {
    let pending = match BUF.lock() {
        // The fresh buffer is made at full size: growing one line at a
        // time would copy every byte again on each doubling.
        Ok(mut b) if !b.is_empty() => {
            std::mem::replace(&mut *b, Vec::with_capacity(2 * FLUSH_BYTES))
        }
        _ => return,
    };
    let _ = std::io::stderr().lock().write_all(&pending);
}

/// A `MakeWriter` for tracing-subscriber: one writer per event.
pub struct Batched;

/// Events of these modules are written at once, not batched.
const AT_ONCE: &[&str] = &["applab_node::mail::queue"];

pub struct Line {
    buf: Vec<u8>,
    at_once: bool,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        // The event is complete: hand the whole line over at once.
        let full = match BUF.lock() {
            Ok(mut b) => {
                b.extend_from_slice(&self.buf);
                b.len() >= FLUSH_BYTES
            }
            Err(_) => false,
        };
        // What waited before it goes first: the order of lines is kept.
        if full || self.at_once {
            flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line {
            buf: Vec::with_capacity(256),
            at_once: false,
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            buf: Vec::with_capacity(256),
            at_once: AT_ONCE.iter().any(|m| meta.target().starts_with(m)),
        }
    }
}

/// One line per event, `TIME LEVEL target: message key=value ...`, made
/// without the general formatting machinery: the exchange line is written
/// once per request and must cost far less than the request.
pub struct Compact;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Compact
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(256);
        push_time(&mut line);
        line.push(' ');
        line.push_str(meta.level().as_str());
        line.push(' ');
        line.push_str(meta.target());
        line.push(':');
        event.record(&mut Fields(&mut line));
        line.push('\n');
        w.write_str(&line)
    }
}

struct Fields<'a>(&'a mut String);

/// A value as it is logged: bare when it cannot be misread, else quoted
/// and escaped as `{:?}` would (written by hand for the common case: the
/// request line, with its spaces, is logged on every exchange).
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\');
    let quotable = value
        .bytes()
        .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'"' && b != b'\\');
    if plain {
        out.push_str(value);
    } else if quotable {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        use std::fmt::Write as _;
        let _ = write!(out, "{value:?}");
    }
}

impl Fields<'_> {
    fn key(&mut self, field: &tracing::field::Field) {
        self.0.push(' ');
        self.0.push_str(field.name());
        self.0.push('=');
    }
}

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push(' ');
            self.0.push_str(value);
            return;
        }
        self.key(field);
        push_value(self.0, value);
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            self.key(field);
            let _ = write!(self.0, "{value:?}");
        }
    }
}

thread_local! {
    // The date and time to the second, made once a second per thread.
    static SECOND: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 UTC time with microseconds: 2026-11-27T17:34:29.123456Z.
fn push_time(out: &mut String) {
    let now = std::time::SystemTime::now();
    let d = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != d.as_secs() {
            let s = humantime::format_rfc3339_seconds(now).to_string();
            *c = (d.as_secs(), s.trim_end_matches('Z').to_string());
        }
        out.push_str(&c.1);
    });
    let micros = d.subsec_micros();
    out.push('.');
    let mut digits = [b'0'; 6];
    let mut m = micros;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bare_or_quoted_as_debug() {
        for v in [
            "GET / HTTP/1.1",
            "",
            "a=b",
            "tab\there",
            "q\"uote",
            "back\\",
            "é",
        ] {
            let mut s = String::new();
            push_value(&mut s, v);
            assert_eq!(s, format!("{v:?}"), "{v}");
        }
        let mut s = String::new();
        push_value(&mut s, "127.0.0.1:80");
        assert_eq!(s, "127.0.0.1:80");
    }

    #[test]
    fn time_is_rfc3339_with_micros() {
        let mut s = String::new();
        push_time(&mut s);
        assert_eq!(s.len(), "2026-11-27T17:34:29.123456Z".len(), "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
    }
}
