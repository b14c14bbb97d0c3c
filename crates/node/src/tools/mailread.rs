//! The reading side of the `mail` user agent: the pull protocols. Over
//! POP3 (`mail list`, `mail read N [--keep]`) a message is downloaded and,
//! unless kept, deleted at QUIT; over IMAP (`--imap`) it stays on the
//! server, in folders (`mail folders`, `mail move UID FOLDER`), and a client
//! may fetch just its headers (`--headers`). Every line exchanged is shown,
//! `C:` for ours and `S:` for the server's, unless `-q`.

use applab_proto::dot;
use applab_proto::imap::{Piece, Received, Receiver, ReceiverLimits};
use applab_proto::line::{Line, LineReader};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct Account {
    /// The server (`HOST[:PORT]`; port 110 for POP3, 143 for IMAP).
    #[arg(long, short = 's')]
    pub server: String,
    #[arg(long, short = 'u')]
    pub user: String,
    #[arg(long, short = 'p')]
    pub password: String,
    /// Use IMAP instead of POP3.
    #[arg(long)]
    pub imap: bool,
    /// The IMAP folder.
    #[arg(long, default_value = "INBOX")]
    pub folder: String,
    /// Do not print the dialogue.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub struct Conn {
    sock: TcpStream,
    lines: LineReader,
    quiet: bool,
    tag: u32,
}

/// Longest server line followed (a POP3 message line may be long): the
/// same as for IMAP responses.
const MAX_LINE: usize = ReceiverLimits::CLIENT.line;

fn connect(a: &Account) -> anyhow::Result<Conn> {
    let port = if a.imap { 143 } else { 110 };
    let addr = if a
        .server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        a.server.clone()
    } else {
        format!("{}:{port}", a.server)
    };
    let s = TcpStream::connect(&addr).map_err(|e| anyhow::anyhow!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut c = Conn {
        sock: s,
        lines: LineReader::new(),
        quiet: a.quiet,
        tag: 0,
    };
    let greet = c.line()?;
    anyhow::ensure!(
        greet.starts_with("+OK") || greet.starts_with("* OK"),
        "server greeted with {greet:?}"
    );
    Ok(c)
}

impl Conn {
    /// Read more of the server's bytes.
    fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.sock.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        self.lines.feed(&chunk[..n]);
        Ok(())
    }

    fn show(&self, l: &str) {
        if !self.quiet {
            println!("S: {l}");
        }
    }

    fn line(&mut self) -> anyhow::Result<String> {
        loop {
            match self.lines.next_line(MAX_LINE) {
                Some(Line::Complete(l)) => {
                    let l = String::from_utf8_lossy(&l).into_owned();
                    self.show(&l);
                    return Ok(l);
                }
                Some(Line::TooLong) => {
                    anyhow::bail!("the server sent a line over {MAX_LINE} octets")
                }
                None => self.fill()?,
            }
        }
    }

    fn send(&mut self, line: &str, shown: &str) -> anyhow::Result<()> {
        if !self.quiet {
            println!("C: {shown}");
        }
        self.sock.write_all(format!("{line}\r\n").as_bytes())?;
        Ok(())
    }

    // --- POP3 ---

    fn pop(&mut self, line: &str) -> anyhow::Result<String> {
        let shown = if line.starts_with("PASS ") {
            "PASS ********"
        } else {
            line
        };
        self.send(line, shown)?;
        let l = self.line()?;
        anyhow::ensure!(l.starts_with("+OK"), "{line}: {l}");
        Ok(l)
    }

    /// A multi-line answer's data, byte-stuffing undone.
    fn pop_multi(&mut self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let l = self.line()?;
            match dot::unstuff(l.as_bytes()) {
                None => return Ok(out),
                Some(text) => out.push(String::from_utf8_lossy(text).into_owned()),
            }
        }
    }

    // --- IMAP ---

    /// Run a command; the untagged lines (literals inline) and the tagged status.
    fn imap(&mut self, cmd: &str) -> anyhow::Result<(Vec<String>, String)> {
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        let shown = if cmd.starts_with("LOGIN ") {
            "LOGIN ********".to_string()
        } else {
            cmd.to_string()
        };
        self.send(&format!("{tag} {cmd}"), &format!("{tag} {shown}"))?;
        let mut lines = Vec::new();
        let mut rx = Receiver::new(ReceiverLimits::CLIENT);
        loop {
            // One response with its literals: `{n}` ends a line, n octets follow.
            let pieces = match rx.next(&mut self.lines) {
                Some(Received::Whole(a)) => a.pieces,
                // A response's literal follows at once: no request to answer.
                Some(Received::Continue) => continue,
                Some(_) => anyhow::bail!("the server sent a line over the limit"),
                None => {
                    self.fill()?;
                    continue;
                }
            };
            let mut l = String::new();
            for p in &pieces {
                match p {
                    Piece::Line(t) => {
                        let t = String::from_utf8_lossy(t);
                        self.show(&t);
                        l.push_str(&t);
                    }
                    Piece::Literal(d) => {
                        let text = String::from_utf8_lossy(d);
                        if !self.quiet {
                            print!("{text}");
                        }
                        l.push_str("\r\n");
                        l.push_str(&text);
                    }
                }
            }
            if let Some(status) = l.strip_prefix(&format!("{tag} ")) {
                return Ok((lines, status.to_string()));
            }
            lines.push(l);
        }
    }

    fn imap_ok(&mut self, cmd: &str) -> anyhow::Result<Vec<String>> {
        let (lines, status) = self.imap(cmd)?;
        anyhow::ensure!(status.starts_with("OK"), "{cmd}: {status}");
        Ok(lines)
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn imap_login(a: &Account) -> anyhow::Result<Conn> {
    let mut c = connect(a)?;
    c.imap_ok(&format!("LOGIN {} {}", quote(&a.user), quote(&a.password)))?;
    Ok(c)
}

fn pop_login(a: &Account) -> anyhow::Result<Conn> {
    let mut c = connect(a)?;
    c.pop(&format!("USER {}", a.user))?;
    c.pop(&format!("PASS {}", a.password))?;
    Ok(c)
}

/// One message of a listing.
#[derive(serde::Serialize)]
pub struct Listed {
    /// The POP3 message number or the IMAP UID.
    pub id: u32,
    pub size: u64,
    pub from: String,
    pub subject: String,
}

/// A field of a header section (RFC 5322, unfolded), or "".
fn header(section: &str, name: &str) -> String {
    applab_proto::message::fields(section.as_bytes(), 200)
        .into_iter()
        .find(|f| f.name_is(name))
        .map(|f| f.value_text())
        .unwrap_or_default()
}

pub fn list(a: &Account) -> anyhow::Result<Vec<Listed>> {
    let mut out = Vec::new();
    if a.imap {
        let mut c = imap_login(a)?;
        c.imap_ok(&format!("EXAMINE {}", quote(&a.folder)))?;
        let lines =
            c.imap_ok("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")?;
        for l in lines.iter().filter(|l| l.contains(" FETCH (")) {
            let num = |key: &str| -> u64 {
                l.split(key)
                    .nth(1)
                    .and_then(|r| r.split([' ', ')']).next())
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0)
            };
            // The literal after the FETCH line is the header section.
            let hl = l.split_once("\r\n").map_or("", |(_, h)| h);
            out.push(Listed {
                id: num("UID ") as u32,
                size: num("RFC822.SIZE "),
                from: header(hl, "From"),
                subject: header(hl, "Subject"),
            });
        }
        c.imap_ok("LOGOUT")?;
    } else {
        let mut c = pop_login(a)?;
        c.pop("LIST")?;
        let sizes = c.pop_multi()?;
        for s in sizes {
            let mut w = s.split_whitespace();
            let (Some(n), Some(size)) = (w.next(), w.next()) else {
                continue;
            };
            let n: u32 = n.parse().unwrap_or(0);
            c.pop(&format!("TOP {n} 0"))?;
            let head = c.pop_multi()?.join("\r\n");
            out.push(Listed {
                id: n,
                size: size.parse().unwrap_or(0),
                from: header(&head, "From"),
                subject: header(&head, "Subject"),
            });
        }
        c.pop("QUIT")?;
    }
    Ok(out)
}

