//! Two mail domains and their DNS, from the binary, on loopback: a.lab's
//! server on 127.0.0.1 and b.lab's on 127.0.0.2, on the same port (the
//! port they relay to), and one DNS server authoritative for both.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    child: Option<Child>,
    args: Vec<String>,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(args: Vec<String>, log: PathBuf) -> Proc {
        let mut p = Proc {
            child: None,
            args,
            log,
        };
        p.start();
        p
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_applab-node"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("applab-node starts");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct MailLab {
    pub dir: tempfile::TempDir,
    pub dns: Proc,
    pub a: Proc,
    pub b: Proc,
    pub port: u16,
    /// POP3 port of both servers.
    pub pop3_port: u16,
    /// IMAP port of both servers.
    pub imap_port: u16,
    pub dns_addr: SocketAddr,
}

/// Whether something accepts on `addr` within `within`.
pub fn listening(addr: SocketAddr, within: Duration) -> bool {
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if t.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

pub fn wait_port(addr: SocketAddr) {
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{addr} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ZONE_A: &str = "$ORIGIN a.lab.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 30\n\
    @ IN NS ns\nns IN A 127.0.0.1\n@ IN MX 10 mail\nmail IN A 127.0.0.1\nwww IN CNAME mail\n";
const ZONE_C: &str = "$ORIGIN c.lab.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 30\n\
    @ IN MX 10 mail\nmail IN A 127.0.0.3\n";
const ZONE_B: &str = "$ORIGIN b.lab.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 30\n\
    @ IN MX 10 mail\nmail IN A 127.0.0.2\n";

impl MailLab {
    /// `a_args`: extra flags for a.lab's server (e.g. `--relay-from`).
    pub fn start(a_args: &[&str]) -> MailLab {
        Self::start_in(tempfile::tempdir().unwrap(), a_args)
    }

    /// Start in `dir`. The ports are picked free but may be taken before
    /// the servers bind them (tests run side by side): then start again.
    pub fn start_in(mut dir: tempfile::TempDir, a_args: &[&str]) -> MailLab {
        for _ in 0..3 {
            let mut lab = Self::spawn_in(dir, a_args);
            let addrs = [
                lab.a_addr(),
                lab.b_addr(),
                lab.b_pop3(),
                lab.b_imap(),
                lab.dns_addr,
            ];
            if addrs.iter().all(|a| listening(*a, Duration::from_secs(10))) {
                return lab;
            }
            lab.dns.kill();
            lab.a.kill();
            lab.b.kill();
            dir = std::mem::replace(&mut lab.dir, tempfile::tempdir().unwrap());
        }
        panic!("the mail lab's servers never all listened");
    }

    fn spawn_in(dir: tempfile::TempDir, a_args: &[&str]) -> MailLab {
        let d = dir.path();
        std::fs::create_dir_all(d.join("zones")).unwrap();
        std::fs::write(d.join("zones/a.lab.zone"), ZONE_A).unwrap();
        // c.lab: a Postfix peer, in the tests that start one.
        std::fs::write(d.join("zones/c.lab.zone"), ZONE_C).unwrap();
        // d.lab: no MX, only an address (the implicit MX of RFC 5321 §5.1).
        std::fs::write(
            d.join("zones/d.lab.zone"),
            "$ORIGIN d.lab.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 30\n@ IN A 127.0.0.2\n",
        )
        .unwrap();
        // A big TXT record: its answer does not fit in 512 bytes of UDP.
        let big = (0..5)
            .map(|_| format!("\"{}\"", "x".repeat(200)))
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(
            d.join("zones/b.lab.zone"),
            format!("{ZONE_B}big IN TXT {big}\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("a-users.toml"),
            "[[users]]\nname = \"alice\"\npassword = \"alice-pw\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("b-users.toml"),
            "[[users]]\nname = \"bob\"\npassword = \"bob-pw\"\n[[users]]\nname = \"carol\"\npassword = \"carol-pw\"\n",
        )
        .unwrap();
        let port = super::free_addr().port();
        let pop3_port = super::free_addr().port();
        let imap_port = super::free_addr().port();
        let dns_addr = super::free_addr();
        let s = |x: &str| x.to_string();
        let dns = Proc::spawn(
            vec![
                s("dns"),
                s("--listen"),
                dns_addr.to_string(),
                s("--zones"),
                d.join("zones").to_string_lossy().into(),
            ],
            d.join("dns.log"),
        );
        let mail = |dom: &str, ip: &str, extra: &[&str]| {
            let mut v = vec![
                s("mail"),
                s("--domain"),
                format!("{dom}.lab"),
                s("--data"),
                d.join(format!("data-{dom}")).to_string_lossy().into(),
                s("--smtp"),
                format!("{ip}:{port}"),
                s("--resolver"),
                dns_addr.to_string(),
                s("--users"),
                d.join(format!("{dom}-users.toml")).to_string_lossy().into(),
                s("--relay-port"),
                port.to_string(),
                s("--retry"),
                s("1s"),
                s("--pop3"),
                format!("{ip}:{pop3_port}"),
                s("--imap"),
                format!("{ip}:{imap_port}"),
            ];
            v.extend(extra.iter().map(|x| x.to_string()));
            Proc::spawn(v, d.join(format!("{dom}.log")))
        };
        let a = mail("a", "127.0.0.1", a_args);
        let b = mail("b", "127.0.0.2", &[]);
        MailLab {
            dir,
            dns,
            a,
            b,
            port,
            pop3_port,
            imap_port,
            dns_addr,
        }
    }

    pub fn a_addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    pub fn b_imap(&self) -> SocketAddr {
        format!("127.0.0.2:{}", self.imap_port).parse().unwrap()
    }

    pub fn b_pop3(&self) -> SocketAddr {
        format!("127.0.0.2:{}", self.pop3_port).parse().unwrap()
    }

    pub fn b_addr(&self) -> SocketAddr {
        format!("127.0.0.2:{}", self.port).parse().unwrap()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Messages in a user's Maildir (new/ and cur/), as text.
    pub fn mailbox(&self, dom: &str, user: &str) -> Vec<String> {
        let md = self.path(&format!("data-{dom}/mailboxes/{user}"));
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(md.join(sub)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                out.push(String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned());
            }
        }
        out
    }

    /// Wait until a mailbox holds `n` messages.
    pub fn wait_mailbox(&self, dom: &str, user: &str, n: usize, within: Duration) -> Vec<String> {
        let t = Instant::now();
        loop {
            let m = self.mailbox(dom, user);
            if m.len() >= n {
                return m;
            }
            assert!(
                t.elapsed() < within,
                "{user}@{dom}.lab has {} of {n} messages after {within:?}\na.log:\n{}\nb.log:\n{}",
                m.len(),
                self.a.log_text(),
                self.b.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Hand b.lab's server a message for bob (local delivery): `text` is
    /// the whole message, without the final dot line.
    pub fn deliver_to_bob(&self, text: &str) {
        let (mut r, _) = Raw::connect(self.b_addr());
        r.cmd("HELO test");
        r.cmd("MAIL FROM:<carol@b.lab>");
        r.cmd("RCPT TO:<bob@b.lab>");
        assert_eq!(code(&r.cmd("DATA")), 354);
        let rep = r.cmd(&format!("{text}\r\n."));
        assert_eq!(code(&rep), 250, "{rep}");
    }

    /// A short message from carol to bob with this subject.
    pub fn note_to_bob(&self, subject: &str) {
        self.deliver_to_bob(&format!(
            "From: Carol <carol@b.lab>\r\nTo: bob@b.lab\r\nSubject: {subject}\r\n\r\nbody of {subject}"
        ));
    }

    pub fn queue_files(&self, dom: &str) -> usize {
        std::fs::read_dir(self.path(&format!("data-{dom}/queue")))
            .map(|r| r.flatten().count())
            .unwrap_or(0)
    }
}

/// A tiny SMTP dialogue by hand: send lines, read replies.
pub struct Raw {
    s: std::io::BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> (Raw, String) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = Raw {
            s: std::io::BufReader::new(s),
        };
        let greet = r.reply();
        (r, greet)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.s.get_mut().write_all(bytes).unwrap();
    }

    /// One whole reply, lines joined by '\n'.
    pub fn reply(&mut self) -> String {
        self.try_reply()
            .expect("a whole reply before the connection ended")
    }

    /// A reply, or `None` if the connection broke first.
    pub fn try_reply(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.s.read_line(&mut line).ok()?;
            if n == 0 {
                return None;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(all.trim_end().to_string());
            }
        }
    }

    /// Send bytes as they are; `None` if the connection broke.
    pub fn try_send(&mut self, bytes: &[u8]) -> Option<()> {
        use std::io::Write;
        self.s.get_mut().write_all(bytes).ok()
    }

    /// Send a command; `None` if the connection broke.
    pub fn try_cmd(&mut self, line: &str) -> Option<String> {
        use std::io::Write;
        self.s
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .ok()?;
        self.try_reply()
    }

    pub fn try_connect(addr: SocketAddr) -> Option<Raw> {
        let s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut r = Raw {
            s: std::io::BufReader::new(s),
        };
        r.try_reply()?;
        Some(r)
    }

    /// Send one command line (CRLF added) and read its reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

impl Raw {
    /// An IMAP session logged in as bob with INBOX selected.
    pub fn connect_imap(addr: SocketAddr) -> Raw {
        let (mut r, greet) = Raw::connect(addr);
        assert!(greet.starts_with("* OK"), "{greet}");
        r.imap("LOGIN bob bob-pw");
        r.imap("SELECT INBOX");
        r
    }

    /// One tagged IMAP command; every line up to its completion.
    pub fn imap(&mut self, cmd: &str) -> String {
        use std::io::BufRead;
        self.send(format!("x {cmd}\r\n").as_bytes());
        let mut all = String::new();
        loop {
            let mut l = String::new();
            let n = self.s.read_line(&mut l).unwrap();
            assert!(n > 0, "closed during {cmd}: {all}");
            all.push_str(&l);
            if l.starts_with("x ") {
                return all;
            }
        }
    }
}

pub fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

pub fn maildir_count(p: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .map(|s| std::fs::read_dir(p.join(s)).map(|r| r.count()).unwrap_or(0))
        .sum()
}
