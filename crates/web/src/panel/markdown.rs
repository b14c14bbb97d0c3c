//! Task text: the lab's Markdown with the student's values filled in,
//! rendered with pulldown-cmark. Raw HTML in the Markdown is shown as text,
//! never passed through, and links may only go to web or mail addresses
//! (no `javascript:`), so a lab file cannot put script on a student's page.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

pub fn to_html(md: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(md, opts).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        e => e,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn safe_url(u: CowStr<'_>) -> CowStr<'_> {
    let lower = u.trim().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s);
    let ok = match scheme {
        // No colon before any slash: a relative link.
        None => true,
        Some(s) if s.contains('/') || s.contains('?') || s.contains('#') => true,
        Some(s) => matches!(s, "http" | "https" | "mailto"),
    };
    if ok {
        u
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn markdown_renders_and_raw_html_does_not_pass() {
        let h = to_html("# Title\n\nType `http --page x`.\n\n<script>alert(1)</script>\n\nand <b onmouseover=x>bold</b>");
        assert!(h.contains("<h1>Title</h1>"));
        assert!(h.contains("<code>http --page x</code>"));
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("<b "), "{h}");
    }

    #[test]
    fn script_links_are_defused() {
        let h = to_html("[a](javascript:alert(1)) [b](JaVaScript:x) [c](https://example.org/) [d](/tasks/x) [e](data:text/html,x)");
        assert!(!h.to_lowercase().contains("javascript:"), "{h}");
        assert!(!h.contains("data:"), "{h}");
        assert!(h.contains(r#"href="https://example.org/""#));
        assert!(h.contains(r#"href="/tasks/x""#));
    }
}
