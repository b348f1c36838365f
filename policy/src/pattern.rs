//! The name pattern language shared by the ACL, guardrails and governance: `*` matches
//! everything, `abc*` matches every name starting with `abc`, anything else matches itself
//! exactly (case-sensitive). A `*` anywhere but at the end is refused: the original treated
//! it as a literal character, which silently matched nothing the author meant.

use std::fmt;

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`.
    Any,
    /// `prefix*`.
    Prefix(String),
    /// A name.
    Exact(String),
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty pattern: use \"*\" to match everything")]
    Empty,
    #[error("invalid pattern \"{0}\": `*` is only allowed at the end")]
    InnerWildcard(String),
}

impl Pattern {
    /// Compile `text`.
    pub fn new(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let body = text.strip_suffix('*');
        if body.unwrap_or(text).contains('*') {
            return Err(PatternError::InnerWildcard(text.into()));
        }
        Ok(match body {
            Some("") => Pattern::Any,
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Pattern::Exact(exact) => name == exact,
        }
    }

    /// Whether this is `*` or a prefix: a grant wider than one name.
    pub fn is_wildcard(&self) -> bool {
        !matches!(self, Pattern::Exact(_))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
            Pattern::Exact(exact) => f.write_str(exact),
        }
    }
}

/// A list of patterns, matching a name when any of them does. An empty set matches
/// nothing; selectors where "omitted" means "everything" use [`PatternSet::any_or`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternSet(Vec<Pattern>);

impl PatternSet {
    /// Compile every pattern of `texts`.
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Result<PatternSet, PatternError> {
        texts
            .iter()
            .map(|text| Pattern::new(text.as_ref()))
            .collect::<Result<_, _>>()
            .map(PatternSet)
    }

    /// Like [`PatternSet::new`], but an empty list means `*`.
    pub fn any_or<S: AsRef<str>>(texts: &[S]) -> Result<PatternSet, PatternError> {
        if texts.is_empty() {
            Ok(PatternSet(vec![Pattern::Any]))
        } else {
            PatternSet::new(texts)
        }
    }

    /// Whether any pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|pattern| pattern.matches(name))
    }

    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_prefix_and_exact() {
        let any = Pattern::new("*").unwrap();
        assert!(any.matches("") && any.matches("delete_all"));
        let prefix = Pattern::new("get_*").unwrap();
        assert!(prefix.matches("get_contact") && prefix.matches("get_"));
        assert!(!prefix.matches("get") && !prefix.matches("Get_contact"));
        let exact = Pattern::new("get").unwrap();
        assert!(exact.matches("get") && !exact.matches("get_contact"));
    }

    #[test]
    fn refuses_what_would_silently_match_nothing() {
        assert_eq!(Pattern::new(""), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::new("*_x"),
            Err(PatternError::InnerWildcard(_))
        ));
        assert!(matches!(
            Pattern::new("a*b*"),
            Err(PatternError::InnerWildcard(_))
        ));
    }

    #[test]
    fn sets_match_any_member_and_empty_means_nothing_unless_asked() {
        let set = PatternSet::new(&["a*", "b"]).unwrap();
        assert!(set.matches("abc") && set.matches("b") && !set.matches("bc"));
        assert!(!PatternSet::new::<&str>(&[]).unwrap().matches("x"));
        assert!(PatternSet::any_or::<&str>(&[]).unwrap().matches("x"));
        assert_eq!(set.patterns()[0].to_string(), "a*");
    }
}
