#![allow(dead_code)]

//! Helpers for the panel's tests: HTTP as a browser sends it (forms,
//! cookies, no redirects followed), and a headless Chromium session.

use reqwest::header::{HeaderMap, ACCEPT, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Http {
    pub fn new(port: u16) -> Http {
        Http {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub async fn send(&self, r: reqwest::RequestBuilder, cookie: Option<&str>) -> Answer {
        let r = match cookie {
            Some(c) => r.header(COOKIE, c),
            None => r,
        };
        let resp = r.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default()).into_owned(),
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>, accept: &str) -> Answer {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header(ACCEPT, accept);
        self.send(r, cookie).await
    }

    pub async fn page(&self, path: &str, cookie: &str) -> Answer {
        self.get(path, Some(cookie), "text/html").await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header(ACCEPT, "text/html")
            .form(form);
        self.send(r, cookie).await
    }

    /// Log in through the form as a browser does; the session cookie.
    pub async fn login(&self, id: &str, password: &str) -> Result<String, Answer> {
        self.login_at("/login", id, password).await
    }

    /// The same through the instructors' form.
    pub async fn staff_login(&self, id: &str, password: &str) -> Result<String, Answer> {
        self.login_at("/staff/login", id, password).await
    }

    async fn login_at(&self, form_path: &str, id: &str, password: &str) -> Result<String, Answer> {
        let form = self.get(form_path, None, "text/html").await;
        let token = between(&form.body, r#"name="token" value=""#, "\"");
        let login_cookie = cookie_of(&form.headers, "applab_login").unwrap();
        let a = self
            .post(
                form_path,
                Some(&format!("applab_login={login_cookie}")),
                &[("id", id), ("password", password), ("token", &token)],
            )
            .await;
        match cookie_of(&a.headers, "applab_session") {
            Some(c) if !c.is_empty() && a.status == StatusCode::SEE_OTHER => {
                Ok(format!("applab_session={c}"))
            }
            _ => Err(a),
        }
    }
}

pub fn between(s: &str, start: &str, end: &str) -> String {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {s}"))
        + start.len();
    let j = s[i..].find(end).unwrap() + i;
    s[i..j].to_string()
}

pub fn cookie_of(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
}

pub fn csrf_of(page: &str) -> String {
    between(page, r#"data-csrf=""#, "\"")
}

pub fn tokio_tungstenite_request(
    url: &str,
    cookie: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req
}

/// chromedriver, killed when dropped.
pub struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session through Debian's chromedriver.
pub async fn browser_session() -> (Driver, fantoccini::Client) {
    use fantoccini::ClientBuilder;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let driver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/setup installs it)");
    let driver = Driver(driver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    (driver, c)
}
