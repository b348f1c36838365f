//! Argument completion (`completion/complete`): suggestions for the arguments of the
//! fixture's prompts and for the `{id}` variable of the resource template, filtered by the
//! prefix the client has typed so far.

use rmcp::{
    ErrorData,
    model::{CompleteRequestParams, CompleteResult, CompletionInfo, Reference},
};

use crate::resources::TEMPLATE_URI;

/// Candidate values for one argument of one prompt or resource template.
fn candidates(reference: &Reference, argument: &str) -> &'static [&'static str] {
    match (reference, argument) {
        (Reference::Prompt(prompt), "arg1") if prompt.name == "test_prompt_with_arguments" => {
            &["paris", "park", "party"]
        }
        (Reference::Prompt(prompt), "arg2") if prompt.name == "test_prompt_with_arguments" => {
            &["red", "green", "blue"]
        }
        (Reference::Prompt(prompt), "resourceUri")
            if prompt.name == "test_prompt_with_embedded_resource" =>
        {
            &[
                "test://static-text",
                "test://static-binary",
                "test://watched-resource",
            ]
        }
        (Reference::Prompt(prompt), "name") if prompt.name == "greeting" => {
            &["Ada", "Alan", "Grace"]
        }
        (Reference::Resource(template), "id") if template.uri == TEMPLATE_URI => {
            &["1", "2", "3", "42"]
        }
        _ => &[],
    }
}

/// The `completion/complete` result: every candidate starting with the typed value.
/// Unknown prompts, templates or arguments get an empty list, not an error.
pub fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
    let typed = request.argument.value.as_str();
    let values: Vec<String> = candidates(&request.r#ref, &request.argument.name)
        .iter()
        .filter(|value| value.starts_with(typed))
        .map(|value| (*value).to_owned())
        .collect();
    let total = u32::try_from(values.len()).unwrap_or(u32::MAX);
    let mut info =
        CompletionInfo::new(values).map_err(|err| ErrorData::internal_error(err, None))?;
    info.total = Some(total);
    info.has_more = Some(false);
    Ok(CompleteResult::new(info))
}

#[cfg(test)]
mod tests {
    use rmcp::model::ArgumentInfo;

    use super::*;

    fn values(reference: Reference, name: &str, typed: &str) -> Vec<String> {
        let request = CompleteRequestParams::new(reference, ArgumentInfo::new(name, typed));
        complete(&request).expect("completes").completion.values
    }

    #[test]
    fn prompt_arguments_filter_by_prefix() {
        let reference = || Reference::for_prompt("test_prompt_with_arguments");
        assert_eq!(
            values(reference(), "arg1", "par"),
            vec!["paris", "park", "party"]
        );
        assert_eq!(values(reference(), "arg1", "pari"), vec!["paris"]);
        assert_eq!(
            values(reference(), "arg2", ""),
            vec!["red", "green", "blue"]
        );
    }

    #[test]
    fn template_variable_completes() {
        let reference = Reference::for_resource(TEMPLATE_URI);
        assert_eq!(values(reference, "id", "4"), vec!["42"]);
    }

    #[test]
    fn unknown_reference_gives_no_values() {
        assert!(values(Reference::for_prompt("nope"), "x", "").is_empty());
    }
}