/// The message (or its header only); over POP3 deleted unless `keep`.
pub fn read(a: &Account, id: u32, headers_only: bool, keep: bool) -> anyhow::Result<String> {
    if a.imap {
        let mut c = imap_login(a)?;
        c.imap_ok(&format!("SELECT {}", quote(&a.folder)))?;
        let item = if headers_only {
            "BODY.PEEK[HEADER]"
        } else {
            "BODY[]"
        };
        let lines = c.imap_ok(&format!("UID FETCH {id} ({item})"))?;
        let msg = lines
            .iter()
            .find(|l| l.contains(" FETCH ("))
            .and_then(|l| {
                l.split_once("}\r\n")
                    .map(|(_, m)| m.trim_end_matches(')').to_string())
            })
            .ok_or_else(|| anyhow::anyhow!("no message with UID {id} in {}", a.folder))?;
        c.imap_ok("LOGOUT")?;
        Ok(msg)
    } else {
        let mut c = pop_login(a)?;
        if headers_only {
            c.pop(&format!("TOP {id} 0"))?;
        } else {
            c.pop(&format!("RETR {id}"))?;
        }
        let lines = c.pop_multi()?;
        if !keep && !headers_only {
            c.pop(&format!("DELE {id}"))?;
        }
        // Deletion happens now, in the UPDATE state after QUIT.
        c.pop("QUIT")?;
        Ok(lines.join("\n"))
    }
}

pub fn folders(a: &Account) -> anyhow::Result<Vec<String>> {
    let mut c = imap_login(a)?;
    let lines = c.imap_ok("LIST \"\" \"*\"")?;
    c.imap_ok("LOGOUT")?;
    Ok(lines
        .iter()
        .filter_map(|l| l.strip_prefix("* LIST "))
        .filter_map(|l| {
            l.rsplit_once(' ')
                .map(|(_, n)| n.trim_matches('"').to_string())
        })
        .collect())
}

/// Move a message (by UID) into a folder, creating the folder if needed.
pub fn move_to(a: &Account, uid: u32, folder: &str) -> anyhow::Result<()> {
    let mut c = imap_login(a)?;
    let (_, status) = c.imap(&format!("CREATE {}", quote(folder)))?;
    anyhow::ensure!(
        status.starts_with("OK") || status.contains("ALREADYEXISTS"),
        "CREATE {folder}: {status}"
    );
    c.imap_ok(&format!("SELECT {}", quote(&a.folder)))?;
    c.imap_ok(&format!("UID MOVE {uid} {}", quote(folder)))?;
    c.imap_ok("LOGOUT")?;
    Ok(())
}
