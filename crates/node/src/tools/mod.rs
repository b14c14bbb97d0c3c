//! Workstation tools, busybox-style applets of `applab-node`.

mod http;
mod load;
mod lookup;
mod mail;
pub mod mailq;
mod mailread;
mod tcp;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Tool {
    /// Raw TCP client: lines typed are sent with CRLF, replies printed.
    Tcp(tcp::Args),
    /// HTTP client that prints the messages as sent and received.
    Http(http::Args),
    /// DNS lookup (like dig): question, answer, authority, flags, UDP or TCP.
    Lookup(lookup::Args),
    /// Mail user agent: send over SMTP, read over POP3 or IMAP, showing the dialogue.
    Mail(mail::Args),
    /// A mail node's queue and mailboxes (run inside the node).
    Mailq(mailq::Args),
}

/// If called as an applet (`tcp ...`), run it and return its exit code.
pub fn dispatch_applet(name: &str) -> Option<ExitCode> {
    // The applet's own command line: `tcp --help` names `tcp`, not the role.
    #[derive(Parser)]
    #[command(version)]
    struct Applet<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    fn parse<A: clap::Args>(name: &'static str, about: &'static str) -> A {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = Applet::<A>::command().name(name).about(about);
        let m = cmd.get_matches();
        match Applet::<A>::from_arg_matches(&m) {
            Ok(a) => a.args,
            Err(e) => e.exit(),
        }
    }
    match name {
        "tcp" => Some(tcp::run(parse(
            "tcp",
            "Raw TCP client: lines typed are sent with CRLF",
        ))),
        "http" => Some(http::run(parse(
            "http",
            "HTTP client that prints the messages as sent and received",
        ))),
        "lookup" => Some(lookup::run(parse(
            "lookup",
            "DNS lookup: question, answer, authority, flags, UDP or TCP",
        ))),
        "mail" => Some(mail::run(parse(
            "mail",
            "Mail user agent: send over SMTP, read over POP3 or IMAP, showing the dialogue",
        ))),
        _ => None,
    }
}

/// Run an applet's async work on a small runtime of its own.
pub(crate) fn block_on<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// An applet's exit: errors printed as `NAME: error`.
pub(crate) fn finish(name: &str, r: anyhow::Result<ExitCode>) -> ExitCode {
    r.unwrap_or_else(|e| {
        eprintln!("{name}: {e:#}");
        ExitCode::FAILURE
    })
}

pub fn run(tool: Tool) -> ExitCode {
    match tool {
        Tool::Tcp(a) => tcp::run(a),
        Tool::Http(a) => http::run(a),
        Tool::Lookup(a) => lookup::run(a),
        Tool::Mail(a) => mail::run(a),
        Tool::Mailq(a) => mailq::run(a),
    }
}
