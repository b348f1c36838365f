//! Resource URIs as the ACL compares them (RFC 3986 §6.2.2, syntax-based normalization):
//! scheme and host in lower case, percent-encoded unreserved characters decoded, the hex
//! digits of the remaining escapes in upper case. Two spellings of one URI thus match the
//! same rules: `TEST://Template/%61` is `test://template/a`.
//!
//! What normalization cannot make unambiguous is refused instead ([`AmbiguousUri`]): dot
//! segments (`.`, `..`, also when spelled `%2E`), an encoded `/`, `\` or `.` in the
//! authority or path, a raw `\`, control characters (raw or encoded, NUL included) and
//! malformed escapes. RFC 3986 would remove dot segments, but an upstream may resolve them
//! differently (or not at all): `test://template/../static-text` normalizes to
//! `test://template/static-text`, inside an allow rule for `test://template/*`, while a
//! server joining paths reads `test://static-text`. A URI whose meaning depends on who
//! reads it is not matched at all.

use std::borrow::Cow;

/// Why a resource URI is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmbiguousUri {
    /// A `.` or `..` path segment (also percent-encoded).
    #[error("it has a dot segment (`.` or `..`)")]
    DotSegment,
    /// `%2F`, `%5C` or `%2E` in the authority or path.
    #[error("it has an encoded `/`, `\\` or `.` in its path")]
    EncodedSeparator,
    /// A raw `\`, which some servers read as `/`.
    #[error("it has a backslash")]
    Backslash,
    /// A control character or NUL, raw or percent-encoded.
    #[error("it has a control character")]
    Control,
    /// A `%` not followed by two hex digits.
    #[error("it has a malformed percent-escape")]
    MalformedEscape,
}

/// `uri` normalized for matching; borrowed when it is already in normal form.
pub fn normalize(uri: &str) -> Result<Cow<'_, str>, AmbiguousUri> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(AmbiguousUri::Control);
    }
    if uri.contains('\\') {
        return Err(AmbiguousUri::Backslash);
    }
    let (scheme, rest) = split_scheme(uri);
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path, tail) = rest.split_at(path_end);

    let mut out = String::with_capacity(uri.len());
    if let Some(scheme) = scheme {
        out.push_str(&scheme.to_ascii_lowercase());
        out.push(':');
    }
    if let Some(authority) = authority {
        out.push_str("//");
        let authority = decode_unreserved(authority, true)?;
        // Only the host is case-insensitive; user info keeps its case.
        match authority.rsplit_once('@') {
            Some((user, host)) => {
                out.push_str(user);
                out.push('@');
                out.push_str(&host.to_ascii_lowercase());
            }
            None => out.push_str(&authority.to_ascii_lowercase()),
        }
    }
    let path = decode_unreserved(path, true)?;
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(AmbiguousUri::DotSegment);
    }
    out.push_str(&path);
    out.push_str(&decode_unreserved(tail, false)?);
    if out == uri {
        Ok(Cow::Borrowed(uri))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// `(Some(scheme), rest after ':')` when `uri` starts with a scheme, else `(None, uri)`.
fn split_scheme(uri: &str) -> (Option<&str>, &str) {
    let Some(colon) = uri.find(':') else {
        return (None, uri);
    };
    let scheme = &uri[..colon];
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        (Some(scheme), &uri[colon + 1..])
    } else {
        (None, uri)
    }
}

