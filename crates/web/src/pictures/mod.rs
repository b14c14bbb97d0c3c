//! Pictures drawn on the server as SVG text (DESIGN.md decision 14): they
//! work in a plain browser, print, and are tested as text. Every piece of
//! text that reaches a picture passes through [`esc`]: a student's own
//! traffic is hostile input to their page.

pub mod ladder;
pub mod plots;
pub mod topology;

/// Escape text for SVG (XML) content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Cut a label to `max` characters, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_text_is_escaped_and_clipped() {
        assert_eq!(
            super::esc("<script>alert('x')&\"</script>\u{1}"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;\u{FFFD}"
        );
        assert_eq!(super::clip("abcdef", 4), "abc…");
        assert_eq!(super::clip("ab", 4), "ab");
    }
}
