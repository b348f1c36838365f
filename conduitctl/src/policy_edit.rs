//! Single-entry edits of the policy sections: `acl set-policy|delete-policy` and
//! `guardrails set-rule|delete-rule`. Each reads the current stored document, changes one
//! entry of `acl.policies` or `guardrails.rules`, validates the result locally and stores it
//! through the ordinary Apply RPC, so every edit is a new version with its author and
//! message, like `apply`.
//!
//! The Apply RPC has no expected-version (compare-and-swap) field: an edit racing another
//! change could undo it. The command detects that afterwards (the version it created is not
//! the one after the version it read) and says so on stderr.

use conduit_config::Document;
use conduit_config::model::{
    Acl, AclAction, AclPolicy, GuardrailDefault, GuardrailRule, Guardrails,
};
use conduit_proto::v1::ApplyRequest;
use serde::de::DeserializeOwned;

use crate::apply::{applied_line, author};
use crate::cli::ConnectionArgs;
use crate::cli_policy::{DeleteEntryArgs, EditArgs, SetEntryArgs};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::{source, validate};

/// An entry of a named list.
trait Named {
    fn name(&self) -> &str;
}

impl Named for AclPolicy {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for GuardrailRule {
    fn name(&self) -> &str {
        &self.name
    }
}

/// `acl set-policy -f FILE [--before NAME]`.
pub async fn set_policy(
    connection: &ConnectionArgs,
    args: &SetEntryArgs,
) -> Result<Exit, CliError> {
    let policy: AclPolicy = read_entry(args)?;
    let name = policy.name.clone();
    edit(
        connection,
        &args.edit,
        format!("acl: set policy {name}"),
        |document| {
            let acl = match &mut document.acl {
                Some(acl) => {
                    refuse_default_action(args, "acl")?;
                    acl
                }
                None => document.acl.insert(Acl {
                    enabled: None,
                    default_action: acl_default(args)?,
                    policies: Vec::new(),
                }),
            };
            upsert(
                &mut acl.policies,
                policy,
                args.before.as_deref(),
                "acl policy",
            )
        },
    )
    .await
}

/// `acl delete-policy NAME`.
pub async fn delete_policy(
    connection: &ConnectionArgs,
    args: &DeleteEntryArgs,
) -> Result<Exit, CliError> {
    let message = format!("acl: delete policy {}", args.name);
    edit(connection, &args.edit, message, |document| {
        let policies = document.acl.as_mut().map(|acl| &mut acl.policies);
        remove(policies, &args.name, "acl policy")
    })
    .await
}

/// `guardrails set-rule -f FILE [--before NAME]`.
pub async fn set_rule(connection: &ConnectionArgs, args: &SetEntryArgs) -> Result<Exit, CliError> {
    let rule: GuardrailRule = read_entry(args)?;
    let name = rule.name.clone();
    edit(
        connection,
        &args.edit,
        format!("guardrails: set rule {name}"),
        |document| {
            let guardrails = match &mut document.guardrails {
                Some(guardrails) => {
                    refuse_default_action(args, "guardrails")?;
                    guardrails
                }
                None => document.guardrails.insert(Guardrails {
                    enabled: None,
                    default_action: guardrails_default(args)?,
                    rules: Vec::new(),
                    webhook_allow_private_networks: None,
                }),
            };
            upsert(
                &mut guardrails.rules,
                rule,
                args.before.as_deref(),
                "guardrail rule",
            )
        },
    )
    .await
}

/// `guardrails delete-rule NAME`.
pub async fn delete_rule(
    connection: &ConnectionArgs,
    args: &DeleteEntryArgs,
) -> Result<Exit, CliError> {
    let message = format!("guardrails: delete rule {}", args.name);
    edit(connection, &args.edit, message, |document| {
        let rules = document.guardrails.as_mut().map(|g| &mut g.rules);
        remove(rules, &args.name, "guardrail rule")
    })
    .await
}

fn read_entry<T: DeserializeOwned>(args: &SetEntryArgs) -> Result<T, CliError> {
    let (name, text) = validate::read_source(&args.file)?;
    yaml_serde::from_str(&text)
        .map_err(|error| CliError::new(Exit::Invalid, format!("{name}: invalid entry: {error}")))
}

fn refuse_default_action(args: &SetEntryArgs, section: &str) -> Result<(), CliError> {
    match &args.default_action {
        Some(_) => Err(CliError::usage(format!(
            "error: --default-action only applies when the {section} section does not exist \
             yet; change {section}.default_action with apply"
        ))),
        None => Ok(()),
    }
}

fn acl_default(args: &SetEntryArgs) -> Result<AclAction, CliError> {
    match args.default_action.as_deref() {
        Some("allow") => Ok(AclAction::Allow),
        Some("deny") => Ok(AclAction::Deny),
        Some(other) => Err(CliError::usage(format!(
            "error: --default-action for acl is allow or deny, not {other:?}"
        ))),
        None => Err(CliError::usage(
            "error: the config has no acl section yet: give --default-action allow|deny \
             (what happens to clients no policy names)",
        )),
    }
}

fn guardrails_default(args: &SetEntryArgs) -> Result<GuardrailDefault, CliError> {
    match args.default_action.as_deref() {
        Some("allow") => Ok(GuardrailDefault::Allow),
        Some("block") => Ok(GuardrailDefault::Block),
        Some(other) => Err(CliError::usage(format!(
            "error: --default-action for guardrails is allow or block, not {other:?}"
        ))),
        None => Err(CliError::usage(
            "error: the config has no guardrails section yet: give --default-action \
             allow|block (what happens to calls no rule matches)",
        )),
    }
}

/// Replace the entry with the same name (in place, or moved before `before`), or insert it
/// before `before`, or append it.
fn upsert<T: Named>(
    list: &mut Vec<T>,
    entry: T,
    before: Option<&str>,
    what: &str,
) -> Result<(), CliError> {
    if before == Some(entry.name()) {
        return Err(CliError::usage(format!(
            "error: --before names the {what} being set"
        )));
    }
    let existing = list.iter().position(|e| e.name() == entry.name());
    match (existing, before) {
        (Some(index), None) => list[index] = entry,
        (existing, Some(before)) => {
            if let Some(index) = existing {
                list.remove(index);
            }
            let Some(target) = list.iter().position(|e| e.name() == before) else {
                return Err(CliError::usage(format!(
                    "error: --before {before:?}: no {what} has that name"
                )));
            };
            list.insert(target, entry);
        }
        (None, None) => list.push(entry),
    }
    Ok(())
}

fn remove<T: Named>(list: Option<&mut Vec<T>>, name: &str, what: &str) -> Result<(), CliError> {
    let missing = || {
        CliError::new(
            Exit::ServerError,
            format!("error: no {what} named {name:?}"),
        )
    };
    let list = list.ok_or_else(missing)?;
    let index = list
        .iter()
        .position(|e| e.name() == name)
        .ok_or_else(missing)?;
    list.remove(index);
    Ok(())
}

/// Read the current document, change it, validate it and apply it.
async fn edit(
    connection: &ConnectionArgs,
    args: &EditArgs,
    default_message: String,
    change: impl FnOnce(&mut Document) -> Result<(), CliError>,
) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let (base, mut document) = source::fetch(&session, 0)
        .await?
        .unwrap_or_else(|| (0, Document::default()));
    change(&mut document)?;
    let text = checked(&document)?;
    let request = ApplyRequest {
        document: text,
        message: args.message.clone().unwrap_or(default_message),
        author: author(args.author.as_deref()),
        dry_run: args.dry_run,
    };
    let response = session
        .call(CALL_TIMEOUT, session.admin.clone().apply(request))
        .await?;
    println!("{}", applied_line(&response));
    if !response.dry_run && response.changed && response.version != base + 1 {
        eprintln!(
            "warning: this edit was made on version {base}, but version {} was created: \
             another change was stored meanwhile and this version does not contain it \
             (compare with `conduitctl history` and `get config --version N`)",
            response.version
        );
    }
    Ok(Exit::Ok)
}

