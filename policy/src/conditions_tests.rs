use serde_json::{Value, json};

use super::*;

fn condition(field: &str, operator: Operator, value: Option<Value>) -> Condition {
    Condition::try_from(&model::Condition {
        field: field.into(),
        operator,
        value,
    })
    .unwrap()
}

fn holds(operator: Operator, value: Value, args: Value) -> bool {
    condition("f", operator, Some(value)).holds(&args)
}

#[test]
fn exists_and_missing_fields() {
    let exists = condition("a.b", Operator::Exists, None);
    let absent = condition("a.b", Operator::NotExists, None);
    assert!(exists.holds(&json!({"a": {"b": null}})));
    assert!(!absent.holds(&json!({"a": {"b": null}})));
    assert!(absent.holds(&json!({"a": 1})) && absent.holds(&Value::Null));
    // Every other operator is false on a missing field, negations included.
    for (operator, value) in [
        (Operator::Eq, json!(1)),
        (Operator::Neq, json!(1)),
        (Operator::Gt, json!(1)),
        (Operator::NotContains, json!("x")),
        (Operator::Matches, json!(".*")),
    ] {
        assert!(!holds(operator, value, json!({})), "{operator:?}");
    }
}

#[test]
fn paths_index_arrays() {
    let c = condition("items.1.name", Operator::Eq, Some(json!("b")));
    assert!(c.holds(&json!({"items": [{"name": "a"}, {"name": "b"}]})));
    assert!(!c.holds(&json!({"items": [{"name": "a"}]})));
    assert!(!c.holds(&json!({"items": "ab"})));
}

#[test]
fn equality_is_json_equality_with_numeric_numbers() {
    assert!(holds(Operator::Eq, json!(1), json!({"f": 1.0})));
    assert!(holds(
        Operator::Eq,
        json!({"a": [1, "x"]}),
        json!({"f": {"a": [1.0, "x"]}})
    ));
    assert!(!holds(Operator::Eq, json!("1"), json!({"f": 1})));
    assert!(!holds(Operator::Eq, json!(true), json!({"f": 1})));
    assert!(holds(Operator::Neq, json!("1"), json!({"f": 1})));
    assert!(!holds(Operator::Neq, json!(2), json!({"f": 2.0})));
    assert!(!holds(
        Operator::Eq,
        json!(u64::MAX),
        json!({"f": i64::MAX})
    ));
}

#[test]
fn comparisons_take_numbers_only() {
    assert!(holds(Operator::Gt, json!(10), json!({"f": 10.5})));
    assert!(!holds(Operator::Gt, json!(10), json!({"f": 10})));
    assert!(holds(Operator::Gte, json!(10), json!({"f": 10})));
    assert!(holds(Operator::Lt, json!(0), json!({"f": -1})));
    assert!(holds(Operator::Lte, json!(0), json!({"f": 0})));
    assert!(!holds(Operator::Gt, json!(1), json!({"f": "100"})));
    assert!(!holds(Operator::Lt, json!(1), json!({"f": null})));
}

#[test]
fn contains_and_not_contains() {
    assert!(holds(
        Operator::Contains,
        json!("DROP"),
        json!({"f": "x DROP y"})
    ));
    assert!(!holds(
        Operator::Contains,
        json!("drop"),
        json!({"f": "x DROP y"})
    ));
    assert!(holds(Operator::Contains, json!(2), json!({"f": [1, 2.0]})));
    assert!(!holds(Operator::Contains, json!(1), json!({"f": "1"})));
    assert!(!holds(
        Operator::Contains,
        json!("a"),
        json!({"f": {"a": 1}})
    ));
    assert!(holds(
        Operator::NotContains,
        json!("z"),
        json!({"f": "abc"})
    ));
    assert!(!holds(
        Operator::NotContains,
        json!("b"),
        json!({"f": "abc"})
    ));
    assert!(holds(Operator::NotContains, json!("a"), json!({"f": 5})));
}

#[test]
fn matches_strings_only() {
    assert!(holds(
        Operator::Matches,
        json!("(?i)drop\\s+table"),
        json!({"f": "Drop  TABLE x"})
    ));
    assert!(!holds(Operator::Matches, json!("^a$"), json!({"f": "ab"})));
    assert!(!holds(Operator::Matches, json!("1"), json!({"f": 1})));
}

#[test]
fn regex_runs_in_linear_time_on_a_pathological_input() {
    // Catastrophic for backtracking engines: (a+)+$ against "aaaa…!".
    let c = condition("f", Operator::Matches, Some(json!("^(a+)+$")));
    let input = format!("{}!", "a".repeat(100_000));
    assert!(!c.holds(&json!({ "f": input })));
    assert!(c.holds(&json!({"f": "aaaa"})));
}

#[test]
fn oversized_and_invalid_operands_are_refused() {
    let compile = |operator, value| {
        Condition::try_from(&model::Condition {
            field: "f".into(),
            operator,
            value,
        })
    };
    assert!(matches!(
        compile(Operator::Matches, Some(json!("(unclosed"))),
        Err(ConditionError::Regex(_))
    ));
    // A huge counted repetition exceeds the compiled size bound.
    assert!(matches!(
        compile(Operator::Matches, Some(json!("(\\w{1000}){1000}"))),
        Err(ConditionError::Regex(_))
    ));
    assert!(compile(Operator::Gt, Some(json!("ten"))).is_err());
    assert!(compile(Operator::Eq, None).is_err());
    assert!(compile(Operator::Exists, Some(json!(1))).is_err());
    assert!(matches!(
        Condition::try_from(&model::Condition {
            field: "a..b".into(),
            operator: Operator::Exists,
            value: None
        }),
        Err(ConditionError::Field(_))
    ));
}
