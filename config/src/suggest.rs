//! "Did you mean" hints for misspelt field names and enumeration values.

/// The candidate closest to `input`, if one is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wanted = normalize(input);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(&wanted, &normalize(candidate));
        // Short names need a close match; longer ones tolerate a few more slips.
        let limit = (candidate.chars().count().max(wanted.chars().count()) / 3).clamp(1, 3);
        if distance <= limit && best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `", did you mean \"x\"?"` or an empty string.
pub(crate) fn hint<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(input, candidates) {
        Some(candidate) => format!(", did you mean \"{candidate}\"?"),
        None => String::new(),
    }
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        let fields = ["timeout_ms", "transport", "url", "headers"];
        assert_eq!(closest("timout_ms", fields), Some("timeout_ms"));
        assert_eq!(closest("Headers", fields), Some("headers"));
        assert_eq!(closest("urll", fields), Some("url"));
        assert_eq!(
            closest("api_key", ["none", "api-key", "jwt"]),
            Some("api-key")
        );
    }

    #[test]
    fn ignores_unrelated_names() {
        assert_eq!(closest("colour", ["timeout_ms", "url"]), None);
        assert_eq!(closest("x", ["id", "url"]), None);
        assert_eq!(hint("zzz", ["url"]), "");
    }
}
