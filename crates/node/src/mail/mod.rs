//! The mail role: one domain's mail server.
//!
//! SMTP (`smtp`) receives: from the domain's own users (their user agents
//! submit here, authenticated or from a trusted network) and from other
//! domains' servers. Accepted messages are queued durably (`store`) and
//! delivered by the queue (`queue`): into the users' Maildirs, or relayed
//! to the other domain's server found through DNS (`client` speaks SMTP to
//! it). POP3 (`pop3`) and IMAP (`imap`) read the same Maildirs (`maildir`).

pub mod client;
mod conn;
mod imap;
pub mod maildir;
mod message;
mod pop3;
pub use message::rfc5322_date;
mod queue;
mod schedule;
mod smtp;
pub mod store;
mod users;

use applab_roles::MailConfig;
use applab_roles::{Size, Span};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The mail domain this server receives for (overrides the config's).
    #[arg(long)]
    pub domain: Option<String>,
    /// Where the queue and the mailboxes live.
    #[arg(long, default_value = "/data/mail")]
    pub data: PathBuf,
    /// SMTP listening address.
    #[arg(long, default_value = "0.0.0.0:25")]
    pub smtp: String,
    /// POP3 listening address (none: no POP3).
    #[arg(long)]
    pub pop3: Option<String>,
    /// IMAP listening address (none: no IMAP).
    #[arg(long)]
    pub imap: Option<String>,
    /// DNS server for MX lookups (`HOST[:PORT]`; default /etc/resolv.conf's).
    #[arg(long)]
    pub resolver: Option<String>,
    /// A users file: `[[users]]` tables with `name` and `password` or `password_hash`.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// The role's configuration (TOML: domain, users, relay_from, retry, expire, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A network trusted to relay without AUTH (CIDR; repeat for more).
    #[arg(long)]
    pub relay_from: Vec<String>,
    /// The name in the greeting and in Received lines (default mail.DOMAIN).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Port of the servers we relay to (25 in a lab).
    #[arg(long, default_value_t = 25)]
    pub relay_port: u16,
    /// Waits between delivery attempts, comma-separated, the last repeating ("5s,10s,30s").
    #[arg(long, value_delimiter = ',')]
    pub retry: Vec<Span>,
    /// Bounce what is still undelivered after this long ("10m").
    #[arg(long)]
    pub expire: Option<Span>,
    /// Largest message accepted ("10M").
    #[arg(long)]
    pub max_size: Option<Size>,
    /// Seconds a client may stay silent between commands.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Most simultaneous SMTP connections.
    #[arg(long, default_value_t = 100)]
    pub max_connections: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = match &args.config {
        Some(p) => MailConfig::load(p).map_err(anyhow::Error::msg)?,
        None => MailConfig::default(),
    };
    let domain = args
        .domain
        .clone()
        .unwrap_or(cfg.domain.clone())
        .trim_end_matches('.')
        .to_ascii_lowercase();
    anyhow::ensure!(
        !domain.is_empty(),
        "no mail domain: give --domain or `domain` in --config"
    );
    let hostname = args
        .hostname
        .clone()
        .or(cfg.hostname.clone())
        .unwrap_or_else(|| format!("mail.{domain}"));
    let mut users = users::Users::from_list(&cfg.users).map_err(anyhow::Error::msg)?;
    if let Some(p) = &args.users {
        users.merge(users::Users::load(p).map_err(anyhow::Error::msg)?);
    }
    let mut relay_from = Vec::new();
    for n in cfg.relay_from.iter().chain(&args.relay_from) {
        relay_from.push(
            n.parse::<ipnet::IpNet>()
                .map_err(|e| anyhow::anyhow!("relay_from {n:?}: {e}"))?,
        );
    }
    let max_size = args.max_size.or(cfg.max_size).map_or(10 << 20, Size::bytes);
    let retry_spec = if args.retry.is_empty() {
        &cfg.retry
    } else {
        &args.retry
    };
    let retry: Vec<Duration> = retry_spec.iter().map(|r| r.duration()).collect();
    let expire = args
        .expire
        .or(cfg.expire)
        .map_or(schedule::Schedule::default().expire, Span::duration);
    let store = store::Store::open(&args.data, &hostname)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.data.display()))?;
    match store.seed(&domain, &cfg.seed) {
        Ok(0) => {}
        Ok(n) => tracing::info!(messages = n, "mailboxes seeded"),
        Err(e) => anyhow::bail!("seeding the mailboxes: {e}"),
    }
    let queue = queue::Queue::open(
        store,
        queue::Settings {
            domain: domain.clone(),
            hostname: hostname.clone(),
            resolver: args.resolver.clone().or(cfg.resolver.clone()),
            relay_port: args.relay_port,
            schedule: schedule::Schedule::new(retry, expire),
            connect_timeout: Duration::from_secs(5),
        },
        users.clone(),
    )?;
    if let Some(addr) = &args.pop3 {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("pop3 listen on {addr}: {e}"))?;
        let p = Arc::new(pop3::Server {
            domain: domain.clone(),
            hostname: hostname.clone(),
            users: users.clone(),
            store: queue.store.clone(),
            locks: Default::default(),
            idle: Duration::from_secs(600),
            max_connections: args.max_connections.max(1),
        });
        tracing::info!(pop3 = %addr, "pop3 listening");
        tokio::spawn(async move {
            if let Err(e) = pop3::serve(l, p).await {
                tracing::error!("pop3: {e:#}");
            }
        });
    }
    if let Some(addr) = &args.imap {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("imap listen on {addr}: {e}"))?;
        let i = Arc::new(imap::Server::new(
            domain.clone(),
            hostname.clone(),
            users.clone(),
            queue.store.clone(),
            args.max_connections.max(1),
        ));
        tracing::info!(imap = %addr, "imap listening");
        tokio::spawn(async move {
            if let Err(e) = imap::serve(l, i).await {
                tracing::error!("imap: {e:#}");
            }
        });
    }
    let server = Arc::new(smtp::Server {
        domain: domain.clone(),
        hostname,
        users,
        relay_from,
        max_size,
        queue: queue.clone(),
        idle: Duration::from_secs(args.idle_timeout.max(1)),
        max_connections: args.max_connections.max(1),
    });
    let listener = tokio::net::TcpListener::bind(&args.smtp)
        .await
        .map_err(|e| anyhow::anyhow!("smtp listen on {}: {e}", args.smtp))?;
    tracing::info!(
        domain = %domain,
        smtp = %args.smtp,
        users = server.users.names().count(),
        queued = queue.snapshot().len(),
        "mail server up"
    );
    tokio::spawn(queue.run());
    smtp::serve(listener, server).await
}
