//! Resources of the fixture: a static catalogue (the fixture's own `fixture://` documents and
//! the `test://` names the conformance suite reads), plus one resource template,
//! `test://template/{id}/data`, whose reads are generated from the `id`.

use rmcp::{
    ErrorData,
    model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate},
};
use serde_json::json;

use crate::content_tools::PNG_BASE64;

/// What a static resource holds.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// UTF-8 text.
    Text(&'static str),
    /// Binary data, base64-encoded.
    Blob(&'static str),
}

/// One static resource.
#[derive(Debug, Clone, Copy)]
pub struct StaticResource {
    pub uri: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub mime_type: &'static str,
    pub body: Body,
}

/// URI of the resource clients may subscribe to.
pub const WATCHED_URI: &str = "test://watched-resource";

/// The URI template of the templated resource (RFC 6570, one variable).
pub const TEMPLATE_URI: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

const CATALOGUE: &[StaticResource] = &[
    StaticResource {
        uri: "fixture://greeting",
        name: "greeting",
        description: "A short static text document.",
        mime_type: "text/plain",
        body: Body::Text("Hello from the Conduit MCP fixture."),
    },
    StaticResource {
        uri: "fixture://about",
        name: "about",
        description: "What this server is for.",
        mime_type: "text/markdown",
        body: Body::Text("# conduit-mcp-fixture\n\nThe example upstream of the Conduit gateway.\n"),
    },
    StaticResource {
        uri: "test://static-text",
        name: "static-text",
        description: "A static text resource (conformance suite).",
        mime_type: "text/plain",
        body: Body::Text("This is the content of the static text resource."),
    },
    StaticResource {
        uri: "test://static-binary",
        name: "static-binary",
        description: "A static binary resource, a 1x1 PNG (conformance suite).",
        mime_type: "image/png",
        body: Body::Blob(PNG_BASE64),
    },
    StaticResource {
        uri: WATCHED_URI,
        name: "watched-resource",
        description: "A resource clients can subscribe to (conformance suite).",
        mime_type: "text/plain",
        body: Body::Text("Watched resource content."),
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
        })
        .collect()
}

/// The `resources/templates/list` entries.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE_URI, "template-data")
            .with_description("JSON data generated for any `id` (conformance suite).")
            .with_mime_type("application/json"),
    ]
}

/// The `id` of a URI matching [`TEMPLATE_URI`]; `None` when it does not match or the id is
/// empty or spans several path segments.
pub fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn read_template(uri: &str, id: &str) -> ReadResourceResult {
    let data = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
    let contents = ResourceContents::text(data.to_string(), uri).with_mime_type("application/json");
    ReadResourceResult::new(vec![contents])
}

/// The `resources/read` result for `uri`, or a resource-not-found error naming it.
pub fn read(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    if let Some(id) = template_id(uri) {
        return Ok(read_template(uri, id));
    }
    let resource = catalogue().iter().find(|r| r.uri == uri).ok_or_else(|| {
        ErrorData::resource_not_found(
            format!("unknown resource: {uri}"),
            Some(serde_json::json!({ "uri": uri })),
        )
    })?;
    let contents = match resource.body {
        Body::Text(text) => ResourceContents::text(text, resource.uri),
        Body::Blob(blob) => ResourceContents::blob(blob, resource.uri),
    }
    .with_mime_type(resource.mime_type);
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
    fn template_reads_carry_the_id() {
        assert_eq!(template_id("test://template/42/data"), Some("42"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/a/b/data"), None);
        let result = read("test://template/42/data").expect("template read");
        let wire = serde_json::to_value(&result).expect("serializes");
        let text = wire["contents"][0]["text"].as_str().expect("text");
        let data: serde_json::Value = serde_json::from_str(text).expect("json");
        assert_eq!(data["id"], json!("42"));
        assert_eq!(wire["contents"][0]["mimeType"], json!("application/json"));
    }

    #[test]
    fn binary_resource_is_a_blob() {
        let wire =
            serde_json::to_value(read("test://static-binary").expect("reads")).expect("serializes");
        assert_eq!(wire["contents"][0]["blob"], json!(PNG_BASE64));
        assert_eq!(wire["contents"][0]["mimeType"], json!("image/png"));
    }

    #[test]
    fn unknown_uri_is_not_found() {
        let err = read("fixture://missing").expect_err("unknown uri");
        assert!(err.message.contains("fixture://missing"));
    }
}
