//! Compiled guardrail conditions: a dot path into the tool arguments and a test on the value
//! found there. Owns the operator semantics (documented on `model::Operator`):
//! - a missing field makes every condition false, except `exists` / `not_exists`;
//! - `eq` / `neq` compare JSON values, numbers numerically (`1` equals `1.0`);
//! - `gt` / `gte` / `lt` / `lte` hold for numbers only;
//! - `contains`: substring of a string, or an element (by `eq`) of an array;
//!   `not_contains` is its negation, and true for any other type;
//! - `matches`: a string matching a regular expression of the `regex` crate (linear time in
//!   the input; compiled once, with a bounded program size).

use conduit_config::model::{self, Operator};
use serde_json::Value;

/// Why a condition could not be compiled (validation refuses the same documents first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The field path has an empty segment.
    #[error("invalid field path \"{0}\"")]
    Field(String),
    /// The operator needs a value of another type, or none.
    #[error("operator {operator}: {problem}")]
    Value {
        /// The operator.
        operator: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The regular expression does not compile.
    #[error("invalid regular expression: {0}")]
    Regex(String),
}

#[derive(Debug, Clone)]
enum Test {
    Exists,
    NotExists,
    Eq(Value),
    Neq(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Contains(Value),
    NotContains(Value),
    Matches(regex::Regex),
}

/// One compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    field: String,
    test: Test,
}

impl TryFrom<&model::Condition> for Condition {
    type Error = ConditionError;

    fn try_from(condition: &model::Condition) -> Result<Condition, ConditionError> {
        if condition.field.split('.').any(str::is_empty) {
            return Err(ConditionError::Field(condition.field.clone()));
        }
        let operator = condition.operator;
        let name = operator_name(operator);
        let value = || {
            condition.value.clone().ok_or(ConditionError::Value {
                operator: name,
                problem: "a value is required",
            })
        };
        let number = || {
            condition
                .value
                .as_ref()
                .and_then(Value::as_f64)
                .ok_or(ConditionError::Value {
                    operator: name,
                    problem: "the value must be a number",
                })
        };
        let test = match operator {
            Operator::Exists | Operator::NotExists if condition.value.is_some() => {
                return Err(ConditionError::Value {
                    operator: name,
                    problem: "takes no value",
                });
            }
            Operator::Exists => Test::Exists,
            Operator::NotExists => Test::NotExists,
            Operator::Eq => Test::Eq(value()?),
            Operator::Neq => Test::Neq(value()?),
            Operator::Gt => Test::Gt(number()?),
            Operator::Gte => Test::Gte(number()?),
            Operator::Lt => Test::Lt(number()?),
            Operator::Lte => Test::Lte(number()?),
            Operator::Contains => Test::Contains(value()?),
            Operator::NotContains => Test::NotContains(value()?),
            Operator::Matches => {
                let pattern = condition.value.as_ref().and_then(Value::as_str).ok_or(
                    ConditionError::Value {
                        operator: name,
                        problem: "the value must be a regular expression (a string)",
                    },
                )?;
                Test::Matches(
                    model::compile_condition_regex(pattern)
                        .map_err(|e| ConditionError::Regex(e.to_string()))?,
                )
            }
        };
        Ok(Condition {
            field: condition.field.clone(),
            test,
        })
    }
}

impl Condition {
    /// Whether the condition holds for the tool arguments `args`.
    pub fn holds(&self, args: &Value) -> bool {
        let Some(actual) = lookup(args, &self.field) else {
            return matches!(self.test, Test::NotExists);
        };
        match &self.test {
            Test::Exists => true,
            Test::NotExists => false,
            Test::Eq(value) => json_eq(actual, value),
            Test::Neq(value) => !json_eq(actual, value),
            Test::Gt(n) => actual.as_f64().is_some_and(|a| a > *n),
            Test::Gte(n) => actual.as_f64().is_some_and(|a| a >= *n),
            Test::Lt(n) => actual.as_f64().is_some_and(|a| a < *n),
            Test::Lte(n) => actual.as_f64().is_some_and(|a| a <= *n),
            Test::Contains(value) => contains(actual, value).unwrap_or(false),
            Test::NotContains(value) => contains(actual, value).is_none_or(|found| !found),
            Test::Matches(regex) => actual.as_str().is_some_and(|s| regex.is_match(s)),
        }
    }

    /// The field path.
    pub fn field(&self) -> &str {
        &self.field
    }
}

/// The value at dot path `path` in `value`; a segment indexes an object by key, or an array
/// by position (`items.0.name`).
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(value, |current, segment| match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// JSON equality where numbers compare by value: `1 == 1.0`.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// `Some(found)` for a string (substring; a non-string needle is never found) or an array
/// (element equality); `None` for any other type.
fn contains(haystack: &Value, needle: &Value) -> Option<bool> {
    match haystack {
        Value::String(s) => Some(needle.as_str().is_some_and(|n| s.contains(n))),
        Value::Array(items) => Some(items.iter().any(|item| json_eq(item, needle))),
        _ => None,
    }
}

fn operator_name(operator: Operator) -> &'static str {
    match operator {
        Operator::Exists => "exists",
        Operator::NotExists => "not_exists",
        Operator::Eq => "eq",
        Operator::Neq => "neq",
        Operator::Gt => "gt",
        Operator::Gte => "gte",
        Operator::Lt => "lt",
        Operator::Lte => "lte",
        Operator::Contains => "contains",
        Operator::NotContains => "not_contains",
        Operator::Matches => "matches",
    }
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
