//! ASCII-armor blocks in keyrings and detached signatures.

/// Finds `-----BEGIN PGP <kind>-----` … `-----END PGP <kind>-----` blocks at line
/// starts; returns (kind, block text including both lines).
pub(super) fn armor_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    let mut open: Option<(usize, &str)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_end();
        match open {
            None => {
                if let Some(kind) = trimmed
                    .strip_prefix("-----BEGIN PGP ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    open = Some((start, kind));
                }
            }
            Some((block_start, kind)) => {
                let is_end = trimmed
                    .strip_prefix("-----END PGP ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                    == Some(kind);
                if is_end {
                    blocks.push((kind, &text[block_start..offset]));
                    open = None;
                }
            }
        }
    }
    blocks
}
