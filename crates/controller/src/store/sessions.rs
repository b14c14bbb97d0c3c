//! Panel sessions in the store (DESIGN.md decision 13). The web layer
//! makes the random ids and sets the cookies; here they are kept, found,
//! touched and ended.

use super::{now_f, Store};
use anyhow::Result;
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct SessionRow {
    pub id_hash: String,
    pub role: String,
    pub subject: String,
    pub run: Option<String>,
    /// JSON list of run names.
    pub runs: String,
    pub csrf: String,
    pub created_at: f64,
    pub expires_at: f64,
    pub last_seen: f64,
}

impl SessionRow {
    pub fn runs(&self) -> Vec<String> {
        serde_json::from_str(&self.runs).unwrap_or_default()
    }
}

impl Store {
    pub async fn create_session(&self, s: &SessionRow) -> Result<()> {
        let _w = self.write.lock().await;
        // Expired sessions go whenever a new one comes.
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(now_f())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, role, subject, run, runs, csrf, created_at, expires_at, last_seen)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id_hash)
        .bind(&s.role)
        .bind(&s.subject)
        .bind(&s.run)
        .bind(&s.runs)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.last_seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A session that has not expired.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM sessions WHERE id_hash = ? AND expires_at >= ?")
                .bind(id_hash)
                .bind(now_f())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Slide the idle expiry forward (never past `hard_limit`).
    pub async fn touch_session(&self, id_hash: &str, expires_at: f64) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("UPDATE sessions SET last_seen = ?, expires_at = ? WHERE id_hash = ?")
            .bind(now_f())
            .bind(expires_at)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_session_run(&self, id_hash: &str, run: &str) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("UPDATE sessions SET run = ? WHERE id_hash = ?")
            .bind(run)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// End every session of one person (new credentials, removed student).
    pub async fn end_sessions_of(&self, role: &str, subject: &str) -> Result<u64> {
        let _w = self.write.lock().await;
        let r = sqlx::query("DELETE FROM sessions WHERE role = ? AND subject = ?")
            .bind(role)
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// A student's subnets by network name.
    pub async fn subnets_of(
        &self,
        run: &str,
        student: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT network, subnet FROM subnets WHERE run = ? AND student = ?")
                .bind(run)
                .bind(student)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Every run a student id is enrolled in, with its password hash.
    pub async fn enrollments(&self, id: &str) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT run, password_hash FROM students WHERE id = ? ORDER BY run")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
