//! `applab images build`: one FROM-scratch image per role.

use super::SourceArgs;
use anyhow::{Context, Result};
use applab_controller::images;
use applab_runtime::docker::DockerRuntime;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Only these roles (default: every folder under images/).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn images_build(a: ImagesArgs) -> Result<ExitCode> {
    let src = a.sources.sources(true);
    let roles = if a.roles.is_empty() {
        images::roles(&src.images_dir)?
    } else {
        a.roles.clone()
    };
    let rt = DockerRuntime::connect()
        .await
        .context("connecting to the Docker engine")?;
    let multi = MultiProgress::new();
    let bars: BTreeMap<String, ProgressBar> = roles
        .iter()
        .map(|r| {
            let pb = multi.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>12} {wide_msg}").expect("style"),
            );
            pb.set_prefix(r.clone());
            pb.set_message("waiting");
            (r.clone(), pb)
        })
        .collect();
    let built = images::ensure(&rt, &src, &roles, &|p| match p {
        images::Progress::Start { role } => {
            bars[role].set_message("hashing the build context");
            bars[role].enable_steady_tick(Duration::from_millis(100));
        }
        images::Progress::Line { role, line } => bars[role].set_message(line.to_string()),
        images::Progress::Done { image } => {
            let what = if image.built { "built" } else { "unchanged" };
            bars[&image.role].finish_with_message(format!(
                "{what}: {} ({:.1} MB)",
                image.tag,
                image.bytes as f64 / 1e6
            ));
        }
    })
    .await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&built.values().collect::<Vec<_>>())?
        );
    } else if multi.is_hidden() {
        for i in built.values() {
            println!(
                "{}: {} {} ({} bytes, {})",
                i.role,
                i.tag,
                i.version_tag,
                i.bytes,
                if i.built { "built" } else { "unchanged" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
