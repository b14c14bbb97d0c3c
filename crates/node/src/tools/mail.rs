//! `mail`: the workstation's mail user agent. `mail send` composes a
//! message (header lines and body) and submits it over SMTP to the
//! student's own domain's server, printing the whole dialogue, so the
//! three phases can be seen before they are typed by hand with `tcp`.
//! Reading mail (POP3 and IMAP) is in `mailread`.

use crate::dns::client::server_addr;
use crate::mail::client::Client;
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Compose and send a message over SMTP, showing the dialogue.
    Send(SendArgs),
    /// List the messages of a mailbox (POP3, or IMAP with --imap).
    List {
        #[command(flatten)]
        account: super::mailread::Account,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a message: over POP3 by number, deleted at QUIT unless --keep;
    /// over IMAP by UID, left on the server.
    Read {
        /// POP3 message number, or IMAP UID.
        id: u32,
        #[command(flatten)]
        account: super::mailread::Account,
        /// Keep the message on the server (POP3 download-and-keep).
        #[arg(long)]
        keep: bool,
        /// Only the header lines (POP3 TOP n 0; IMAP BODY.PEEK[HEADER]).
        #[arg(long)]
        headers: bool,
    },
    /// IMAP: the folders of a mailbox.
    Folders {
        #[command(flatten)]
        account: super::mailread::Account,
    },
    /// IMAP: move a message (by UID) into a folder, created if missing.
    Move {
        uid: u32,
        to: String,
        #[command(flatten)]
        account: super::mailread::Account,
    },
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The SMTP server (`HOST[:PORT]`, port 25 by default).
    #[arg(long, short = 's')]
    pub server: String,
    /// Envelope sender (MAIL FROM); also the From: line unless --header-from.
    #[arg(long, short = 'f')]
    pub from: String,
    /// Envelope recipient (RCPT TO); repeat for more. Also the To: line unless --header-to.
    #[arg(long, short = 't', required = true)]
    pub to: Vec<String>,
    /// The From: header line, when it should differ from the envelope.
    #[arg(long)]
    pub header_from: Option<String>,
    /// The To: header line, when it should differ from the envelope.
    #[arg(long)]
    pub header_to: Option<String>,
    #[arg(long, default_value = "")]
    pub subject: String,
    /// The body; read from standard input when absent.
    #[arg(long, short = 'b')]
    pub body: Option<String>,
    /// More header lines (`-H 'X-Lab: 1'`).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Authenticate (AUTH PLAIN) as this user...
    #[arg(long)]
    pub user: Option<String>,
    /// ...with this password.
    #[arg(long)]
    pub password: Option<String>,
    /// The name we give in EHLO.
    #[arg(long, default_value = "workstation")]
    pub helo: String,
    /// Do not print the dialogue.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let r = match args.cmd {
        Cmd::Send(a) => super::block_on(send(a)),
        Cmd::List { account, json } => super::mailread::list(&account).map(|l| {
            if json {
                println!("{}", serde_json::to_string_pretty(&l).unwrap_or_default());
            } else {
                for m in l {
                    println!("{:>5} {:>8} {:<30} {}", m.id, m.size, m.from, m.subject);
                }
            }
            ExitCode::SUCCESS
        }),
        Cmd::Read {
            id,
            account,
            keep,
            headers,
        } => super::mailread::read(&account, id, headers, keep).map(|m| {
            if account.quiet {
                println!("{m}");
            }
            ExitCode::SUCCESS
        }),
        Cmd::Folders { mut account } => super::mailread::folders({
            account.imap = true;
            &account
        })
        .map(|f| {
            for x in f {
                println!("{x}");
            }
            ExitCode::SUCCESS
        }),
        Cmd::Move { uid, to, account } => {
            let mut a = account;
            a.imap = true;
            super::mailread::move_to(&a, uid, &to).map(|_| ExitCode::SUCCESS)
        }
    };
    super::finish("mail", r)
}

/// The message as a user agent writes it (RFC 5322).
fn compose(a: &SendArgs, body: &str) -> Vec<u8> {
    let host = a.helo.as_str();
    let id = format!("{:016x}", rand::random::<u64>());
    let mut m = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}@{host}>\r\n",
        a.header_from.as_deref().unwrap_or(&a.from),
        a.header_to.clone().unwrap_or_else(|| a.to.join(", ")),
        a.subject,
        crate::mail::rfc5322_date(std::time::SystemTime::now()),
    );
    if !body.is_ascii() {
        m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n");
    }
    for h in &a.headers {
        m.push_str(h.trim_end());
        m.push_str("\r\n");
    }
    m.push_str("\r\n");
    // Lines end in CRLF on the wire whatever the terminal typed.
    for line in body.lines() {
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.into_bytes()
}

async fn send(a: SendArgs) -> anyhow::Result<ExitCode> {
    let body = match &a.body {
        Some(b) => b.clone(),
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
    };
    let message = compose(&a, &body);
    let addr = server_addr(&a.server, 25).await?;
    let quiet = a.quiet || a.json;
    let trace: crate::mail::client::Trace = Box::new(move |sent, line| {
        if !quiet {
            println!("{} {line}", if sent { "C:" } else { "S:" });
        }
    });
    let mut c = Client::connect(addr, &a.helo, Duration::from_secs(10), Some(trace)).await?;
    if let Some(u) = &a.user {
        let p = a
            .password
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--user needs --password"))?;
        let r = c.auth_plain(u, p).await?;
        anyhow::ensure!(
            r.code == 235,
            "authentication refused: {} {}",
            r.code,
            r.lines.join(" ")
        );
    }
    let outcomes = c.transaction(&a.from, &a.to, &message).await?;
    c.quit().await;
    let mut ok = true;
    let mut results = Vec::new();
    for (to, o) in a.to.iter().zip(&outcomes) {
        let (state, text) = match o {
            crate::mail::client::Outcome::Delivered(t) => ("accepted", t),
            crate::mail::client::Outcome::Temporary(t) => ("deferred", t),
            crate::mail::client::Outcome::Permanent(t) => ("refused", t),
        };
        ok &= state == "accepted";
        results.push(serde_json::json!({"to": to, "result": state, "reply": text}));
        if !a.json {
            eprintln!("mail: {to}: {state} ({text})");
        }
    }
    if a.json {
        println!(
            "{:#}",
            serde_json::json!({"server": addr.to_string(), "recipients": results})
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
