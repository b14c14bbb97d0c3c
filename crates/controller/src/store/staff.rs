//! Instructor and assistant accounts (issue 15). The web layer decides what
//! each role may do; here the accounts are kept.

use super::{now, Store};
use anyhow::{bail, Result};
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct StaffRow {
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// Staff names share the login form's id field with student ids, so they
/// follow the same rule.
pub fn valid_staff_name(name: &str) -> bool {
    crate::roster::valid_id(name)
}

pub const STAFF_ROLES: &[&str] = &["instructor", "assistant"];

/// An account name and role the store accepts, or why not.
pub fn check_staff(name: &str, role: &str) -> Result<()> {
    if !valid_staff_name(name) {
        bail!("bad account name {name:?}: 1-32 of letters, digits, '-', '_', '.'");
    }
    if !STAFF_ROLES.contains(&role) {
        bail!("role must be instructor or assistant, not {role:?}");
    }
    Ok(())
}

impl Store {
    /// Add an account, or give an existing one a new role and password
    /// (its sessions end: the old password no longer holds).
    pub async fn put_staff(&self, name: &str, role: &str, password_hash: &str) -> Result<bool> {
        check_staff(name, role)?;
        let _w = self.write.lock().await;
        let existed: Option<(String,)> = sqlx::query_as("SELECT name FROM staff WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO staff (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
        )
        .bind(name)
        .bind(role)
        .bind(password_hash)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if existed.is_some() {
            sqlx::query(
                "DELETE FROM sessions WHERE role IN ('instructor', 'assistant') AND subject = ?",
            )
            .bind(name)
            .execute(&self.pool)
            .await?;
        }
        Ok(existed.is_none())
    }

    pub async fn staff(&self, name: &str) -> Result<Option<StaffRow>> {
        Ok(sqlx::query_as("SELECT * FROM staff WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn staff_list(&self) -> Result<Vec<StaffRow>> {
        Ok(sqlx::query_as("SELECT * FROM staff ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn remove_staff(&self, name: &str) -> Result<bool> {
        let _w = self.write.lock().await;
        let r = sqlx::query("DELETE FROM staff WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE role IN ('instructor', 'assistant') AND subject = ?",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
