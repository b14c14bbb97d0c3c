//! `applab serve`: the controller (engine, reconcile loop, JSON API, panel), and where the images' ingredients come from.

use crate::paths;
use anyhow::{bail, Context, Result};
use applab_controller::{images, Controller};
use applab_runtime::docker::DockerRuntime;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct SourceArgs {
    /// Folder with one sub-folder per image (default: ./images or the install's).
    #[arg(long, env = "APPLAB_IMAGES")]
    pub images: Option<PathBuf>,
    /// The static applab-node binary (default: beside this binary).
    #[arg(long, env = "APPLAB_NODE_BINARY")]
    pub node_binary: Option<PathBuf>,
    /// A static busybox for the workstation (Debian's busybox-static).
    #[arg(long, env = "APPLAB_BUSYBOX", default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Use the lab images listed in this manifest instead of building them
    /// (the controller image's way).
    #[arg(long, env = "APPLAB_IMAGE_MANIFEST")]
    pub image_manifest: Option<PathBuf>,
}

impl SourceArgs {
    pub(crate) fn sources(&self, with_controller: bool) -> images::Sources {
        images::Sources {
            images_dir: self
                .images
                .clone()
                .unwrap_or_else(|| paths::shared_dir("images")),
            node_binary: self
                .node_binary
                .clone()
                .unwrap_or_else(|| paths::sibling_binary("applab-node")),
            busybox: self.busybox.clone(),
            applab_binary: with_controller
                .then(|| std::env::current_exe().unwrap_or_else(|_| "applab".into())),
            labs_dir: with_controller.then(|| paths::shared_dir("labs")),
            manifest: self.image_manifest.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the API (students' bridges are refused whatever this is).
    #[arg(long, env = "APPLAB_LISTEN", default_value = "0.0.0.0:7700")]
    pub listen: SocketAddr,
    /// Store, lab snapshots and the instructor token.
    #[arg(long, env = "APPLAB_DATA", default_value = "data")]
    pub data: PathBuf,
    /// Address pool for student networks (keep it clear of the host's).
    #[arg(long, env = "APPLAB_POOL", default_value = "10.213.0.0/16")]
    pub pool: ipnet::Ipv4Net,
    /// Prefix length of one student network.
    #[arg(long, default_value_t = 26)]
    pub prefix: u8,
    /// Students set up at once.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    /// Seconds between full reconcile passes.
    #[arg(long, default_value_t = 15)]
    pub interval: u64,
    /// Pcap kept per student network, in MiB (oldest frames dropped first).
    #[arg(long, default_value_t = 64)]
    pub capture_mib: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "APPLAB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "APPLAB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The panel's address as students type it (printed, and put on the
    /// credentials sheets); default: this host's address and the port.
    #[arg(long, env = "APPLAB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The labs the instructor's panel offers to launch (default: the
    /// installed `labs/` folder).
    #[arg(long, env = "APPLAB_LABS")]
    pub labs: Option<PathBuf>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// The address students reach the panel at: the host's address on its
/// default route (no packet is sent to find it), or loopback.
fn public_url(scheme: &str, local: SocketAddr) -> String {
    let ip = if local.ip().is_unspecified() {
        std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|u| u.connect("192.0.2.1:9").map(|_| u))
            .and_then(|u| u.local_addr())
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    } else {
        local.ip()
    };
    format!("{scheme}://{}/", SocketAddr::new(ip, local.port()))
}

pub async fn serve(a: ServeArgs) -> Result<ExitCode> {
    if a.prefix <= a.pool.prefix_len() || a.prefix > 29 {
        bail!(
            "--prefix {} must be longer than the pool's /{} and at most 29",
            a.prefix,
            a.pool.prefix_len()
        );
    }
    let rt = Arc::new(
        DockerRuntime::connect()
            .await
            .context("connecting to the Docker engine")?,
    );
    let cfg = applab_controller::Config {
        data_dir: a.data.clone(),
        pool: a.pool,
        prefix: a.prefix,
        parallel: a.parallel,
        interval: Duration::from_secs(a.interval.max(1)),
        sources: a.sources.sources(false),
        capture_bytes: a.capture_mib << 20,
    };
    let ctrl = Controller::new(cfg, rt).await?;
    let token = instructor_token(&a.data)?;
    ctrl.images().await.context("preparing lab images")?;
    ctrl.install_grader();
    tokio::spawn(ctrl.clone().run_loop());
    tokio::spawn(ctrl.clone().grade_loop());
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        tracing::info!("shutting down");
    };
    let labs = a.labs.clone().unwrap_or_else(|| paths::shared_dir("labs"));
    let opts = applab_web::ServeOptions {
        listen: a.listen,
        tls: a.tls_cert.clone().zip(a.tls_key.clone()),
        labs: labs.is_dir().then_some(labs),
    };
    let bound = applab_web::bind(&ctrl, &opts).await?;
    let url = a
        .public_url
        .clone()
        .unwrap_or_else(|| public_url(bound.scheme(), bound.local));
    // Students and the instructor read this line; it goes to stderr with the
    // log, and to stdout for scripts.
    eprintln!("applab panel: {url} (students log in with their credentials sheet)");
    if let Some(password) = ctrl.first_instructor().await? {
        eprintln!(
            "applab panel: instructor login at {}/staff/login: account instructor, password {password} \
             (shown once; `applab instructor add NAME` makes more accounts)",
            url.trim_end_matches('/')
        );
    }
    println!("{url}");
    applab_web::serve(ctrl, bound, token, url, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The instructor token: made once, kept in DATA/instructor.token (0600).
fn instructor_token(data: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = data.join("instructor.token");
    if let Ok(t) = std::fs::read_to_string(&p) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("writing {}", p.display()))?;
    writeln!(f, "{token}")?;
    eprintln!("instructor token written to {}", p.display());
    Ok(token)
}
