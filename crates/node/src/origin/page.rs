//! The lecture's base page: one HTML file that references N objects.
//!
//! "Suppose the page consists of a base HTML file and 10 JPEG images": the
//! page and its objects are generated from the config, so a lab can choose
//! how many objects there are and how large each is, and transmission time
//! becomes something a student can measure. Each object is a valid JPEG (an
//! 8×8 picture) padded to its size with comment segments, so browsers show
//! it and every byte counts on the wire.

use applab_roles::PageConfig;

const TINY_JPEG: &[u8] = include_bytes!("tiny.jpg");
/// Largest comment segment: a 2-byte length that counts itself.
const MAX_SEGMENT_DATA: u64 = 65533;

pub struct Page {
    pub path: String,
    pub sizes: Vec<u64>,
    html: String,
}

impl Page {
    pub fn new(cfg: &PageConfig) -> Result<Page, String> {
        let sizes = cfg.object_sizes()?;
        let mut html = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Base page</title></head>\n<body>\n<h1>A base page and its objects</h1>\n",
        );
        if !cfg.text.is_empty() {
            html.push_str(&format!("<p>{}</p>\n", super::escape(&cfg.text)));
        }
        for (i, size) in sizes.iter().enumerate() {
            html.push_str(&format!(
                "<img src=\"{}\" alt=\"object {}, {size} bytes\" width=\"64\" height=\"64\">\n",
                object_path(i as u32 + 1),
                i + 1
            ));
        }
        html.push_str("</body></html>\n");
        Ok(Page {
            path: cfg.path.clone(),
            sizes,
            html,
        })
    }

    pub fn html(&self) -> &str {
        &self.html
    }

    /// The object a path names, as (index from 1, size).
    pub fn object(&self, path: &str) -> Option<(u32, u64)> {
        let n: u32 = path
            .strip_prefix("/objects/object-")?
            .strip_suffix(".jpg")?
            .parse()
            .ok()?;
        let size = *self.sizes.get((n as usize).checked_sub(1)?)?;
        Some((n, size))
    }
}

pub fn object_path(index: u32) -> String {
    format!("/objects/object-{index:02}.jpg")
}

/// Object `index` of `len` bytes, made piece by piece as it is sent: SOI,
/// comment segments that pad it to `len`, then the rest of the tiny JPEG.
pub struct Object {
    stage: u8,
    /// Padding bytes still to emit, segment headers included.
    pad: u64,
    fill: Vec<u8>,
}

impl Object {
    pub fn new(index: u32, len: u64) -> Object {
        let label = format!("applab object {index} ");
        Object {
            stage: 0,
            pad: len.saturating_sub(TINY_JPEG.len() as u64),
            fill: label
                .bytes()
                .cycle()
                .take(MAX_SEGMENT_DATA as usize)
                .collect(),
        }
    }

    /// Append the next piece (at most one segment) to `out`; false when done.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> bool {
        match self.stage {
            0 => {
                out.extend_from_slice(&TINY_JPEG[..2]);
                self.stage = 1;
            }
            // Segments carry at least their 4 header bytes; a 1–3 byte
            // remainder cannot be padded exactly and is dropped.
            1 if self.pad >= 4 => {
                let mut data = (self.pad - 4).min(MAX_SEGMENT_DATA);
                let after = self.pad - 4 - data;
                if (1..4).contains(&after) {
                    // Leave enough for one more whole segment.
                    data -= 4 - after;
                }
                out.extend_from_slice(&[0xFF, 0xFE]);
                out.extend_from_slice(&((data + 2) as u16).to_be_bytes());
                out.extend_from_slice(&self.fill[..data as usize]);
                self.pad -= data + 4;
            }
            1 => {
                out.extend_from_slice(&TINY_JPEG[2..]);
                self.stage = 2;
            }
            _ => return false,
        }
        true
    }
}

/// The whole object, for small objects sent from memory.
pub fn object_bytes(index: u32, len: u64, out: &mut Vec<u8>) {
    let mut o = Object::new(index, len);
    while o.next_into(out) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_have_their_exact_size_and_stay_jpeg() {
        for len in [0u64, 287, 300, 70_000, 65_537 + 287, 65_538 + 287, 200_000] {
            let mut out = Vec::new();
            object_bytes(3, len, &mut out);
            let want = len.max(TINY_JPEG.len() as u64);
            assert!(
                out.len() as u64 == want || (want - out.len() as u64) < 4,
                "{len}: {}",
                out.len()
            );
            assert_eq!(&out[..2], &[0xFF, 0xD8]);
            assert_eq!(&out[out.len() - 2..], &[0xFF, 0xD9]);
        }
        let page = Page::new(
            &toml::from_str::<PageConfig>("objects = 3\nsize = \"1K\"\ntext = \"<b>\"").unwrap(),
        )
        .unwrap();
        assert_eq!(page.html().matches("<img").count(), 3);
        assert!(page.html().contains("&lt;b&gt;"));
        assert_eq!(page.object("/objects/object-02.jpg"), Some((2, 1024)));
        assert_eq!(page.object("/objects/object-04.jpg"), None);
        assert_eq!(page.object("/objects/object-00.jpg"), None);
    }
}
