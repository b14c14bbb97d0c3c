//! `applab-node`: the one binary every lab container runs.
//!
//! Roles are subcommands (`applab-node origin ...`). Workstation tools are
//! applets, like busybox: the image links `tcp` to this binary and it
//! dispatches on the name it was called by; `applab-node tool tcp ...` is the
//! same thing spelled out.

mod accept;
mod alloc;
mod dns;
mod http_limits;
mod logbuf;
mod mail;
mod origin;
mod probe;
mod proxy;
mod tools;
mod workstation;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: alloc::Switch = alloc::Switch;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "applab-node",
    version,
    about = "applab's lab node: one binary, a role per subcommand"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// HTTP origin server serving a directory.
    Origin(origin::Args),
    /// Caching HTTP proxy: forward (for browsers) or reverse (in front of an origin).
    Proxy(proxy::Args),
    /// Mail server for one domain: SMTP, its queue and relay, Maildir delivery.
    Mail(mail::Args),
    /// Authoritative DNS server for the lab's zones (UDP and TCP).
    Dns(dns::Args),
    /// The student's workstation: stays up, answers an echo service, hosts the tools.
    Workstation(workstation::Args),
    /// Print this node's state as JSON, for the checks (mail, shop, proxy).
    Probe {
        #[command(subcommand)]
        probe: probe::Probe,
    },
    /// Run a workstation tool (the same as calling it by its link name).
    Tool {
        #[command(subcommand)]
        tool: tools::Tool,
    },
}

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    // Called through an applet link: parse the applet's own arguments.
    if let Some(code) = tools::dispatch_applet(&name) {
        return code;
    }
    let cli = Cli::parse();
    match cli.role {
        Role::Tool { tool } => tools::run(tool),
        Role::Probe { probe } => probe::run(probe),
        // The origin runs its own event loop per worker thread.
        Role::Origin(args) => {
            alloc::use_mimalloc();
            serve(Some(1), || origin::run(args))
        }
        Role::Proxy(args) => {
            alloc::use_mimalloc();
            serve(None, || proxy::run(args))
        }
        Role::Workstation(args) => serve(None, || workstation::run(args)),
        Role::Dns(args) => serve(Some(1), || dns::run(args)),
        Role::Mail(args) => {
            alloc::use_mimalloc();
            serve(None, || mail::run(args))
        }
    }
}

/// Run a long-lived role on a tokio runtime with logs on stderr; `threads`
/// worker threads (default: one per core).
fn serve<F, Fut>(threads: Option<usize>, f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging("info");
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    let rt = match b.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("applab-node: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = f() => r,
            _ = shutdown_signal() => Ok(()),
        }
    });
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    logbuf::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// PID 1 in a container gets no default signal handlers: exit on TERM/INT
/// ourselves so `docker stop` is quick.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Logs to stderr; `RUST_LOG` as `target=level,...` or a bare level.
fn init_logging(default: &str) {
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    let filter: tracing_subscriber::filter::Targets = spec.parse().unwrap_or_else(|e| {
        eprintln!("ignoring RUST_LOG={spec:?}: {e}");
        default.parse().expect("the default filter parses")
    });
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_ansi(terminal);
    if terminal {
        // Someone is watching: every line at once.
        tracing_subscriber::registry()
            .with(layer.with_writer(std::io::stderr))
            .with(filter)
            .init();
    } else {
        logbuf::start();
        tracing_subscriber::registry()
            .with(
                layer
                    .event_format(logbuf::Compact)
                    .with_writer(logbuf::Batched),
            )
            .with(filter)
            .init();
    }
}
