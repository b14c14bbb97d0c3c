//! `applab`: the instructor's command.
//!
//! `applab serve` runs the controller (engine, reconcile loop, JSON API).
//! The other verbs are clients of that API, except `lab validate` and
//! `images build`, which work with no server running.

mod client;
mod paths;
mod verbs;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "applab",
    version,
    about = "Hands-on application-layer labs: one isolated topology per student"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// How the instructor verbs reach the controller.
#[derive(Args, Clone)]
pub struct Conn {
    /// The controller's API.
    #[arg(
        long,
        env = "APPLAB_URL",
        default_value = "http://127.0.0.1:7700",
        global = true
    )]
    pub url: String,
    /// Instructor token (default: read from DATA/instructor.token).
    #[arg(long, env = "APPLAB_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// The controller's data folder (for the token file).
    #[arg(long, env = "APPLAB_DATA", default_value = "data", global = true)]
    pub data: PathBuf,
    /// Which run, when several exist (default: the one `applab use` chose).
    #[arg(long, global = true)]
    pub run: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the controller: engine, reconcile loop, JSON API.
    Serve(verbs::ServeArgs),
    /// Lab files.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// Lab images.
    Images {
        #[command(subcommand)]
        cmd: ImagesCmd,
    },
    /// Launch a lab for a roster (again: adds late students, keeps the rest).
    Launch(verbs::LaunchArgs),
    /// Panel accounts for instructors and teaching assistants.
    Instructor {
        #[command(subcommand)]
        cmd: InstructorCmd,
    },
    /// Show every student's topology.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Recreate a student's topology from scratch.
    Reset {
        student: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop one node of a student's topology (it stays stopped until started).
    Stop {
        student: String,
        node: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start a node stopped with `applab stop`.
    Start {
        student: String,
        node: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change a link's delay, rate or loss while the lab runs (one student or `all`).
    Shape(verbs::ShapeArgs),
    /// Remove a run's topologies (or one student's) and everything of theirs.
    Teardown {
        /// Only this student.
        #[arg(long)]
        student: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Run a command in a student's node.
    Exec {
        student: String,
        node: String,
        /// The command and its arguments (after --).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List students' panel credentials, or reissue them.
    Credentials(verbs::CredentialsArgs),
    /// Show a student's parameter values.
    Params {
        student: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// A student's captured traffic: frames, protocol events, or a pcap.
    Capture(verbs::CaptureArgs),
    /// Evaluate the checks now; each student's tasks and checks with expected and seen.
    Check(verbs::CheckArgs),
    /// Grades: a row per student, a column per task (csv, json, canvas, moodle).
    Grades(verbs::GradesArgs),
    /// A student's check history: every change of verdict, and their answers.
    History {
        student: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Submit a student's answer to a task's question (as the panel's form does).
    Answer(verbs::AnswerArgs),
    /// Choose the run commands work on without --run (or show the runs).
    Use {
        /// The run; without it, the runs and the current choice.
        run: Option<String>,
        /// Forget the choice.
        #[arg(long, conflicts_with = "run")]
        clear: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

impl Cmd {
    /// The connection of a verb that works on one run, so the run `applab
    /// use` chose fills a missing --run. Launch names its run itself.
    fn run_conn(&mut self) -> Option<&mut Conn> {
        match self {
            Cmd::Status { conn }
            | Cmd::Reset { conn, .. }
            | Cmd::Stop { conn, .. }
            | Cmd::Start { conn, .. }
            | Cmd::Teardown { conn, .. }
            | Cmd::Exec { conn, .. }
            | Cmd::Params { conn, .. }
            | Cmd::History { conn, .. } => Some(conn),
            Cmd::Shape(a) => Some(&mut a.conn),
            Cmd::Credentials(a) => Some(&mut a.conn),
            Cmd::Capture(a) => Some(&mut a.conn),
            Cmd::Check(a) => Some(&mut a.conn),
            Cmd::Grades(a) => Some(&mut a.conn),
            Cmd::Answer(a) => Some(&mut a.conn),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
enum LabCmd {
    /// Check lab files; every error as file:line:col: message.
    Validate {
        /// Lab folders (or lab.toml files).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum InstructorCmd {
    /// Add an account (or give it a new password); prints a one-time password.
    Add {
        /// The login name (letters, digits, '-', '_', '.').
        name: String,
        /// A teaching assistant: sees everything, may reset students and
        /// stop/start nodes, may not launch, tear down or export.
        #[arg(long)]
        assistant: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
enum ImagesCmd {
    /// Build one FROM-scratch image per role (skipped when unchanged).
    Build(verbs::ImagesArgs),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(conn) = cli.cmd.run_conn() {
        if conn.run.is_none() {
            conn.run = verbs::current_run(&conn.data);
        }
    }
    init_logging(if matches!(cli.cmd, Cmd::Serve(_)) {
        "info"
    } else {
        "warn"
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("applab: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve(a) => verbs::serve(a).await,
            Cmd::Lab {
                cmd: LabCmd::Validate { paths, json },
            } => verbs::validate(&paths, json),
            Cmd::Images {
                cmd: ImagesCmd::Build(a),
            } => verbs::images_build(a).await,
            Cmd::Launch(a) => verbs::launch(a).await,
            Cmd::Instructor {
                cmd:
                    InstructorCmd::Add {
                        name,
                        assistant,
                        conn,
                    },
            } => verbs::instructor_add(&conn, &name, assistant).await,
            Cmd::Instructor {
                cmd: InstructorCmd::List { conn },
            } => verbs::instructor_list(&conn).await,
            Cmd::Status { conn } => verbs::status(&conn).await,
            Cmd::Reset { student, conn } => verbs::reset(&conn, &student).await,
            Cmd::Stop {
                student,
                node,
                conn,
            } => verbs::node(&conn, &student, &node, false).await,
            Cmd::Start {
                student,
                node,
                conn,
            } => verbs::node(&conn, &student, &node, true).await,
            Cmd::Shape(a) => verbs::shape(a).await,
            Cmd::Teardown { student, conn } => verbs::teardown(&conn, student.as_deref()).await,
            Cmd::Exec {
                student,
                node,
                cmd,
                conn,
            } => verbs::exec(&conn, &student, &node, &cmd).await,
            Cmd::Credentials(a) => verbs::credentials(a).await,
            Cmd::Params { student, conn } => verbs::params(&conn, &student).await,
            Cmd::Capture(a) => verbs::capture(a).await,
            Cmd::Check(a) => verbs::check(a).await,
            Cmd::Grades(a) => verbs::grades(a).await,
            Cmd::Answer(a) => verbs::answer(a).await,
            Cmd::History { student, conn } => verbs::history(&conn, &student).await,
            Cmd::Use { run, clear, conn } => verbs::use_run(&conn, run.as_deref(), clear).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("applab: {e:#}");
            ExitCode::FAILURE
        }
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
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
}
