//! Many failures of one step summed up in one error, the first few named, with their
//! causes: what an operator reads when a run fails.

/// One error for many failed files, the first few named.
pub fn failed(what: &str, errors: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} failed{}", errors.len(), first_failures(&errors))
}

/// The first few of many failures, one per indented line, and how many more.
pub fn first_failures(errors: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out = String::new();
    for e in errors.iter().take(SHOWN) {
        out.push_str("\n  ");
        out.push_str(e);
    }
    if errors.len() > SHOWN {
        out.push_str(&format!("\n  ... and {} more", errors.len() - SHOWN));
    }
    out
}

/// An error with its causes, "a: b: c", for messages that list many failures (the
/// cause is often the part that helps: "No space left on device").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Transparent wrappers repeat their source's message.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
