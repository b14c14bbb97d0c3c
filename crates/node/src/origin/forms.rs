//! The lecture's search engine: form input by GET and by POST.
//!
//! "The input is uploaded in the entity body" with POST, or "in the URL
//! field of the request line" with GET: this page answers both, echoing the
//! fields back so a student sees where their input travelled. POST bodies
//! may be `application/x-www-form-urlencoded` or `multipart/form-data`.

use super::escape;
use super::response::Response;
use bytes::Bytes;

/// One form field as received.
pub struct Field {
    pub name: String,
    pub value: String,
    /// For a file part of a multipart form: its file name and size.
    pub file: Option<(String, usize)>,
}

pub fn from_query(query: &str) -> Vec<Field> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| Field {
            name: k.into_owned(),
            value: v.into_owned(),
            file: None,
        })
        .collect()
}

/// Fields of a POST body, by its Content-Type; Err is the 415 message.
pub async fn from_body(content_type: Option<&[u8]>, body: Bytes) -> Result<Vec<Field>, String> {
    let ct = content_type
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" | "" => {
            Ok(from_query(&String::from_utf8_lossy(&body)))
        }
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(&ct).map_err(|e| format!("multipart: {e}"))?;
            let len = body.len() as u64;
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
            let limits = multer::Constraints::new()
                .size_limit(multer::SizeLimit::new().whole_stream(len));
            let mut mp = multer::Multipart::with_constraints(stream, boundary, limits);
            let mut out = Vec::new();
            while let Some(field) = mp.next_field().await.map_err(|e| format!("multipart: {e}"))? {
                let name = field.name().unwrap_or("").to_string();
                let file = field.file_name().map(str::to_string);
                let data = field.bytes().await.map_err(|e| format!("multipart: {e}"))?;
                out.push(match file {
                    Some(f) => Field {
                        name,
                        value: String::new(),
                        file: Some((f, data.len())),
                    },
                    None => Field {
                        name,
                        value: String::from_utf8_lossy(&data).into_owned(),
                        file: None,
                    },
                });
            }
            Ok(out)
        }
        other => Err(format!(
            "a form is sent as application/x-www-form-urlencoded or multipart/form-data, not {other}"
        )),
    }
}

/// The search page: the empty form, or the results for what was sent.
pub fn page(path: &str, method: &str, fields: &[Field]) -> Response {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Search</title></head><body>\n",
    );
    if fields.is_empty() {
        html.push_str("<h1>Search</h1>\n");
    } else {
        let q = fields
            .iter()
            .find(|f| f.name == "q")
            .map(|f| f.value.as_str())
            .unwrap_or("");
        html.push_str(&format!(
            "<h1>Results for &quot;{}&quot;</h1>\n<p>Your input arrived by {method}, {}.</p>\n<table>\n",
            escape(q),
            if method == "GET" {
                "in the URL of the request line"
            } else {
                "in the entity body"
            }
        ));
        for f in fields {
            let shown = match &f.file {
                Some((name, size)) => format!("file {} ({size} bytes)", escape(name)),
                None => escape(&f.value),
            };
            html.push_str(&format!(
                "<tr><th>{}</th><td>{shown}</td></tr>\n",
                escape(&f.name)
            ));
        }
        html.push_str("</table>\n");
    }
    let path = escape(path);
    html.push_str(&format!(
        "<form method=\"get\" action=\"{path}\"><input name=\"q\"> <button>Search by GET</button></form>\n\
         <form method=\"post\" action=\"{path}\"><input name=\"q\"> <button>Search by POST</button></form>\n\
         <form method=\"post\" action=\"{path}\" enctype=\"multipart/form-data\"><input name=\"q\"> <input type=\"file\" name=\"file\"> <button>Upload by POST</button></form>\n\
         </body></html>\n"
    ));
    Response::html(200, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_encodings_give_the_fields() {
        let f = from_query("q=cats+%26+dogs&lang=en");
        assert_eq!(
            (f[0].name.as_str(), f[0].value.as_str()),
            ("q", "cats & dogs")
        );
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nabcdef\r\n--XyZ--\r\n";
        let f = from_body(
            Some(b"multipart/form-data; boundary=XyZ"),
            Bytes::from(body),
        )
        .await
        .unwrap();
        assert_eq!(f[0].value, "hello");
        assert_eq!(f[1].file, Some(("a.txt".into(), 6)));
        assert!(from_body(
            Some(b"multipart/form-data; boundary=XyZ"),
            Bytes::from("--XyZ\r\ngarbage")
        )
        .await
        .is_err());
        assert!(from_body(Some(b"application/json"), Bytes::new())
            .await
            .is_err());
        let Response { status, .. } = page("/search", "GET", &f);
        assert_eq!(status, 200);
    }
}
