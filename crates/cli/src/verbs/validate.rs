//! `applab lab validate`: lab files checked, every error as file:line:col.

use anyhow::Result;
use applab_lab::Lab;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn validate(paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut failed = false;
    let mut report = Vec::new();
    for p in paths {
        match Lab::load(p) {
            Ok(lab) => {
                if !json {
                    println!(
                        "{}: ok: lab {} ({} nodes, {} networks, {} tasks, {} parameters)",
                        p.display(),
                        lab.name,
                        lab.nodes.len(),
                        lab.networks.len(),
                        lab.tasks.len(),
                        lab.parameters.len()
                    );
                }
                report.push(json!({ "path": p, "ok": true, "lab": lab.name }));
            }
            Err(d) => {
                failed = true;
                if !json {
                    for e in &d.0 {
                        eprintln!("{e}");
                    }
                }
                let errors: Vec<_> = d
                    .0
                    .iter()
                    .map(|e| json!({ "file": e.file, "line": e.line, "col": e.col, "message": e.message }))
                    .collect();
                report.push(json!({ "path": p, "ok": false, "errors": errors }));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
