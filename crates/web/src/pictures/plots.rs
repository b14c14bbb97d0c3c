//! The run overview's plots, drawn on the server as SVG: a line chart of
//! counts over time, a heat map (students × tasks), and paired bars per
//! student. Styled by the panel's CSS classes (no inline style: the CSP
//! forbids it); every number a colour shows is also written as text.

use super::esc;
use std::fmt::Write;

/// One line of a chart: a name and a value per bucket.
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

const W: f64 = 760.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 16.0;

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Lines over time. `labels` name the x positions (first, middle, last
/// are written); each series gets its own class `s0`, `s1`, ... and a
/// legend entry with its total.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    labels: &[String],
    series: &[Series],
) -> String {
    let h = 280.0;
    let plot_w = W - LEFT - 150.0;
    let plot_h = h - TOP - 56.0;
    let n = labels.len().max(2);
    let max = nice(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let x = |i: usize| LEFT + plot_w * i as f64 / (n - 1) as f64;
    let y = |v: f64| TOP + plot_h - plot_h * v / max;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(o, "<title>{}</title>", esc(title));
    // Five steps of a 1-2-5 maximum are round numbers themselves.
    for k in 0..=5 {
        let v = max * k as f64 / 5.0;
        let _ = write!(
            o,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0,
            num(v),
            y = y(v)
        );
    }
    for &i in &[0, labels.len() / 2, labels.len().saturating_sub(1)] {
        if let Some(l) = labels.get(i) {
            let _ = write!(
                o,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x(i),
                TOP + plot_h + 16.0,
                esc(l)
            );
        }
    }
    let _ = write!(
        o,
        r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        TOP + plot_h + 34.0,
        esc(x_label)
    );
    let _ = write!(
        o,
        r#"<text class="axis" x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    for (k, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            o,
            r#"<polyline class="series s{}" fill="none" points="{}"><title>{}</title></polyline>"#,
            k % 8,
            pts.join(" "),
            esc(&s.name)
        );
        let ly = TOP + 14.0 + 18.0 * k as f64;
        let total: f64 = s.values.iter().sum();
        let _ = write!(
            o,
            r#"<line class="series s{}" x1="{}" x2="{}" y1="{ly:.1}" y2="{ly:.1}"/><text x="{}" y="{:.1}">{} ({})</text>"#,
            k % 8,
            LEFT + plot_w + 12.0,
            LEFT + plot_w + 32.0,
            LEFT + plot_w + 38.0,
            ly + 4.0,
            esc(&s.name),
            num(total)
        );
    }
    if series.is_empty() {
        let _ = write!(
            o,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">no traffic captured yet</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    o.push_str("</svg>");
    o
}

/// A heat map: one row per name, one column per column label, the count
/// in each cell as text and as one of five shades (`h0`..`h4`).
pub fn heat(title: &str, rows: &[String], cols: &[String], counts: &[Vec<u64>]) -> String {
    let cell_w = ((W - 120.0) / cols.len().max(1) as f64).clamp(28.0, 90.0);
    let cell_h = 18.0;
    let head = 70.0;
    let left = 110.0;
    let w = left + cell_w * cols.len() as f64 + 10.0;
    let h = head + cell_h * rows.len() as f64 + 10.0;
    let max = counts.iter().flatten().copied().max().unwrap_or(0);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot heat" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(o, "<title>{}</title>", esc(title));
    for (j, c) in cols.iter().enumerate() {
        let cx = left + cell_w * j as f64 + cell_w / 2.0;
        let _ = write!(
            o,
            r#"<text class="tick" x="{cx:.1}" y="{:.1}" transform="rotate(-30 {cx:.1} {:.1})">{}</text>"#,
            head - 8.0,
            head - 8.0,
            esc(&super::clip(c, 18))
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = head + cell_h * i as f64;
        let _ = write!(
            o,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 13.0,
            esc(r)
        );
        for (j, col) in cols.iter().enumerate() {
            let v = counts.get(i).and_then(|c| c.get(j)).copied().unwrap_or(0);
            let shade = if v == 0 || max == 0 {
                0
            } else {
                1 + (3 * (v - 1) / (max - 1).max(1)).min(3)
            };
            let x = left + cell_w * j as f64;
            let _ = write!(
                o,
                r#"<rect class="h{shade}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}"><title>{}, {}: {v} error(s)</title></rect>"#,
                cell_w - 2.0,
                cell_h - 2.0,
                esc(r),
                esc(col)
            );
            if v > 0 {
                let _ = write!(
                    o,
                    r#"<text class="count" x="{:.1}" y="{:.1}" text-anchor="middle">{v}</text>"#,
                    x + cell_w / 2.0 - 1.0,
                    y + 13.0
                );
            }
        }
    }
    o.push_str("</svg>");
    o
}

/// Two bars per name, each a fraction 0..=1 written as a percentage
/// (None: not measured, shown as "–").
pub fn paired_bars(
    title: &str,
    names: &[String],
    a: (&str, &[Option<f64>]),
    b: (&str, &[Option<f64>]),
) -> String {
    let row_h = 26.0;
    let left = 110.0;
    let bar_w = (W - left - 120.0) / 2.0;
    let head = 34.0;
    let h = head + row_h * names.len() as f64 + 8.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot bars" viewBox="0 0 {W} {h:.0}" width="{W}" height="{h:.0}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(o, "<title>{}</title>", esc(title));
    for (k, (label, _)) in [a, b].iter().enumerate() {
        let x0 = left + (bar_w + 50.0) * k as f64;
        let _ = write!(
            o,
            r#"<text class="axis" x="{x0:.1}" y="20">{}</text><line class="grid" x1="{x0:.1}" x2="{x0:.1}" y1="{head}" y2="{:.1}"/>"#,
            esc(label),
            h - 8.0
        );
    }
    for (i, n) in names.iter().enumerate() {
        let y = head + row_h * i as f64;
        let _ = write!(
            o,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 16.0,
            esc(n)
        );
        for (k, (_, vals)) in [a, b].iter().enumerate() {
            let x0 = left + (bar_w + 50.0) * k as f64;
            let v = vals.get(i).copied().flatten();
            let frac = v.unwrap_or(0.0).clamp(0.0, 1.0);
            let _ = write!(
                o,
                r#"<rect class="bar b{k}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
                y + 4.0,
                (bar_w * frac).max(1.0),
                row_h - 8.0
            );
            let _ = write!(
                o,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                x0 + bar_w * frac + 6.0,
                y + 16.0,
                v.map(|v| format!("{:.0} %", v * 100.0))
                    .unwrap_or_else(|| "–".into())
            );
        }
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(13.0), 20.0);
        assert_eq!(nice(42.0), 50.0);
        assert_eq!(nice(100.0), 100.0);
    }

    #[test]
    fn names_are_escaped_and_counts_written() {
        let svg = heat("errors", &["<b>".into()], &["t&1".into()], &[vec![3]]);
        assert!(svg.contains("&lt;b&gt;") && svg.contains("t&amp;1"));
        assert!(svg.contains(">3</text>"), "{svg}");
        assert!(!svg.contains("style="));
        let l = lines(
            "traffic",
            "time",
            "events",
            &["a".into(), "b".into()],
            &[Series {
                name: "http".into(),
                values: vec![1.0, 2.0],
            }],
        );
        assert!(l.contains("http (3)"));
        let b = paired_bars("c", &["s1".into()], ("u", &[Some(0.5)]), ("h", &[None]));
        assert!(b.contains("50 %") && b.contains("–"));
    }
}
