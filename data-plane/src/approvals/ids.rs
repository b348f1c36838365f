//! Approval request ids: `apr_` and 26 characters of lower-case base32 (RFC 4648 alphabet,
//! no padding) over 128 random bits, so ids cannot be guessed or enumerated.

/// RFC 4648 base32 alphabet, lower-case.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh id.
pub(crate) fn new_id() -> String {
    encode(rand::random::<u128>())
}

fn encode(bits: u128) -> String {
    let mut id = String::with_capacity(30);
    id.push_str("apr_");
    // 26 five-bit groups cover 130 bits; the first group carries the top 3 bits.
    for group in (0..26).rev() {
        let index = ((bits >> (group * 5)) & 0x1f) as usize;
        id.push(char::from(ALPHABET[index]));
    }
    id
}

/// Whether `text` has the shape of an id this module makes.
pub(crate) fn is_well_formed(text: &str) -> bool {
    text.strip_prefix("apr_")
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_base32_of_128_bits() {
        assert_eq!(encode(0), format!("apr_{}", "a".repeat(26)));
        assert_eq!(encode(u128::MAX), format!("apr_h{}", "7".repeat(25)));
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(is_well_formed(&a) && is_well_formed(&b), "{a} {b}");
        assert!(!is_well_formed("apr_short") && !is_well_formed(&a.to_uppercase()));
    }
}
