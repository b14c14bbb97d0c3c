//! The desired state: an embedded SQLite database through sqlx.
//!
//! Plain SQL with runtime-checked queries keeps the door open to PostgreSQL
//! for a large department (same statements, another pool). Every change a
//! verb makes is written here first; the reconciler then makes the engine
//! match it, so a crash between the two is repaired by the next pass.

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{FromRow, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

mod sessions;
mod staff;
pub use sessions::SessionRow;
pub use staff::{check_staff, valid_staff_name, StaffRow, STAFF_ROLES};

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// SQLite fails a read-then-write transaction at once ("database is
    /// locked", no busy wait) when another writer committed in between, so
    /// every write of this process takes this lock: they run one at a time.
    write: std::sync::Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub name: String,
    pub lab_name: String,
    pub lab_dir: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct StudentRow {
    pub run: String,
    pub id: String,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub issued_at: i64,
    pub generation: i64,
    pub added_at: i64,
}

/// An instructor's change to one attachment's shaping (None: the lab's).
#[derive(Debug, Clone, Default, PartialEq, FromRow, serde::Serialize, serde::Deserialize)]
pub struct LinkOverride {
    pub node: String,
    pub network: String,
    pub delay_us: Option<i64>,
    pub rate_bps: Option<i64>,
    pub loss: Option<f64>,
}

/// A stored check result.
#[derive(Debug, Clone, FromRow, serde::Serialize, serde::Deserialize)]
pub struct ResultRow {
    pub run: String,
    pub student: String,
    pub task: String,
    pub check_id: String,
    pub status: String,
    pub expected: String,
    pub seen: String,
    /// JSON: the evidence list.
    pub evidence: String,
    pub first_passed_at: Option<f64>,
    pub updated_at: f64,
    pub changes: i64,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, serde::Deserialize)]
pub struct HistoryRow {
    pub task: String,
    pub check_id: String,
    pub status: String,
    pub seen: String,
    pub at: f64,
    pub decided_at: Option<f64>,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, serde::Deserialize)]
pub struct SubmissionRow {
    pub student: String,
    pub task: String,
    pub question: String,
    pub value: String,
    pub at: f64,
}

