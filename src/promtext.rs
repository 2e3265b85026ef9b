//! The Prometheus text exposition format, as metrics.prom and `probe --format
//! prometheus` write it: each metric family's `# HELP` and `# TYPE` lines, then its
//! samples, `name{label="value",...} value`, one a line.

use std::fmt::{Display, Write as _};

/// The text of one exposition, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its HELP and TYPE lines. The samples that follow belong to it.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> Family<'_> {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name: name.to_string(),
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// One metric family being written.
pub struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl Family<'_> {
    /// One sample line; label values are escaped, `value` is written as it displays.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
pub fn escape_label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_in_the_text_format() {
        let mut e = Exposition::new();
        let mut f = e.family("x_ok", "gauge", "1 if ok.");
        f.sample(&[("mirror", "a\"b\\c\nd"), ("family", "ipv4")], 1);
        f.sample(&[], 0.5);
        assert_eq!(
            e.finish(),
            "# HELP x_ok 1 if ok.\n# TYPE x_ok gauge\n\
             x_ok{mirror=\"a\\\"b\\\\c\\nd\",family=\"ipv4\"} 1\nx_ok 0.5\n"
        );
    }
}
