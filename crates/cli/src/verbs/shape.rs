//! `applab shape`: a link's delay, rate or loss changed while the lab runs.

use super::print_done;
use crate::client::Client;
use crate::Conn;
use anyhow::{bail, Context, Result};
use applab_controller::api::{ShapeDone, ShapeRequest};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ShapeArgs {
    /// A student id, or `all` for every student of the run.
    pub student: String,
    pub node: String,
    pub network: String,
    /// One-way delay, e.g. 100ms (applies in both directions).
    #[arg(long)]
    pub delay: Option<String>,
    /// Rate in each direction, e.g. 150mbit; `none` lifts the limit.
    #[arg(long)]
    pub rate: Option<String>,
    /// Loss probability per frame each way, e.g. 0.01.
    #[arg(long)]
    pub loss: Option<f64>,
    #[command(flatten)]
    pub conn: Conn,
}

/// Change a link's shaping while the lab runs.
pub async fn shape(a: ShapeArgs) -> Result<ExitCode> {
    let delay_us = match &a.delay {
        Some(d) => Some(
            applab_lab::parse_duration_us(d)
                .with_context(|| format!("--delay {d:?}: use e.g. 100ms"))?,
        ),
        None => None,
    };
    let rate_bps = match a.rate.as_deref() {
        Some("none") => Some(0),
        Some(r) => Some(
            applab_lab::parse_rate_bps(r)
                .with_context(|| format!("--rate {r:?}: use e.g. 150mbit"))?,
        ),
        None => None,
    };
    if delay_us.is_none() && rate_bps.is_none() && a.loss.is_none() {
        bail!("nothing to change: give --delay, --rate or --loss");
    }
    let client = Client::new(&a.conn)?;
    let student = (a.student != "all").then_some(a.student.as_str());
    let body = ShapeRequest {
        run: a.conn.run.clone(),
        student: student.map(str::to_string),
        node: a.node.clone(),
        network: a.network.clone(),
        delay_us,
        rate_bps,
        loss: a.loss,
    };
    let r: ShapeDone = client.post("/api/shape", &body).await?;
    let n = r.students.len();
    print_done(
        &a.conn,
        &r,
        &format!(
            "{}/{}: shaping changed for {n} student(s)",
            a.node, a.network
        ),
    )
}
