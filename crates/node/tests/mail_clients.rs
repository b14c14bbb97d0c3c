//! Mail user agents that are not ours against the mail role: fetchmail
//! (POP3 and IMAP, keeping and deleting) and neomutt driven without a
//! person (reading, deleting and moving over IMAP).

mod common;

use common::bounded;
use common::mail::{MailLab, Raw};
use std::process::Command;
use std::time::Duration;

fn deliver(lab: &MailLab, subject: &str) {
    lab.note_to_bob(subject);
}

/// Run fetchmail once; the messages it handed to its MDA, concatenated.
fn fetchmail(
    lab: &MailLab,
    dir: &std::path::Path,
    protocol: &str,
    port: u16,
    keep: bool,
) -> String {
    let out = dir.join(format!("fetched-{protocol}-{keep}.mbox"));
    let rc = dir.join(format!("fetchmailrc-{protocol}-{keep}"));
    std::fs::write(
        &rc,
        format!(
            "set no syslog\npoll 127.0.0.2 with protocol {protocol} port {port} {}\n  \
             user \"bob\" there with password \"bob-pw\" is \"root\" here\n  {}\n  sslproto ''\n  \
             mda \"/bin/sh -c 'cat >> {}'\"\n",
            if keep && protocol == "POP3" {
                "uidl"
            } else {
                ""
            },
            if keep { "keep" } else { "nokeep fetchall" },
            out.display()
        ),
    )
    .unwrap();
    let _ = std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let o = bounded(
        Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .args(["--nodetach", "--idfile"])
            .arg(dir.join(format!("ids-{protocol}")))
            .args(["--pidfile"])
            .arg(dir.join("fetchmail.pid"))
            .env("HOME", dir),
        Duration::from_secs(60),
    );
    // 0: mail fetched; 1: no mail.
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "fetchmail {protocol}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = lab;
    std::fs::read_to_string(&out).unwrap_or_default()
}

#[test]
fn fetchmail_reads_keeps_and_deletes_over_pop3_and_imap() {
    let lab = MailLab::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    for s in ["alpha", "beta"] {
        deliver(&lab, s);
    }
    lab.wait_mailbox("b", "bob", 2, Duration::from_secs(10));
    // POP3, keep: both fetched, both still there.
    let got = fetchmail(&lab, dir.path(), "POP3", lab.pop3_port, true);
    assert!(
        got.contains("Subject: alpha") && got.contains("Subject: beta"),
        "{got}"
    );
    assert_eq!(lab.mailbox("b", "bob").len(), 2);
    // IMAP, keep: fetched again, still there.
    let got = fetchmail(&lab, dir.path(), "IMAP", lab.imap_port, true);
    assert!(
        got.contains("Subject: alpha") && got.contains("Subject: beta"),
        "{got}"
    );
    assert_eq!(lab.mailbox("b", "bob").len(), 2);
    // POP3, delete: fetched and gone from the server.
    deliver(&lab, "gamma");
    lab.wait_mailbox("b", "bob", 3, Duration::from_secs(10));
    let got = fetchmail(&lab, dir.path(), "POP3", lab.pop3_port, false);
    assert!(got.contains("Subject: gamma"), "{got}");
    assert_eq!(lab.mailbox("b", "bob").len(), 0, "download and delete");
    // IMAP, delete: flagged \Deleted and expunged.
    deliver(&lab, "delta");
    lab.wait_mailbox("b", "bob", 1, Duration::from_secs(10));
    let got = fetchmail(&lab, dir.path(), "IMAP", lab.imap_port, false);
    assert!(got.contains("Subject: delta"), "{got}");
    assert_eq!(lab.mailbox("b", "bob").len(), 0);
}

/// Run neomutt on a pseudo-terminal with keystrokes pushed at start-up.
fn neomutt(lab: &MailLab, dir: &std::path::Path, keys: &str) -> String {
    let rc = dir.join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set imap_user=bob\nset imap_pass=bob-pw\nset ssl_starttls=no\nset ssl_force_tls=no\n\
             set folder=imap://127.0.0.2:{}/\nset spoolfile=+INBOX\nset delete=yes\nset move=no\nset quit=yes\n\
             set confirmappend=no\nset confirmcreate=no\nset mail_check=0\nset sort=date-sent\n\
             set header_cache=\"\"\nset message_cachedir=\"\"\nset pager_stop=yes\nset wait_key=no\n",
            lab.imap_port
        ),
    )
    .unwrap();
    // `--foreground` keeps neomutt in the terminal's foreground process
    // group: without it, timeout's own group is in the background and
    // neomutt stops on SIGTTOU when curses sets the terminal up.
    let cmd = format!(
        "TERM=xterm timeout --foreground -k 5 20 neomutt -n -F {} -e 'push \"{keys}\"'",
        rc.display()
    );
    let o = bounded(
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("HOME", dir),
        Duration::from_secs(40),
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn neomutt_reads_moves_and_deletes_over_imap() {
    let lab = MailLab::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    for s in ["first", "second", "third"] {
        deliver(&lab, s);
    }
    lab.wait_mailbox("b", "bob", 3, Duration::from_secs(10));
    // Save (move) the first message into a new folder "Saved".
    neomutt(
        &lab,
        dir.path(),
        "<first-entry><save-message>=Saved<enter><sync-mailbox><quit>",
    );
    let saved = lab.path("data-b/mailboxes/bob/.Saved");
    let t = std::time::Instant::now();
    while common::mail::maildir_count(&saved) < 1 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "neomutt did not save into Saved"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lab.mailbox("b", "bob").len(), 2, "moved out of INBOX");
    // Delete the (new) first message.
    neomutt(
        &lab,
        dir.path(),
        "<first-entry><delete-message><sync-mailbox><quit>",
    );
    assert_eq!(lab.mailbox("b", "bob").len(), 1, "deleted and expunged");
    // Read the last one: it is \Seen afterwards.
    neomutt(
        &lab,
        dir.path(),
        "<first-entry><display-message><exit><quit>",
    );
    let mut c = Raw::connect_imap(lab.b_imap());
    let f = c.imap("FETCH 1 (FLAGS)");
    assert!(f.contains("\\Seen"), "{f}");
}
