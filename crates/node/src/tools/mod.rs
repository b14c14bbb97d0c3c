//! Workstation tools, busybox-style applets of `applab-node`.

mod tcp;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Tool {
    /// Raw TCP client: lines typed are sent with CRLF, replies printed.
    Tcp(tcp::Args),
}

/// If called as an applet (`tcp ...`), run it and return its exit code.
pub fn dispatch_applet(name: &str) -> Option<ExitCode> {
    match name {
        "tcp" => {
            #[derive(Parser)]
            #[command(
                name = "tcp",
                version,
                about = "Raw TCP client: lines typed are sent with CRLF"
            )]
            struct A {
                #[command(flatten)]
                args: tcp::Args,
            }
            Some(tcp::run(A::parse().args))
        }
        _ => None,
    }
}

pub fn run(tool: Tool) -> ExitCode {
    match tool {
        Tool::Tcp(a) => tcp::run(a),
    }
}
