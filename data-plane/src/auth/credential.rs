//! Reading the credential of a request: `Authorization: Bearer <credential>` (the exact,
//! case-sensitive scheme followed by one space), else, for API keys, `X-API-Key`.
//!
//! Anything else that looks like an attempt is refused as malformed rather than guessed at:
//! a lowercase `bearer`, another scheme with no `X-API-Key` beside it, padding or inner
//! whitespace, control characters, several values, or a credential longer than
//! [`MAX_CREDENTIAL_BYTES`].

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName};

use super::Reason;

/// The API key header (lower priority than `Authorization`).
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// Longest credential read; longer ones are refused without further work.
pub(crate) const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
const BEARER: &[u8] = b"Bearer ";

/// Where a credential may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accept {
    /// `Authorization: Bearer` only (tokens).
    Bearer,
    /// `Authorization: Bearer`, else `X-API-Key` (API keys).
    BearerOrApiKey,
}

/// The credential of the request, borrowed from its headers.
pub(super) fn extract(headers: &HeaderMap, accept: Accept) -> Result<&[u8], Reason> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let first = authorization.next();
    if first.is_some() && authorization.next().is_some() {
        return Err(Reason::Malformed);
    }
    if let Some(value) = first {
        if let Some(credential) = value.as_bytes().strip_prefix(BEARER) {
            return checked(credential);
        }
        // Another scheme: the caller may be sending its upstream credential; the gateway's
        // own key can still come in X-API-Key.
        if accept == Accept::Bearer || !headers.contains_key(X_API_KEY) {
            return Err(Reason::Malformed);
        }
    }
    if accept == Accept::BearerOrApiKey {
        let mut keys = headers.get_all(X_API_KEY).iter();
        if let Some(key) = keys.next() {
            if keys.next().is_some() {
                return Err(Reason::Malformed);
            }
            return checked(key.as_bytes());
        }
    }
    Err(Reason::Missing)
}

/// A credential is 1 to [`MAX_CREDENTIAL_BYTES`] visible ASCII characters: no whitespace,
/// no control characters.
fn checked(credential: &[u8]) -> Result<&[u8], Reason> {
    let visible = credential.iter().all(|b| (0x21..=0x7e).contains(b));
    if credential.is_empty() || credential.len() > MAX_CREDENTIAL_BYTES || !visible {
        return Err(Reason::Malformed);
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn key(pairs: &[(&str, &[u8])]) -> Result<Vec<u8>, Reason> {
        extract(&headers(pairs), Accept::BearerOrApiKey).map(<[u8]>::to_vec)
    }

    #[test]
    fn bearer_then_x_api_key() {
        assert_eq!(key(&[("authorization", b"Bearer k1")]), Ok(b"k1".to_vec()));
        assert_eq!(key(&[("x-api-key", b"k2")]), Ok(b"k2".to_vec()));
        // Authorization wins when both are sent.
        assert_eq!(
            key(&[("authorization", b"Bearer k1"), ("x-api-key", b"k2")]),
            Ok(b"k1".to_vec())
        );
        // Another scheme leaves room for X-API-Key (the caller's upstream credential).
        assert_eq!(
            key(&[("authorization", b"Basic dTpw"), ("x-api-key", b"k2")]),
            Ok(b"k2".to_vec())
        );
        assert_eq!(key(&[]), Err(Reason::Missing));
        assert_eq!(key(&[("cookie", b"k")]), Err(Reason::Missing));
    }

    #[test]
    fn refuses_what_the_reference_suite_refuses() {
        let long = [b'a'; 100 * 1024];
        let long_bearer = [b"Bearer ".as_slice(), &long].concat();
        for (name, value) in [
            ("authorization", b"bearer k1".as_slice()),
            ("authorization", b"BEARER k1"),
            ("authorization", b"Basic dTpw"),
            ("authorization", b"Bearer  k1"),
            ("authorization", b"Bearer k1 "),
            ("authorization", b"Bearer \tk1"),
            ("authorization", b"Bearer "),
            ("authorization", b"Bearer"),
            ("authorization", b"Bearer k\xff1"),
            ("authorization", b"Bearer k 1"),
            ("authorization", &long_bearer),
            ("x-api-key", b" k1"),
            ("x-api-key", b""),
            ("x-api-key", &long),
        ] {
            assert_eq!(
                key(&[(name, value)]),
                Err(Reason::Malformed),
                "{name}: {:?}",
                String::from_utf8_lossy(&value[..value.len().min(20)])
            );
        }
        // Several values of one header.
        assert_eq!(
            key(&[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer b")
            ]),
            Err(Reason::Malformed)
        );
        assert_eq!(
            key(&[("x-api-key", b"a"), ("x-api-key", b"b")]),
            Err(Reason::Malformed)
        );
        // Header values cannot carry NUL bytes at all (hyper refuses the request).
        assert!(HeaderValue::from_bytes(b"Bearer k\x001").is_err());
    }

    #[test]
    fn tokens_come_only_from_authorization() {
        let only_key = headers(&[("x-api-key", b"k2")]);
        assert_eq!(extract(&only_key, Accept::Bearer), Err(Reason::Missing));
        let basic = headers(&[("authorization", b"Basic dTpw"), ("x-api-key", b"k2")]);
        assert_eq!(extract(&basic, Accept::Bearer), Err(Reason::Malformed));
        let bearer = headers(&[("authorization", b"Bearer a.b.c")]);
        assert_eq!(extract(&bearer, Accept::Bearer), Ok(b"a.b.c".as_slice()));
    }
}