/// Decode the escapes of unreserved characters in `part`, upper-case the others. With
/// `hierarchical` (authority and path), escapes of `/`, `\` and `.` are refused: decoded
/// they would change the segments, kept they are read as separators by some servers.
fn decode_unreserved(part: &str, hierarchical: bool) -> Result<Cow<'_, str>, AmbiguousUri> {
    if !part.contains('%') {
        return Ok(Cow::Borrowed(part));
    }
    let bytes = part.as_bytes();
    let mut out = String::with_capacity(part.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            // Copy up to the next escape as text (it may hold multi-byte characters).
            let next = part[i..].find('%').map_or(part.len(), |n| i + n);
            out.push_str(&part[i..next]);
            i = next;
            continue;
        }
        let hex = part
            .get(i + 1..i + 3)
            .ok_or(AmbiguousUri::MalformedEscape)?;
        let byte = u8::from_str_radix(hex, 16).map_err(|_| AmbiguousUri::MalformedEscape)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AmbiguousUri::MalformedEscape);
        }
        if byte < 0x20 || byte == 0x7f {
            return Err(AmbiguousUri::Control);
        }
        if hierarchical && matches!(byte, b'/' | b'\\' | b'.') {
            return Err(AmbiguousUri::EncodedSeparator);
        }
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~' | b'.') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push_str(&hex.to_ascii_uppercase());
        }
        i += 3;
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(uri: &str) -> String {
        normalize(uri)
            .unwrap_or_else(|e| panic!("{uri}: {e}"))
            .into_owned()
    }

    #[test]
    fn spellings_of_one_uri_become_one() {
        assert!(matches!(
            normalize("test://template/42/data"),
            Ok(Cow::Borrowed(_))
        ));
        assert_eq!(normal("TEST://Template/42/data"), "test://template/42/data");
        assert_eq!(
            normal("test://template/%34%32/data"),
            "test://template/42/data"
        );
        assert_eq!(normal("test://template/%7e%2d"), "test://template/~-");
        // Reserved and non-ASCII escapes stay, with upper-case hex.
        assert_eq!(normal("file:///a%3fb?q=%2f"), "file:///a%3Fb?q=%2F");
        assert_eq!(normal("file:///caf%c3%a9"), "file:///caf%C3%A9");
        // User info keeps its case; a port stays.
        assert_eq!(
            normal("HTTP://Ada@Example.COM:8080/A"),
            "http://Ada@example.com:8080/A"
        );
        // Paths keep their case, and templates their braces.
        assert_eq!(
            normal("test://template/{id}/Data"),
            "test://template/{id}/Data"
        );
        assert_eq!(normal("urn:ISBN:0451450523"), "urn:ISBN:0451450523");
        assert_eq!(normal("no scheme/x"), "no scheme/x");
    }

    #[test]
    fn what_stays_ambiguous_is_refused() {
        for (uri, why) in [
            ("test://template/../static-text", AmbiguousUri::DotSegment),
            ("test://template/./x", AmbiguousUri::DotSegment),
            ("test://template/..", AmbiguousUri::DotSegment),
            (
                "test://template/%2e%2E/static-text",
                AmbiguousUri::EncodedSeparator,
            ),
            (
                "test://template/%2F..%2Fstatic-text",
                AmbiguousUri::EncodedSeparator,
            ),
            ("test://template/a%5c..", AmbiguousUri::EncodedSeparator),
            ("test://template\\..\\static-text", AmbiguousUri::Backslash),
            ("test://template/a%00", AmbiguousUri::Control),
            ("test://template/a\0", AmbiguousUri::Control),
            ("test://template/a%0a", AmbiguousUri::Control),
            ("test://template/100%", AmbiguousUri::MalformedEscape),
            ("test://template/%zz", AmbiguousUri::MalformedEscape),
            ("test://template/%+1", AmbiguousUri::MalformedEscape),
            ("test://template/%é", AmbiguousUri::MalformedEscape),
            ("mailto:a/../b", AmbiguousUri::DotSegment),
        ] {
            assert_eq!(normalize(uri), Err(why), "{uri}");
        }
        // Dots inside a segment, and encoded slashes in the query, are no separators.
        assert_eq!(normal("test://template/a..b/.x"), "test://template/a..b/.x");
        assert_eq!(normal("test://t/r?path=..%2F.."), "test://t/r?path=..%2F..");
    }
}
