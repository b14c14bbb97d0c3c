//! Postfix (Debian's package) as a peer: ours relays to it and it relays to
//! ours, and each side's queue holds a message while the other is down and
//! delivers it when it returns. Postfix runs as a private instance (its own
//! config, queue and Maildirs in a temporary folder) for domain c.lab on
//! 127.0.0.3; it reaches a.lab through a transport map, we reach c.lab
//! through its MX in our DNS.

mod common;

use common::mail::{MailLab, Raw};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Postfix's services for a private instance (shared with bench/smtp).
const POSTFIX_SERVICES: &str = include_str!("clients/postfix-services.cf");

struct Postfix {
    dir: tempfile::TempDir,
}

impl Postfix {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn start(port: u16) -> Postfix {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["conf", "queue", "data", "vmail"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let chown = |p: &Path, who: &str| {
            let st = Command::new("chown").arg(who).arg(p).status().unwrap();
            assert!(st.success(), "chown {who} {}", p.display());
        };
        chown(&d.join("data"), "postfix");
        chown(&d.join("vmail"), "nobody");
        // The tempdir is 0700: Postfix's unprivileged daemons must get in.
        let st = Command::new("chmod").arg("755").arg(d).status().unwrap();
        assert!(st.success());
        let p = d.display();
        std::fs::write(
            d.join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {p}/queue\ndata_directory = {p}/data\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mail.c.lab\n\
                 mydomain = c.lab\nmyorigin = c.lab\nmydestination =\ninet_interfaces = loopback-only\n\
                 inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
                 virtual_mailbox_domains = c.lab\nvirtual_mailbox_base = {p}/vmail\n\
                 virtual_mailbox_maps = texthash:{p}/conf/vmailbox\nvirtual_uid_maps = static:65534\n\
                 virtual_gid_maps = static:65534\ntransport_maps = texthash:{p}/conf/transport\n\
                 maillog_file = {p}/maillog\nmaillog_file_prefixes = /tmp, /var\n\
                 disable_dns_lookups = yes\nminimal_backoff_time = 2s\nmaximal_backoff_time = 4s\n\
                 queue_run_delay = 2s\nalias_maps =\nalias_database =\nbiff = no\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join("conf/vmailbox"), "dave@c.lab dave/Maildir/\n").unwrap();
        std::fs::write(
            d.join("conf/transport"),
            format!("a.lab smtp:[127.0.0.1]:{port}\nb.lab smtp:[127.0.0.2]:{port}\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("conf/master.cf"),
            format!(
                "127.0.0.3:{port} inet n - n - - smtpd\n{}",
                POSTFIX_SERVICES
            ),
        )
        .unwrap();
        let pf = Postfix { dir };
        pf.ctl("start");
        common::mail::wait_port(format!("127.0.0.3:{port}").parse().unwrap());
        pf
    }

    fn ctl(&self, verb: &str) {
        let out = Command::new("postfix")
            .arg("-c")
            .arg(self.conf())
            .arg(verb)
            .output()
            .expect("postfix is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "postfix {verb}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    fn mailbox(&self, user: &str) -> Vec<String> {
        let md = self.dir.path().join("vmail").join(user).join("Maildir");
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(md.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    fn wait_mailbox(&self, user: &str, subject: &str, within: Duration) -> String {
        let t = Instant::now();
        loop {
            if let Some(m) = self.mailbox(user).into_iter().find(|m| m.contains(subject)) {
                return m;
            }
            assert!(
                t.elapsed() < within,
                "Postfix never delivered {subject:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .output();
    }
}

fn send(addr: std::net::SocketAddr, from: &str, to: &str, subject: &str) {
    let (mut r, _) = Raw::connect(addr);
    assert!(r.cmd("EHLO test.lab").starts_with("250"));
    assert!(r.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    let rep = r.cmd(&format!("RCPT TO:<{to}>"));
    assert!(rep.starts_with("250"), "{rep}");
    assert!(r.cmd("DATA").starts_with("354"));
    let rep = r.cmd(&format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nbody\r\n."
    ));
    assert!(rep.starts_with("250"), "{rep}");
    r.cmd("QUIT");
}

#[test]
fn postfix_and_applab_relay_to_each_other_and_their_queues_wait_for_each_other() {
    let mut lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    let pf = Postfix::start(lab.port);
    let postfix_addr: std::net::SocketAddr = format!("127.0.0.3:{}", lab.port).parse().unwrap();

    // Ours to Postfix, found by MX.
    send(
        lab.a_addr(),
        "alice@a.lab",
        "dave@c.lab",
        "applab to postfix",
    );
    let m = pf.wait_mailbox("dave", "applab to postfix", Duration::from_secs(15));
    assert!(
        m.contains("by mail.a.lab (applab)") && m.contains("by mail.c.lab (Postfix"),
        "{m}"
    );

    // Postfix to ours.
    send(
        postfix_addr,
        "dave@c.lab",
        "alice@a.lab",
        "postfix to applab",
    );
    let m = lab.wait_mailbox("a", "alice", 1, Duration::from_secs(15));
    assert!(
        m[0].contains("by mail.c.lab (Postfix") && m[0].contains("by mail.a.lab (applab)"),
        "{}",
        m[0]
    );

    // Ours down: Postfix queues, retries and delivers when we are back.
    lab.a.kill();
    send(postfix_addr, "dave@c.lab", "alice@a.lab", "postfix waited");
    let t = Instant::now();
    while !pf.log().contains("status=deferred") {
        assert!(t.elapsed() < Duration::from_secs(15), "{}", pf.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.a.start();
    let m = lab.wait_mailbox("a", "alice", 2, Duration::from_secs(30));
    assert_eq!(
        m.iter()
            .filter(|x| x.contains("Subject: postfix waited"))
            .count(),
        1
    );

    // Postfix down: our queue retries and delivers when it is back.
    pf.ctl("stop");
    send(lab.a_addr(), "alice@a.lab", "dave@c.lab", "applab waited");
    let t = Instant::now();
    while !lab.a.log_text().contains("message deferred") {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{}",
            lab.a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pf.ctl("start");
    pf.wait_mailbox("dave", "applab waited", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pf.mailbox("dave")
            .iter()
            .filter(|m| m.contains("applab waited"))
            .count(),
        1,
        "delivered once"
    );
    assert_eq!(lab.queue_files("a"), 0);
}
