//! What the server writes into messages (RFC 5321 §4.4, RFC 5322 §3.6):
//! the Received trace line each hop prepends, Message-ID and Date when the
//! client left them out, the Return-Path and Delivered-To of final
//! delivery, and the bounce (a delivery status notification, RFC 3464)
//! sent back when a message cannot be delivered.

use mail_parser::MessageParser;
use std::time::SystemTime;

/// A date as RFC 5322 writes it (`Fri, 27 Nov 2026 20:46:24 +0000`).
pub fn rfc5322_date(t: SystemTime) -> String {
    let http = httpdate::fmt_http_date(t);
    // The same fields as HTTP's IMF-fixdate, with a numeric zone.
    http.strip_suffix(" GMT")
        .map(|s| format!("{s} +0000"))
        .unwrap_or(http)
}

/// Which of Message-ID and Date the header section lacks (mail-parser reads it).
pub fn missing_headers(message: &[u8]) -> (bool, bool) {
    match MessageParser::default().parse_headers(message) {
        Some(m) => (m.message_id().is_none(), m.date().is_none()),
        None => (true, true),
    }
}

/// Trace and missing headers to put in front of an accepted message.
pub struct Stamp<'a> {
    pub helo: &'a str,
    pub client_ip: &'a str,
    pub hostname: &'a str,
    pub protocol: &'a str,
    pub id: &'a str,
    pub rcpt: Option<&'a str>,
}

pub fn stamp(s: &Stamp, message: &[u8]) -> Vec<u8> {
    let now = SystemTime::now();
    let mut h = format!(
        "Received: from {} ([{}])\r\n\tby {} (applab) with {} id {}",
        s.helo, s.client_ip, s.hostname, s.protocol, s.id
    );
    if let Some(r) = s.rcpt {
        h.push_str(&format!("\r\n\tfor <{r}>"));
    }
    h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(now)));
    let (no_id, no_date) = missing_headers(message);
    if no_id {
        h.push_str(&format!("Message-ID: <{}@{}>\r\n", s.id, s.hostname));
    }
    if no_date {
        h.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    }
    let mut out = h.into_bytes();
    out.extend_from_slice(message);
    out
}

/// The headers final delivery adds (RFC 5321 §4.4: Return-Path).
pub fn for_mailbox(from: &str, rcpt: &str, message: &[u8]) -> Vec<u8> {
    let mut out = format!("Return-Path: <{from}>\r\nDelivered-To: {rcpt}\r\n").into_bytes();
    out.extend_from_slice(message);
    out
}

/// A bounce to the sender of a message that could not be delivered.
pub struct Bounce<'a> {
    pub hostname: &'a str,
    pub domain: &'a str,
    pub id: &'a str,
    pub sender: &'a str,
    /// (recipient, reason) for each failed recipient.
    pub failed: &'a [(String, String)],
    pub original: &'a [u8],
}

/// Most of the original message quoted back (its headers, a little body).
const QUOTED: usize = 8 << 10;

pub fn bounce(b: &Bounce) -> Vec<u8> {
    let now = SystemTime::now();
    let boundary = format!("{}/{}", b.id, b.hostname);
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\nTo: <{}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nDate: {}\r\n\
         Message-ID: <{}.bounce@{}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n",
        b.domain,
        b.sender,
        rfc5322_date(now),
        b.id,
        b.hostname
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         This is the mail system at {}.\r\n\r\n\
         Your message could not be delivered to one or more recipients:\r\n\r\n",
        b.hostname
    ));
    for (r, why) in b.failed {
        m.push_str(&format!("<{r}>: {why}\r\n"));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; {}\r\nArrival-Date: {}\r\n",
        b.hostname,
        rfc5322_date(now)
    ));
    for (r, why) in b.failed {
        let status = if why.starts_with('4') || why.contains("gave up") {
            "4.4.7"
        } else {
            "5.0.0"
        };
        m.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {}\r\n",
            why.replace(['\r', '\n'], " ")
        ));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    // The header lines, without the blank line after them.
    let head_end =
        applab_proto::message::header_end(b.original).map_or(b.original.len(), |e| e - 2);
    out.extend_from_slice(&b.original[..head_end.min(QUOTED)]);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_trace_and_missing_headers_only() {
        let s = Stamp {
            helo: "ws",
            client_ip: "10.0.0.9",
            hostname: "mail.a.lab",
            protocol: "ESMTP",
            id: "Q1",
            rcpt: Some("bob@b.lab"),
        };
        let out = String::from_utf8(stamp(&s, b"Subject: hi\r\n\r\nbody\r\n")).unwrap();
        assert!(
            out.starts_with("Received: from ws ([10.0.0.9])\r\n\tby mail.a.lab"),
            "{out}"
        );
        assert!(out.contains("Message-ID: <Q1@mail.a.lab>") && out.contains("\r\nDate: "));
        let full = b"Date: Fri, 27 Nov 2026 20:46:24 +0000\r\nMessage-ID: <x@y>\r\n\r\nb\r\n";
        let out = String::from_utf8(stamp(&s, full)).unwrap();
        assert_eq!(out.matches("Message-ID").count(), 1);
        assert_eq!(out.matches("Date:").count(), 1);
        let parsed = MessageParser::default().parse(out.as_bytes()).unwrap();
        assert_eq!(parsed.message_id(), Some("x@y"));
    }

    #[test]
    fn bounce_is_a_delivery_status_report() {
        let b = bounce(&Bounce {
            hostname: "mail.a.lab",
            domain: "a.lab",
            id: "Q2",
            sender: "alice@a.lab",
            failed: &[("bob@b.lab".into(), "550 5.1.1 no such user".into())],
            original: b"Subject: lost\r\n\r\nbody\r\n",
        });
        let m = MessageParser::default().parse(&b[..]).unwrap();
        assert_eq!(m.subject(), Some("Undelivered Mail Returned to Sender"));
        let text = String::from_utf8(b).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; bob@b.lab"));
        assert!(text.contains("Subject: lost"));
    }
}
