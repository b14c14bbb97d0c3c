//! `tcp HOST PORT`: a telnet-like raw TCP client.
//!
//! Students type protocol messages by hand with it: every line read from
//! standard input is sent with CRLF (as HTTP, SMTP, POP3 and IMAP expect),
//! and whatever the server sends is printed as it arrives. `--probe` only
//! tries to connect, for liveness and isolation checks.

use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Only test whether a connection can be opened; exit 0 if it can.
    #[arg(long)]
    pub probe: bool,
    /// Connect timeout in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

pub fn run(args: Args) -> ExitCode {
    let timeout = Duration::from_millis(args.timeout_ms);
    let addrs = match (args.host.as_str(), args.port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            eprintln!("tcp: cannot resolve {}: {e}", args.host);
            return ExitCode::from(2);
        }
    };
    let mut stream = None;
    let mut last_err = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                stream = Some((s, *a));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some((stream, addr)) = stream else {
        let why = last_err
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no address".into());
        if args.probe {
            println!("closed {}:{} ({why})", args.host, args.port);
        } else {
            eprintln!("tcp: cannot connect to {}:{}: {why}", args.host, args.port);
        }
        return ExitCode::from(1);
    };
    if args.probe {
        println!("open {}:{} ({addr})", args.host, args.port);
        return ExitCode::SUCCESS;
    }
    eprintln!("connected to {addr}; lines are sent with CRLF, end with Ctrl-D");
    let mut reader = match stream.try_clone() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let printer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
    });
    let mut writer = stream;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if writer.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            break;
        }
    }
    // Half-close so the server sees the end of our input and can finish.
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let _ = printer.join();
    ExitCode::SUCCESS
}
