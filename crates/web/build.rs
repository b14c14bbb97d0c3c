//! Bundles the console's terminal emulator for the browser.
//!
//! Debian's `node-xterm` ships xterm.js 3.8.1 (MIT) as CommonJS modules; a
//! browser has no `require`, so the modules are wrapped into one file with a
//! small `require` of their own, written here at build time. No front-end
//! tool is involved; `scripts/setup` installs the package.

use std::path::{Path, PathBuf};

fn main() {
    let root = std::env::var_os("APPLAB_XTERM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/nodejs/xterm"));
    println!("cargo:rerun-if-env-changed=APPLAB_XTERM_DIR");
    println!("cargo:rerun-if-changed={}", root.display());
    let lib = root.join("lib");
    if !lib.join("public/Terminal.js").is_file() {
        panic!(
            "xterm.js not found at {}: install Debian's node-xterm (bash scripts/setup does) \
             or set APPLAB_XTERM_DIR to a folder holding xterm 3.8's lib/",
            lib.display()
        );
    }
    let mut files = Vec::new();
    walk(&lib, &mut files);
    files.sort();
    let mut out = String::from(
        "/* xterm.js 3.8.1 (MIT, https://github.com/xtermjs/xterm.js), from Debian's node-xterm,\n   \
         bundled by applab's crates/web/build.rs: each CommonJS module wrapped in a function,\n   \
         joined by the small require below. */\n\
         (function () {\n\
         var defs = {}, cache = {};\n\
         function resolve(from, rel) {\n\
           var parts = from.split('/'); parts.pop();\n\
           rel.split('/').forEach(function (p) {\n\
             if (p === '..') parts.pop(); else if (p !== '.' && p !== '') parts.push(p);\n\
           });\n\
           return parts.join('/').replace(/\\.js$/, '');\n\
         }\n\
         function load(id) {\n\
           if (cache[id]) return cache[id].exports;\n\
           if (!defs[id]) throw new Error('xterm bundle: no module ' + id);\n\
           var m = { exports: {} };\n\
           cache[id] = m;\n\
           defs[id].call(m.exports, function (r) { return load(resolve(id, r)); }, m, m.exports);\n\
           return m.exports;\n\
         }\n",
    );
    for f in &files {
        let rel = f.strip_prefix(&lib).expect("under lib");
        let id = rel
            .to_string_lossy()
            .trim_end_matches(".js")
            .replace('\\', "/");
        let src = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let body: String = src
            .lines()
            .filter(|l| !l.starts_with("//# sourceMappingURL"))
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&format!(
            "defs[{id:?}] = function (require, module, exports) {{\n{body}\n}};\n"
        ));
    }
    out.push_str(
        "var Terminal = load('public/Terminal').Terminal;\n\
         load('addons/fit/fit').apply(Terminal);\n\
         window.Terminal = Terminal;\n\
         })();\n",
    );
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(dir.join("xterm.js"), out).expect("writing xterm.js");
    std::fs::copy(lib.join("xterm.css"), dir.join("xterm.css")).expect("copying xterm.css");
}

/// The library's modules: no tests, and of the addons only `fit`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if p.parent().and_then(|q| q.file_name()) == Some("addons".as_ref()) && name != "fit" {
                continue;
            }
            walk(&p, out);
        } else if name.ends_with(".js") && !name.ends_with(".test.js") {
            out.push(p);
        }
    }
}