/// The edited document as YAML, validated like `validate` does (exit 2 with every error).
fn checked(document: &Document) -> Result<String, CliError> {
    let text = document.to_yaml();
    Document::from_text(&text)
        .map_err(|errors| CliError::invalid("the edited config is invalid", &errors))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static str);
    impl Named for E {
        fn name(&self) -> &str {
            self.0
        }
    }

    fn names(list: &[E]) -> Vec<&str> {
        list.iter().map(|e| e.0).collect()
    }

    #[test]
    fn upsert_replaces_moves_inserts_and_appends() {
        let mut list = vec![E("a"), E("b"), E("c")];
        upsert(&mut list, E("b"), None, "x").unwrap();
        assert_eq!(names(&list), ["a", "b", "c"]);
        upsert(&mut list, E("c"), Some("a"), "x").unwrap();
        assert_eq!(names(&list), ["c", "a", "b"]);
        upsert(&mut list, E("d"), Some("b"), "x").unwrap();
        assert_eq!(names(&list), ["c", "a", "d", "b"]);
        upsert(&mut list, E("e"), None, "x").unwrap();
        assert_eq!(names(&list), ["c", "a", "d", "b", "e"]);
        assert_eq!(
            upsert(&mut list, E("f"), Some("zz"), "x")
                .unwrap_err()
                .exit(),
            Exit::Usage
        );
        assert_eq!(
            upsert(&mut list, E("f"), Some("f"), "x")
                .unwrap_err()
                .exit(),
            Exit::Usage
        );
    }

    #[test]
    fn remove_needs_an_existing_entry() {
        let mut list = vec![E("a"), E("b")];
        remove(Some(&mut list), "a", "x").unwrap();
        assert_eq!(names(&list), ["b"]);
        assert!(remove(Some(&mut list), "a", "x").is_err());
        assert!(remove::<E>(None, "a", "x").is_err());
    }

    #[test]
    fn edited_documents_are_validated() {
        let document = Document {
            acl: Some(Acl {
                enabled: None,
                default_action: AclAction::Deny,
                policies: vec![AclPolicy {
                    name: "p".into(),
                    clients: vec![],
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let error = checked(&document).unwrap_err();
        assert_eq!(error.exit(), Exit::Invalid);
        assert!(
            error.message().contains("acl.policies[0].clients"),
            "{}",
            error.message()
        );
    }
}
