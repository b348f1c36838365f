//! Resources of the fixture: a static catalogue of text documents. The server handler lists
//! and reads from [`catalogue`]; templated resources can be added beside it later.

use rmcp::{
    ErrorData,
    model::{ReadResourceResult, Resource, ResourceContents},
};

/// One static text resource.
#[derive(Debug, Clone, Copy)]
pub struct StaticResource {
    pub uri: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub mime_type: &'static str,
    pub text: &'static str,
}

const CATALOGUE: &[StaticResource] = &[
    StaticResource {
        uri: "fixture://greeting",
        name: "greeting",
        description: "A short static text document.",
        mime_type: "text/plain",
        text: "Hello from the Conduit MCP fixture.",
    },
    StaticResource {
        uri: "fixture://about",
        name: "about",
        description: "What this server is for.",
        mime_type: "text/markdown",
        text: "# conduit-mcp-fixture\n\nThe example upstream of the Conduit gateway.\n",
    },
];

/// Every static resource, in listing order.
pub fn catalogue() -> &'static [StaticResource] {
    CATALOGUE
}

/// The `resources/list` entries.
pub fn list() -> Vec<Resource> {
    catalogue()
        .iter()
        .map(|r| {
            Resource::new(r.uri, r.name)
                .with_description(r.description)
                .with_mime_type(r.mime_type)
                .with_size(r.text.len() as u64)
        })
        .collect()
}

/// The `resources/read` result for `uri`, or a resource-not-found error naming it.
pub fn read(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let resource = catalogue().iter().find(|r| r.uri == uri).ok_or_else(|| {
        ErrorData::resource_not_found(
            format!("unknown resource: {uri}"),
            Some(serde_json::json!({ "uri": uri })),
        )
    })?;
    let contents = ResourceContents::text(resource.text, resource.uri);
    Ok(ReadResourceResult::new(vec![contents]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_resource_can_be_read() {
        for resource in list() {
            let result = read(&resource.uri).expect("listed resource reads");
            assert_eq!(result.contents.len(), 1);
        }
    }

    #[test]
    fn unknown_uri_is_not_found() {
        let err = read("fixture://missing").expect_err("unknown uri");
        assert!(err.message.contains("fixture://missing"));
    }
}
