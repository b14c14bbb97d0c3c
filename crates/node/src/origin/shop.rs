//! The cookie shop: state kept over stateless HTTP.
//!
//! The lecture's four components of cookie technology, all here: the
//! `Set-Cookie` header line in the first response to a new visitor, the
//! `Cookie` header line the browser sends back, the cookie file kept by the
//! browser (the client's business), and a back-end database at the site, the
//! cart store, keyed by the cookie's id. The store is a JSON file written
//! atomically on every change, so carts survive a restart of the node.

use super::escape;
use super::response::Response;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub const COOKIE: &str = "cart";
/// Bounds on what visitors can make the store hold.
const MAX_CARTS: usize = 10_000;
const MAX_ITEMS: usize = 100;

pub struct Shop {
    pub path: String,
    items: Vec<String>,
    file: Option<PathBuf>,
    carts: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Shop {
    /// Open the shop with its store under `state` (none: carts in memory).
    pub fn open(path: String, items: Vec<String>, state: Option<PathBuf>) -> anyhow::Result<Shop> {
        let file = state.map(|d| d.join("shop.json"));
        let carts = match &file {
            Some(f) if f.exists() => {
                let text = std::fs::read_to_string(f)?;
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
            }
            _ => BTreeMap::new(),
        };
        Ok(Shop {
            path,
            items,
            file,
            carts: Mutex::new(carts),
        })
    }

    /// Whether this shop answers `path`.
    pub fn owns(&self, path: &str) -> bool {
        path == self.path
            || path
                .strip_prefix(&self.path)
                .is_some_and(|r| r.starts_with('/'))
    }

    pub fn cart(&self, id: &str) -> Option<Vec<String>> {
        self.carts.lock().ok()?.get(id).cloned()
    }

    /// Serve a shop request. `cookie` is the visitor's cart id, if any.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: &[(String, String)],
    ) -> Response {
        let known = cookie.filter(|id| self.cart(id).is_some());
        let (id, new) = match known {
            Some(id) => (id.to_string(), false),
            None => match self.new_cart() {
                Ok(id) => (id, true),
                Err(e) => return Response::text(503, &e),
            },
        };
        let sub = &path[self.path.len()..];
        let resp = match (method, sub) {
            ("GET" | "HEAD", "" | "/") => self.page(&id),
            ("POST", "/add") | ("POST", "/remove") => {
                let item = form
                    .iter()
                    .find(|(k, _)| k == "item")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                if !self.items.iter().any(|i| i == item) {
                    return Response::text(400, &format!("no such item for sale: {item:?}"));
                }
                let changed = self.change(&id, item, sub == "/add");
                match changed {
                    Ok(()) => {
                        Response::text(303, "see the cart").header("Location", self.path.clone())
                    }
                    Err(e) => Response::text(500, &format!("cannot save the cart: {e}")),
                }
            }
            ("GET" | "HEAD", "/add" | "/remove") | ("POST", "" | "/") => {
                return Response::text(405, "use the forms on the shop page").header(
                    "Allow",
                    if sub.is_empty() || sub == "/" {
                        "GET, HEAD"
                    } else {
                        "POST"
                    },
                );
            }
            _ => return Response::text(404, &format!("no such page in the shop: {path}")),
        };
        if new {
            resp.header(
                "Set-Cookie",
                format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"),
            )
        } else {
            resp
        }
    }

    fn new_cart(&self) -> Result<String, String> {
        use rand::Rng;
        let id: String = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let mut carts = self
            .carts
            .lock()
            .map_err(|_| "store poisoned".to_string())?;
        if carts.len() >= MAX_CARTS {
            return Err("the shop's store is full".into());
        }
        carts.insert(id.clone(), Vec::new());
        self.save(&carts)
            .map_err(|e| format!("cannot save the store: {e}"))?;
        Ok(id)
    }

    fn change(&self, id: &str, item: &str, add: bool) -> std::io::Result<()> {
        let mut carts = self
            .carts
            .lock()
            .map_err(|_| std::io::Error::other("store poisoned"))?;
        let cart = carts.entry(id.to_string()).or_default();
        if add {
            if cart.len() < MAX_ITEMS {
                cart.push(item.to_string());
            }
        } else if let Some(i) = cart.iter().position(|x| x == item) {
            cart.remove(i);
        }
        self.save(&carts)
    }

    fn save(&self, carts: &BTreeMap<String, Vec<String>>) -> std::io::Result<()> {
        use std::io::Write;
        let Some(file) = &self.file else {
            return Ok(());
        };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string_pretty(carts)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    }

    fn page(&self, id: &str) -> Response {
        let cart = self.cart(id).unwrap_or_default();
        let p = escape(&self.path);
        let mut html = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Shop</title></head><body>\n<h1>The lab shop</h1>\n<p>Your cart id (from your cookie): <code>{id}</code></p>\n<h2>For sale</h2>\n<ul>\n"
        );
        for item in &self.items {
            let i = escape(item);
            html.push_str(&format!(
                "<li>{i} <form method=\"post\" action=\"{p}/add\" style=\"display:inline\"><input type=\"hidden\" name=\"item\" value=\"{i}\"><button>Add</button></form></li>\n"
            ));
        }
        html.push_str("</ul>\n<h2>Your cart</h2>\n");
        if cart.is_empty() {
            html.push_str("<p>Your cart is empty.</p>\n");
        } else {
            html.push_str("<ul>\n");
            for item in &cart {
                let i = escape(item);
                html.push_str(&format!(
                    "<li>{i} <form method=\"post\" action=\"{p}/remove\" style=\"display:inline\"><input type=\"hidden\" name=\"item\" value=\"{i}\"><button>Remove</button></form></li>\n"
                ));
            }
            html.push_str("</ul>\n");
        }
        html.push_str("</body></html>\n");
        Response::html(200, html).header("Cache-Control", "private, no-cache")
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_cookie(r: &Response) -> Option<String> {
        r.headers
            .iter()
            .find(|(k, _)| *k == "Set-Cookie")
            .map(|(_, v)| v.as_str().to_string())
    }

    #[test]
    fn carts_follow_the_cookie_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let items = vec!["tea".to_string(), "book".to_string()];
        let shop = Shop::open("/shop".into(), items.clone(), Some(dir.path().into())).unwrap();
        let first = shop.handle("GET", "/shop", None, &[]);
        let sc = set_cookie(&first).expect("a new visitor gets a cookie");
        let id = cookie_value(&sc, COOKIE)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let form = [("item".to_string(), "tea".to_string())];
        let r = shop.handle("POST", "/shop/add", Some(&id), &form);
        assert_eq!(r.status, 303);
        assert!(set_cookie(&r).is_none(), "a known visitor keeps its cookie");
        assert_eq!(
            shop.handle(
                "POST",
                "/shop/add",
                Some(&id),
                &[("item".into(), "gold".into())]
            )
            .status,
            400
        );
        drop(shop);
        let shop = Shop::open("/shop".into(), items, Some(dir.path().into())).unwrap();
        assert_eq!(shop.cart(&id), Some(vec!["tea".to_string()]));
        // Another client, without the cookie, has an empty cart of its own.
        let other = shop.handle("GET", "/shop/", None, &[]);
        assert!(set_cookie(&other).is_some());
        assert_eq!(cookie_value("a=1; cart=xyz", COOKIE), Some("xyz"));
        assert!(shop.owns("/shop/add") && !shop.owns("/shopping"));
    }
}
