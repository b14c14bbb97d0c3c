//! The JSON API's statuses, request by request through the router
//! (`Router::oneshot`, no socket): 401 without the token, 404 for an
//! unknown run or student, 400 for a request that cannot be read. The
//! controller behind it is real, on the real engine (needs Docker; fails
//! without it).

use applab_controller::{images, Config, Controller};
use applab_runtime::docker::DockerRuntime;
use applab_web::{router, AppState};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const TOKEN: &str = "test-token";

async fn app(data: &std::path::Path) -> axum::Router {
    let rt = Arc::new(DockerRuntime::connect().await.expect("a Docker engine"));
    let cfg = Config {
        data_dir: data.to_path_buf(),
        pool: "10.238.0.0/16".parse().unwrap(),
        prefix: 26,
        parallel: 4,
        interval: Duration::from_secs(60),
        sources: images::Sources {
            images_dir: data.join("images"),
            node_binary: data.join("applab-node"),
            busybox: "/bin/busybox".into(),
            applab_binary: None,
            labs_dir: None,
            manifest: None,
        },
        capture_bytes: 1 << 20,
    };
    let ctrl = Controller::new(cfg, rt).await.unwrap();
    router(AppState {
        ctrl,
        token: Arc::new(TOKEN.into()),
        panel: Arc::new(applab_web::panel::PanelState::new(
            false,
            "http://127.0.0.1/".into(),
            None,
        )),
    })
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: bool,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let r = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn each_failure_has_its_own_status_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let (s, _) = call(&app, "GET", "/api/health", false, "").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(&app, "GET", "/api/status", false, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, b) = call(&app, "GET", "/api/status", true, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("no run exists"), "{b}");
    let (s, b) = call(&app, "GET", "/api/status?run=nope", true, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("no run named \\\"nope\\\""), "{b}");
    let (s, b) = call(&app, "GET", "/api/progress?run=nope", true, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = call(&app, "GET", "/api/params?run=nope&student=s1", true, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = call(
        &app,
        "POST",
        "/api/launch",
        true,
        r#"{"run":"r","lab_tar":"not base64!","roster":[]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("lab_tar is not base64"), "{b}");
    let (s, b) = call(
        &app,
        "POST",
        "/api/reset",
        true,
        r#"{"run":"nope","student":"s1"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}
