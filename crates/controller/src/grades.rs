//! Grades out: the class × task matrix as a file a gradebook imports.
//!
//! - `csv`: id, name, email, a column per task (points), total, percent;
//! - `json`: the matrix itself;
//! - `canvas`: Canvas's gradebook import: Student, ID, SIS User ID,
//!   SIS Login ID, Section, then one column per task, and a second row
//!   "Points Possible";
//! - `moodle`: Moodle's grade import, keyed by email address.
//!
//! Columns follow the lab's task order.

use crate::grading::Matrix;
use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Canvas,
    Moodle,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s {
            "csv" => Format::Csv,
            "json" => Format::Json,
            "canvas" => Format::Canvas,
            "moodle" => Format::Moodle,
            other => bail!("unknown grades format {other:?} (known: csv, json, canvas, moodle)"),
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            _ => "text/csv; charset=utf-8",
        }
    }
}

/// Points as a gradebook reads them: `1`, `0.5`.
pub fn pts(p: f64) -> String {
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn earned(m: &Matrix, row: &crate::grading::MatrixRow) -> Vec<String> {
    row.cells
        .iter()
        .zip(&m.tasks)
        .map(|(c, t)| {
            pts(if *c == applab_checks::Status::Pass {
                t.points
            } else {
                0.0
            })
        })
        .collect()
}

pub fn render(m: &Matrix, f: Format) -> Result<Vec<u8>> {
    if f == Format::Json {
        return Ok(serde_json::to_vec_pretty(m)?);
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let titles: Vec<String> = m
        .tasks
        .iter()
        .map(|t| format!("{} ({})", t.title, t.id))
        .collect();
    match f {
        Format::Csv => {
            let mut head = vec!["id".to_string(), "name".into(), "email".into()];
            head.extend(m.tasks.iter().map(|t| t.id.clone()));
            head.extend(["total".to_string(), "percent".into()]);
            w.write_record(&head)?;
            for r in &m.students {
                let mut rec = vec![r.id.clone(), r.name.clone(), r.email.clone()];
                rec.extend(earned(m, r));
                rec.push(pts(r.points));
                let pct = if r.max_points > 0.0 {
                    100.0 * r.points / r.max_points
                } else {
                    0.0
                };
                rec.push(format!("{pct:.1}"));
                w.write_record(&rec)?;
            }
        }
        Format::Canvas => {
            let mut head: Vec<String> = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            head.extend(titles.iter().cloned());
            w.write_record(&head)?;
            let mut possible = vec![
                "    Points Possible".to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ];
            possible.extend(m.tasks.iter().map(|t| pts(t.points)));
            w.write_record(&possible)?;
            for r in &m.students {
                let mut rec = vec![
                    r.name.clone(),
                    String::new(),
                    r.id.clone(),
                    r.email.clone(),
                    m.run.clone(),
                ];
                rec.extend(earned(m, r));
                w.write_record(&rec)?;
            }
        }
        Format::Moodle => {
            let mut head = vec!["Email address".to_string()];
            head.extend(titles.iter().cloned());
            head.push("Total".into());
            w.write_record(&head)?;
            for r in &m.students {
                let mut rec = vec![r.email.clone()];
                rec.extend(earned(m, r));
                rec.push(pts(r.points));
                w.write_record(&rec)?;
            }
        }
        Format::Json => unreachable!(),
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grading::{MatrixRow, MatrixTask};
    use applab_checks::Status;

    fn matrix() -> Matrix {
        Matrix {
            run: "sec-a".into(),
            lab: "http-basics".into(),
            tasks: vec![
                MatrixTask {
                    id: "connections".into(),
                    title: "Connections".into(),
                    points: 2.0,
                    passed: 1,
                },
                MatrixTask {
                    id: "methods".into(),
                    title: "Methods, typed".into(),
                    points: 1.0,
                    passed: 0,
                },
            ],
            students: vec![
                MatrixRow {
                    id: "s1".into(),
                    name: "Ada L".into(),
                    email: "ada@u.example".into(),
                    cells: vec![Status::Pass, Status::Fail],
                    points: 2.0,
                    max_points: 3.0,
                },
                MatrixRow {
                    id: "s2".into(),
                    name: "Bo".into(),
                    email: "bo@u.example".into(),
                    cells: vec![Status::Pending, Status::Pending],
                    points: 0.0,
                    max_points: 3.0,
                },
            ],
        }
    }

    #[test]
    fn every_format_in_task_order() {
        let m = matrix();
        let csv = String::from_utf8(render(&m, Format::Csv).unwrap()).unwrap();
        assert_eq!(
            csv,
            "id,name,email,connections,methods,total,percent\ns1,Ada L,ada@u.example,2,0,2,66.7\ns2,Bo,bo@u.example,0,0,0,0.0\n"
        );
        let canvas = String::from_utf8(render(&m, Format::Canvas).unwrap()).unwrap();
        let lines: Vec<&str> = canvas.lines().collect();
        assert_eq!(lines[0], "Student,ID,SIS User ID,SIS Login ID,Section,Connections (connections),\"Methods, typed (methods)\"");
        assert_eq!(lines[1], "    Points Possible,,,,,2,1");
        assert_eq!(lines[2], "Ada L,,s1,ada@u.example,sec-a,2,0");
        let moodle = String::from_utf8(render(&m, Format::Moodle).unwrap()).unwrap();
        assert!(moodle.starts_with("Email address,Connections (connections),\"Methods, typed (methods)\",Total\nada@u.example,2,0,2\n"), "{moodle}");
        let json: serde_json::Value =
            serde_json::from_slice(&render(&m, Format::Json).unwrap()).unwrap();
        assert_eq!(json["students"][0]["cells"][0], "pass");
        assert!(Format::parse("excel").is_err());
    }
}