/// Now, in fractional Unix seconds.
pub fn now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (creating if needed) the database file and apply migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10))
            // In WAL mode, NORMAL survives any process crash (what convergence
            // is about); only a power cut may lose the last transactions.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening store {}", path.display()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("migrating store")?;
        Ok(Store {
            pool,
            write: Default::default(),
        })
    }

    pub async fn run(&self, name: &str) -> Result<Option<RunRow>> {
        Ok(sqlx::query_as("SELECT * FROM runs WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn runs(&self) -> Result<Vec<RunRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM runs ORDER BY created_at, name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Insert a run unless one of that name exists; returns the stored row.
    pub async fn create_run(
        &self,
        name: &str,
        lab_name: &str,
        lab_dir: &str,
        secret: &[u8],
    ) -> Result<RunRow> {
        let _w = self.write.lock().await;
        sqlx::query("INSERT OR IGNORE INTO runs (name, lab_name, lab_dir, secret, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(name)
            .bind(lab_name)
            .bind(lab_dir)
            .bind(secret)
            .bind(now())
            .execute(&self.pool)
            .await?;
        self.run(name).await?.context("run vanished after insert")
    }

    pub async fn delete_run(&self, name: &str) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("DELETE FROM runs WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Store checks' new verdicts (and their history lines) in one
    /// transaction, each with the capture time of the latest event it
    /// cites. A stored pass is kept unless `regrade` says otherwise.
    /// Returns, for each, whether it was written.
    pub async fn put_results(
        &self,
        rows: &[(ResultRow, Option<f64>)],
        regrade: bool,
    ) -> Result<Vec<bool>> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, decided_at) in rows {
            let old: Option<ResultRow> = sqlx::query_as(
                "SELECT * FROM results WHERE run = ? AND student = ? AND task = ? AND check_id = ?",
            )
            .bind(&r.run)
            .bind(&r.student)
            .bind(&r.task)
            .bind(&r.check_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(o) = &old {
                let kept_pass = o.status == "pass" && r.status != "pass" && !regrade;
                let same = o.status == r.status && o.seen == r.seen && o.evidence == r.evidence;
                if kept_pass || same {
                    out.push(false);
                    continue;
                }
            }
            let first_passed = old
                .as_ref()
                .and_then(|o| o.first_passed_at)
                .or((r.status == "pass").then_some(r.updated_at));
            let status_changed = old.as_ref().is_none_or(|o| o.status != r.status);
            let changes = old.as_ref().map_or(0, |o| o.changes) + status_changed as i64;
            sqlx::query(
                "INSERT INTO results (run, student, task, check_id, status, expected, seen, evidence, first_passed_at, updated_at, changes) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (run, student, task, check_id) DO UPDATE SET status = excluded.status, expected = excluded.expected, \
                 seen = excluded.seen, evidence = excluded.evidence, first_passed_at = excluded.first_passed_at, \
                 updated_at = excluded.updated_at, changes = excluded.changes",
            )
            .bind(&r.run)
            .bind(&r.student)
            .bind(&r.task)
            .bind(&r.check_id)
            .bind(&r.status)
            .bind(&r.expected)
            .bind(&r.seen)
            .bind(&r.evidence)
            .bind(first_passed)
            .bind(r.updated_at)
            .bind(changes)
            .execute(&mut *tx)
            .await?;
            if status_changed {
                sqlx::query("INSERT INTO result_history (run, student, task, check_id, status, seen, at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                    .bind(&r.run)
                    .bind(&r.student)
                    .bind(&r.task)
                    .bind(&r.check_id)
                    .bind(&r.status)
                    .bind(&r.seen)
                    .bind(r.updated_at)
                    .bind(decided_at)
                    .execute(&mut *tx)
                    .await?;
            }
            out.push(true);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A run's results (one student's, when given).
    pub async fn results(&self, run: &str, student: Option<&str>) -> Result<Vec<ResultRow>> {
        Ok(match student {
            Some(s) => {
                sqlx::query_as("SELECT * FROM results WHERE run = ? AND student = ?")
                    .bind(run)
                    .bind(s)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT * FROM results WHERE run = ?")
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?
            }
        })
    }

    /// Every stored verdict of a run as (student, task, check, status):
    /// what a class matrix needs, without the evidence and texts.
    pub async fn result_statuses(
        &self,
        run: &str,
    ) -> Result<Vec<(String, String, String, String)>> {
        Ok(
            sqlx::query_as("SELECT student, task, check_id, status FROM results WHERE run = ?")
                .bind(run)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn history(&self, run: &str, student: &str) -> Result<Vec<HistoryRow>> {
        Ok(sqlx::query_as(
            "SELECT task, check_id, status, seen, at, decided_at FROM result_history WHERE run = ? AND student = ? ORDER BY seq",
        )
        .bind(run)
        .bind(student)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn add_submission(&self, run: &str, s: &SubmissionRow) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("INSERT INTO submissions (run, student, task, question, value, at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(run)
            .bind(&s.student)
            .bind(&s.task)
            .bind(&s.question)
            .bind(&s.value)
            .bind(s.at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn submissions(&self, run: &str, student: &str) -> Result<Vec<SubmissionRow>> {
        Ok(sqlx::query_as(
            "SELECT student, task, question, value, at FROM submissions WHERE run = ? AND student = ? ORDER BY seq",
        )
        .bind(run)
        .bind(student)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn students(&self, run: &str) -> Result<Vec<StudentRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM students WHERE run = ? ORDER BY added_at, id")
                .bind(run)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn student(&self, run: &str, id: &str) -> Result<Option<StudentRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM students WHERE run = ? AND id = ?")
                .bind(run)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Add a student unless present; true if added (late joiners only).
    pub async fn add_student(&self, s: &StudentRow) -> Result<bool> {
        Ok(self.add_students(std::slice::from_ref(s)).await?[0])
    }

    /// A class at once, in one transaction: for each row, whether it is new
    /// (false: a student of that id was already in the run).
    pub async fn add_students(&self, rows: &[StudentRow]) -> Result<Vec<bool>> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut added = Vec::with_capacity(rows.len());
        for s in rows {
            let r = sqlx::query(
                "INSERT OR IGNORE INTO students (run, id, name, email, password_hash, issued_at, generation, added_at)
                 VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
            )
            .bind(&s.run)
            .bind(&s.id)
            .bind(&s.name)
            .bind(&s.email)
            .bind(&s.password_hash)
            .bind(s.issued_at)
            .bind(s.added_at)
            .execute(&mut *tx)
            .await?;
            added.push(r.rows_affected() == 1);
        }
        tx.commit().await?;
        Ok(added)
    }

    pub async fn delete_student(&self, run: &str, id: &str) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("DELETE FROM students WHERE run = ? AND id = ?")
            .bind(run)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_password(&self, run: &str, id: &str, hash: &str) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query(
            "UPDATE students SET password_hash = ?, issued_at = ? WHERE run = ? AND id = ?",
        )
        .bind(hash)
        .bind(now())
        .bind(run)
        .bind(id)
        .execute(&self.pool)
        .await?;
        // New credentials end the old ones' sessions.
        sqlx::query("DELETE FROM sessions WHERE role = 'student' AND subject = ? AND run = ?")
            .bind(id)
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Mark a student's topology for recreation: a new generation, every node running.
    pub async fn bump_generation(&self, run: &str, id: &str) -> Result<i64> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE students SET generation = generation + 1 WHERE run = ? AND id = ?")
            .bind(run)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM stopped_nodes WHERE run = ? AND student = ?")
            .bind(run)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let (g,): (i64,) =
            sqlx::query_as("SELECT generation FROM students WHERE run = ? AND id = ?")
                .bind(run)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(g)
    }

    pub async fn set_stopped(
        &self,
        run: &str,
        student: &str,
        node: &str,
        stopped: bool,
    ) -> Result<()> {
        let _w = self.write.lock().await;
        let q = if stopped {
            "INSERT OR IGNORE INTO stopped_nodes (run, student, node) VALUES (?, ?, ?)"
        } else {
            "DELETE FROM stopped_nodes WHERE run = ? AND student = ? AND node = ?"
        };
        sqlx::query(q)
            .bind(run)
            .bind(student)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record the instructor's change to one attachment's shaping.
    pub async fn set_link(&self, run: &str, student: &str, l: &LinkOverride) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query(
            "INSERT INTO link_overrides (run, student, node, network, delay_us, rate_bps, loss) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, student, node, network) DO UPDATE SET \
             delay_us = COALESCE(excluded.delay_us, delay_us), \
             rate_bps = COALESCE(excluded.rate_bps, rate_bps), \
             loss = COALESCE(excluded.loss, loss)",
        )
        .bind(run)
        .bind(student)
        .bind(&l.node)
        .bind(&l.network)
        .bind(l.delay_us)
        .bind(l.rate_bps)
        .bind(l.loss)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn links(&self, run: &str, student: &str) -> Result<Vec<LinkOverride>> {
        Ok(sqlx::query_as(
            "SELECT node, network, delay_us, rate_bps, loss FROM link_overrides \
             WHERE run = ? AND student = ?",
        )
        .bind(run)
        .bind(student)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn stopped(&self, run: &str, student: &str) -> Result<BTreeSet<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT node FROM stopped_nodes WHERE run = ? AND student = ?")
                .bind(run)
                .bind(student)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The subnets of a student's networks, allocating missing ones from the
    /// pool in one transaction (lowest free index first, skipping `exclude`).
    pub async fn allocate_subnets(
        &self,
        run: &str,
        student: &str,
        networks: &[String],
        pool: Ipv4Net,
        prefix: u8,
        exclude: &[Ipv4Net],
    ) -> Result<BTreeMap<String, Ipv4Net>> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT network, subnet FROM subnets WHERE run = ? AND student = ?")
                .bind(run)
                .bind(student)
                .fetch_all(&mut *tx)
                .await?;
        let mut out = BTreeMap::new();
        for (net, subnet) in rows {
            out.insert(net, subnet.parse::<Ipv4Net>().context("stored subnet")?);
        }
        let missing: Vec<&String> = networks.iter().filter(|n| !out.contains_key(*n)).collect();
        if !missing.is_empty() {
            let used: Vec<(i64,)> = sqlx::query_as("SELECT idx FROM subnets")
                .fetch_all(&mut *tx)
                .await?;
            let used: BTreeSet<i64> = used.into_iter().map(|r| r.0).collect();
            let mut candidates = pool
                .subnets(prefix)
                .context("subnet prefix must be longer than the pool's")?
                .enumerate()
                .filter(|(i, s)| {
                    !used.contains(&(*i as i64))
                        && !exclude.iter().any(|e| e.contains(s) || s.contains(e))
                });
            for net in missing {
                let (i, s) = candidates
                    .next()
                    .with_context(|| format!("address pool {pool} has no free /{prefix} left"))?;
                sqlx::query("INSERT INTO subnets (subnet, idx, run, student, network) VALUES (?, ?, ?, ?, ?)")
                    .bind(s.to_string())
                    .bind(i as i64)
                    .bind(run)
                    .bind(student)
                    .bind(net)
                    .execute(&mut *tx)
                    .await?;
                out.insert(net.clone(), s);
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hundred_students_of_a_two_network_lab_fit_the_default_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        store.create_run("big", "lab", "/x", b"k").await.unwrap();
        let pool: Ipv4Net = "10.213.0.0/16".parse().unwrap(); // `applab serve`'s default
        let nets = vec!["campus".to_string(), "internet".to_string()];
        let mut all = BTreeSet::new();
        for i in 0..100 {
            let id = format!("s{i:03}");
            store.add_student(&student("big", &id)).await.unwrap();
            for s in store
                .allocate_subnets("big", &id, &nets, pool, 26, &[])
                .await
                .unwrap()
                .into_values()
            {
                assert!(pool.contains(&s));
                assert!(all.insert(s), "{s} handed out twice");
            }
        }
        assert_eq!(all.len(), 200);
    }

    fn student(run: &str, id: &str) -> StudentRow {
        StudentRow {
            run: run.into(),
            id: id.into(),
            name: id.into(),
            email: format!("{id}@x"),
            password_hash: "h".into(),
            issued_at: 0,
            generation: 1,
            added_at: now(),
        }
    }

    #[tokio::test]
    async fn subnets_are_unique_stable_and_freed_with_the_student() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        store.create_run("r", "lab", "/x", b"k").await.unwrap();
        for id in ["a", "b"] {
            assert!(store.add_student(&student("r", id)).await.unwrap());
        }
        assert!(
            !store.add_student(&student("r", "a")).await.unwrap(),
            "a second add is a no-op"
        );
        let pool: Ipv4Net = "10.99.0.0/24".parse().unwrap();
        let nets = vec!["lan".to_string(), "wan".to_string()];
        let exclude: Vec<Ipv4Net> = vec!["10.99.0.64/26".parse().unwrap()];
        let a = store
            .allocate_subnets("r", "a", &nets, pool, 26, &exclude)
            .await
            .unwrap();
        let a2 = store
            .allocate_subnets("r", "a", &nets, pool, 26, &exclude)
            .await
            .unwrap();
        assert_eq!(a, a2);
        assert_eq!(a["lan"].to_string(), "10.99.0.0/26");
        assert_eq!(a["wan"].to_string(), "10.99.0.128/26");
        let err = store
            .allocate_subnets("r", "b", &nets, pool, 26, &exclude)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no free"), "{err}");
        store.delete_student("r", "a").await.unwrap();
        let b = store
            .allocate_subnets("r", "b", &nets, pool, 26, &exclude)
            .await
            .unwrap();
        assert_eq!(b.len(), 2);
    }
}
