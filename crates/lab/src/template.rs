//! `{{ name }}` placeholders in task text, aliases and served content.
//!
//! Deliberately tiny: a lab author writes Markdown and HTML with the
//! student's values dropped in, nothing more. An unknown name is an error
//! that points at its byte offset, so validation can give file:line:col.

use std::collections::BTreeMap;

/// A placeholder found in a text: where it starts and the name inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub offset: usize,
    pub name: String,
}

/// Every `{{ name }}` in `text`, in order. An opening `{{` without its `}}`
/// is reported with an empty name.
pub fn placeholders(text: &str) -> Vec<Placeholder> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(start) = text[i..].find("{{").map(|s| s + i) {
        match text[start + 2..].find("}}") {
            Some(end) => {
                let name = text[start + 2..start + 2 + end].trim().to_string();
                out.push(Placeholder {
                    offset: start,
                    name,
                });
                i = start + 2 + end + 2;
            }
            None => {
                out.push(Placeholder {
                    offset: start,
                    name: String::new(),
                });
                break;
            }
        }
    }
    out
}

/// Fill placeholders; unknown names are an error naming the first one.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Placeholder> {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    for p in placeholders(text) {
        let Some(v) = vars.get(&p.name) else {
            return Err(p);
        };
        out.push_str(&text[i..p.offset]);
        out.push_str(v);
        i = p.offset + text[p.offset..].find("}}").expect("placeholder closed") + 2;
    }
    out.push_str(&text[i..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reports_unknown_names() {
        let vars = BTreeMap::from([("site".to_string(), "bokal".to_string())]);
        assert_eq!(
            render("www.{{site}}.lab / {{ site }}", &vars).unwrap(),
            "www.bokal.lab / bokal"
        );
        let err = render("ok {{nope}}", &vars).unwrap_err();
        assert_eq!(
            err,
            Placeholder {
                offset: 3,
                name: "nope".into()
            }
        );
        assert_eq!(render("plain { } text", &vars).unwrap(), "plain { } text");
        assert_eq!(placeholders("x {{ open").len(), 1);
    }
}
