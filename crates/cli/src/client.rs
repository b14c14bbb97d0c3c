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
        let body = r
            .bytes()
            .await
            .with_context(|| format!("{what}: unreadable answer"))?;
        if !status.is_success() {
            bail!("{}", error_of(status, &body));
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: unexpected answer"))
    }

    pub async fn get<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T> {
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
    pub async fn get_bytes<Q: Serialize + ?Sized>(&self, path: &str, query: &Q) -> Result<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller at {}", self.base))?;
        let status = r.status();
        if !status.is_success() {
            let body = r.bytes().await.unwrap_or_default();
            bail!("{}", error_of(status, &body));
        }
        Ok(r.bytes().await?.to_vec())
    }
}

/// A request without query parameters.
pub const NO_QUERY: &[(&str, &str)] = &[];

/// The controller's own words for a failure (`ErrorBody`), or the status.
fn error_of(status: reqwest::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<applab_controller::api::ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => format!("the controller answered {status}"),
    }
}
