//! One small inline SVG graph of a figure over a mirror's recorded runs: a point per
//! run, oldest left, evenly spaced (runs minutes apart stay apart; the span is written
//! under it), a failed run's in red with a tick on the axis, a line through the
//! successful ones, the largest value on top. No script, no external asset; it scales
//! with the page.

use std::fmt::Write;

use super::esc;

/// One run's value of the figure; None where the run has none to give (a lag before
/// any Release date was seen).
pub struct Point {
    pub at: jiff::Timestamp,
    pub value: Option<f64>,
    pub failed: bool,
}

/// A figure to draw: its title, how a value reads (`format`), and the points.
pub struct Graph<'a> {
    pub id: String,
    pub title: &'a str,
    pub format: &'a dyn Fn(f64) -> String,
    pub points: &'a [Point],
}

const W: f64 = 360.0;
const H: f64 = 140.0;
const LEFT: f64 = 6.0;
const RIGHT: f64 = 6.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 24.0;

impl Graph<'_> {
    /// The SVG element: `role="img"`, titled, described by the page's figures table.
    pub fn svg(&self, table_id: &str) -> String {
        let mut out = String::with_capacity(256 + 48 * self.points.len());
        let _ = write!(
            out,
            r#"<svg id="{id}" class="graph" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d" data-points="{n}" data-table="{table_id}"><title id="{id}-t">{title}</title>"#,
            id = self.id,
            title = esc(self.title),
            n = self.points.len(),
        );
        let values: Vec<f64> = self.points.iter().filter_map(|p| p.value).collect();
        let max = values.iter().copied().fold(0.0_f64, f64::max);
        // What the graph says, in a sentence (the table below has every figure).
        let failed = self.points.iter().filter(|p| p.failed).count();
        let last = values
            .last()
            .map_or("none".to_string(), |v| (self.format)(*v));
        let _ = write!(
            out,
            r#"<desc id="{id}-d">{n} run(s), {failed} failed; latest {}, largest {}.</desc>"#,
            esc(&last),
            esc(&(self.format)(max)),
            id = self.id,
            n = self.points.len(),
        );
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="14" class="label">{} · max {}</text>"#,
            esc(self.title),
            esc(&(self.format)(max))
        );
        let base = H - BOTTOM;
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" y1="{base}" x2="{x2}" y2="{base}" class="axis"/>"#,
            x2 = W - RIGHT
        );
        let note = match (self.points.is_empty(), values.is_empty()) {
            (true, _) => Some("no runs recorded yet"),
            (false, true) => Some("no value recorded"),
            _ => None,
        };
        if let Some(note) = note {
            let _ = write!(
                out,
                r#"<text x="{x}" y="{y}" class="label" text-anchor="middle">{note}</text></svg>"#,
                x = W / 2.0,
                y = H / 2.0
            );
            return out;
        }
        let place = Placer::new(self.points, max);
        self.line(&mut out, &place);
        for (i, p) in self.points.iter().enumerate() {
            let x = place.x(i);
            if p.failed {
                let _ = write!(
                    out,
                    r#"<line x1="{x:.1}" y1="{base}" x2="{x:.1}" y2="{y2}" class="fail-tick"/>"#,
                    y2 = base + 6.0
                );
            }
            // A run without a value (no Release date seen yet) has its tick only.
            let Some(y) = p.value.map(|v| place.y(v)) else {
                continue;
            };
            // Whole units of a 360-wide drawing, no tooltip, the radius in the
            // style sheet: the figures table has every value, and the page stays a
            // few hundred KB with hundreds of runs.
            let class = if p.failed { r#" class="failed""# } else { "" };
            let _ = write!(out, r#"<circle{class} cx="{x:.0}" cy="{y:.0}"/>"#);
        }
        let (first, last) = (place.from, place.to);
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{y}" class="label">{}</text><text x="{x}" y="{y}" class="label" text-anchor="end">{}</text></svg>"#,
            first.strftime("%Y-%m-%d %H:%M"),
            last.strftime("%Y-%m-%d %H:%M"),
            y = H - 6.0,
            x = W - RIGHT
        );
        out
    }

    /// The line through the successful runs' values.
    fn line(&self, out: &mut String, place: &Placer) {
        let coords: Vec<String> = self
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.failed)
            .filter_map(|(i, p)| {
                p.value
                    .map(|v| format!("{:.0},{:.0}", place.x(i), place.y(v)))
            })
            .collect();
        if coords.len() > 1 {
            let _ = write!(
                out,
                r#"<polyline class="trend" points="{}"/>"#,
                coords.join(" ")
            );
        }
    }
}

/// Maps a run (its place in the history) and a value to the drawing.
struct Placer {
    from: jiff::Timestamp,
    to: jiff::Timestamp,
    runs: usize,
    max: f64,
}

impl Placer {
    fn new(points: &[Point], max: f64) -> Placer {
        let from = points.iter().map(|p| p.at).min().unwrap_or_default();
        let to = points.iter().map(|p| p.at).max().unwrap_or_default();
        Placer {
            from,
            to,
            runs: points.len(),
            max,
        }
    }

    fn x(&self, run: usize) -> f64 {
        if self.runs < 2 {
            return W / 2.0;
        }
        let f = run as f64 / (self.runs - 1) as f64;
        LEFT + 4.0 + f * (W - LEFT - RIGHT - 8.0)
    }

    fn y(&self, v: f64) -> f64 {
        let base = H - BOTTOM;
        if self.max <= 0.0 {
            return base;
        }
        base - (v / self.max) * (base - TOP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_has_a_point_per_run_and_marks_failures() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let points = [
            Point {
                at: t("2026-11-30T00:00:00Z"),
                value: Some(2.0),
                failed: false,
            },
            Point {
                at: t("2026-11-30T06:00:00Z"),
                value: Some(1.0),
                failed: true,
            },
            Point {
                at: t("2026-11-30T12:00:00Z"),
                value: Some(4.0),
                failed: false,
            },
        ];
        let g = Graph {
            id: "m-duration".into(),
            title: "Run <duration>",
            format: &|v| format!("{v:.0} s"),
            points: &points,
        };
        let svg = g.svg("m-figures");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("<circle class=\"failed\"").count(), 1);
        assert_eq!(svg.matches("fail-tick").count(), 1);
        assert!(svg.contains("Run &lt;duration&gt; · max 4 s"), "{svg}");
        assert!(svg.contains("<polyline"));
    }
}
