//! cookies on a real launch: a scripted model student does CURRICULUM.md §2
//! from the workstation with the `http` tool (a first visit gets
//! Set-Cookie; the id sent back in Cookie keys the cart; the student's own
//! item put in it; a second client without the cookie sees an empty cart)
//! and passes every check; an idle classmate passes none; a copier who
//! puts the model's item in their cart passes none of the checks tied to
//! it. Needs a Docker engine; fails without one.

mod common;

use common::Server;
use std::time::Duration;

const RUN: &str = "shop";

/// The cart id from the shop's Set-Cookie in the tool's printed response.
fn cart_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split_once("Set-Cookie: cart=").map(|(_, r)| r))
        .and_then(|r| r.split(';').next())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no Set-Cookie in:\n{out}"))
}

/// What a student does, with `item` for the item they put in the cart.
fn shop_visit(s: &Server, who: &str, item: &str) -> String {
    let first = s.sh(RUN, who, "ws", "http http://www.shop.lab/shop");
    let id = cart_id(&first);
    let cookie = format!("-H 'Cookie: cart={id}'");
    let page = s.sh(
        RUN,
        who,
        "ws",
        &format!("http {cookie} http://www.shop.lab/shop"),
    );
    assert!(page.contains(&id), "the page shows the cart id: {page}");
    let _ = s.exec(
        RUN,
        who,
        "ws",
        &[
            "sh",
            "-c",
            &format!("http -X POST -d 'item={item}' {cookie} http://www.shop.lab/shop/add"),
        ],
    );
    id
}

#[test]
fn model_student_passes_every_check_of_cookies() {
    let mut s = Server::start("10.231.0.0/20");
    s.launch(RUN, "cookies", &["m1", "i1", "c1"]);
    // The result stream for the model, as the panel will read it.
    let token = std::fs::read_to_string(s.data.path().join("instructor.token")).unwrap();
    let stream_log = s.data.path().join("stream.txt");
    let mut stream = std::process::Command::new("curl")
        .args(["-sN", "--max-time", "120", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!(
            "http://127.0.0.1:{}/api/results/stream?run={RUN}&student=m1",
            s.port
        ))
        .stdout(std::fs::File::create(&stream_log).unwrap())
        .spawn()
        .expect("curl (scripts/setup installs it)");
    let item = s.json(&["params", "m1", "--run", RUN])["item"]
        .as_str()
        .unwrap()
        .to_string();

    // A first visit gets a cookie; sent back, it keys the cart.
    let id = shop_visit(&s, "m1", &item);
    let cart = s.sh(
        RUN,
        "m1",
        "ws",
        &format!("http -H 'Cookie: cart={id}' http://www.shop.lab/shop"),
    );
    assert!(
        cart.contains(&format!("<li>{item} ")),
        "the item is in the cart: {cart}"
    );
    // A second client, without the cookie: a stranger with an empty cart.
    let stranger = s.sh(RUN, "m1", "ws", "http http://www.shop.lab/shop");
    assert_ne!(cart_id(&stranger), id);
    assert!(stranger.contains("Your cart is empty."), "{stranger}");

    let r = s.wait_status(
        RUN,
        "m1",
        "second-client",
        "stranger-empty-cart",
        "pass",
        Duration::from_secs(30),
    );
    r.assert_all("m1", "pass");
    r.assert_all("i1", "pending");
    std::thread::sleep(Duration::from_millis(500));
    let _ = stream.kill();
    let _ = stream.wait();
    let got = std::fs::read_to_string(&stream_log).unwrap();
    let passes: Vec<serde_json::Value> = got
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["status"] == "pass")
        .collect();
    for check in ["cookie-returned", "item-in-cart", "stranger-empty-cart"] {
        assert!(
            passes
                .iter()
                .any(|v| v["check"] == check && v["student"] == "m1"),
            "{check} streamed as it passed:\n{got}"
        );
    }
    assert!(
        passes.iter().all(|v| v["student"] == "m1"),
        "only the student asked for: {got}"
    );
    let seen = r.check("m1", "cart", "item-in-cart")["seen"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        seen.contains(&format!("carts.{id}")),
        "the probe read the model's own cart: {seen}"
    );

    // The copier puts the model's item in: their shop does not sell it.
    shop_visit(&s, "c1", &item);
    s.sh(RUN, "c1", "ws", "http http://www.shop.lab/shop");
    std::thread::sleep(Duration::from_secs(3));
    let r = s.check(RUN);
    r.assert_exactly(
        "c1",
        &[
            // Their own cookie, sent back: no parameter is in that.
            ("cart", "cookie-returned", "pass"),
            // The POST was refused (400: no such item for sale).
            ("cart", "item-in-cart", "fail"),
            ("second-client", "stranger-empty-cart", "fail"),
        ],
    );
}
