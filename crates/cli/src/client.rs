//! The instructor verbs' client of the controller's JSON API.

use crate::Conn;
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Client> {
        let token = match &conn.token {
            Some(t) => t.clone(),
            None => {
                let p = conn.data.join("instructor.token");
                std::fs::read_to_string(&p)
                    .with_context(|| {
                        format!("no --token given and cannot read {} (is `applab serve` running with --data {}?)", p.display(), conn.data.display())
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Client {
            http: reqwest::Client::new(),
            base: conn.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn finish<T: DeserializeOwned>(
        &self,
        what: &str,
        r: reqwest::Result<reqwest::Response>,
    ) -> Result<T> {
        let r = r.with_context(|| {
            format!(
                "cannot reach the controller at {} (is `applab serve` running?)",
                self.base
            )
        })?;
        let status = r.status();
        let body: serde_json::Value = r
            .json()
            .await
            .with_context(|| format!("{what}: unreadable answer"))?;
        if !status.is_success() {
            let msg = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no detail");
            bail!("{msg}");
        }
        serde_json::from_value(body).with_context(|| format!("{what}: unexpected answer"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await;
        self.finish(path, r).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await;
        self.finish(path, r).await
    }

    /// A GET whose answer is a file (a pcap), not JSON.
    pub async fn get_bytes(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller at {}", self.base))?;
        if !r.status().is_success() {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            bail!(
                "{}",
                body.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no detail")
            );
        }
        Ok(r.bytes().await?.to_vec())
    }
}
