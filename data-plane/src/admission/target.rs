//! What a message asks for, as the policy phases see it: the [`Target`] of a `tools/call`,
//! `resources/read` / `resources/subscribe` or `prompts/get`, and the list whose answer is
//! filtered. Read from the message body only when a policy section is on, so the path
//! without policies never parses a message twice.
//!
//! Parsing fails closed: a message the policy phases cannot read (a `tools/call` without a
//! string `params.name`, duplicate keys, an `Mcp-Name` header naming something else than
//! the body) is refused, never passed through unchecked, because an upstream could read it
//! differently than the gateway did.

use std::borrow::Cow;

use http::request::Parts;
use serde::Deserialize;
use serde_json::Value;

use crate::aggregate::ListKind;

/// The 2026-07-28 routing header naming the tool, prompt or resource of a request.
const MCP_NAME: &str = "mcp-name";
/// The 2026-07-28 routing header naming the method of a request.
const MCP_METHOD: &str = "mcp-method";

/// What one message asks the policy phases to decide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target<'a> {
    /// `tools/call` of `tool` (unprefixed: the name the server knows) with `args`.
    ToolCall {
        server: &'a str,
        tool: &'a str,
        args: &'a Value,
    },
    /// `resources/read` or `resources/subscribe` of `uri`.
    ResourceRead { server: &'a str, uri: &'a str },
    /// `prompts/get` of `name`.
    PromptGet { server: &'a str, name: &'a str },
    /// Anything else: no admission phase applies.
    Other,
}

impl Target<'_> {
    /// The server the target is on (`None` for [`Target::Other`]).
    pub fn server(&self) -> Option<&str> {
        match self {
            Target::ToolCall { server, .. }
            | Target::ResourceRead { server, .. }
            | Target::PromptGet { server, .. } => Some(server),
            Target::Other => None,
        }
    }
}

/// The parts of a message the policy phases read, owned so a [`Target`] can borrow them.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The JSON-RPC method; `None` for a response.
    pub method: Option<String>,
    /// What the message names, by method.
    pub subject: Subject,
}

/// What a message names.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Tool {
        name: String,
        args: Value,
    },
    Resource {
        uri: String,
    },
    Prompt {
        name: String,
    },
    /// A list whose answer is filtered.
    List(ListKind),
    None,
}

/// Why a message cannot be admitted as it is (answered −32602, or −32600 for a body that
/// is not a message at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("{method} needs params.{param} (a string)")]
    MissingParam {
        method: &'static str,
        param: &'static str,
    },
    #[error("{method} needs params.arguments to be an object")]
    Arguments { method: &'static str },
    #[error("the {field} header ({header:?}) does not name what the message does ({body:?})")]
    NameMismatch {
        field: &'static str,
        header: String,
        body: String,
    },
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    params: Option<Params>,
}

/// The params the policy phases read. Only an object is accepted (a struct would also take
/// an array, by position), and a repeated key is an error rather than "last one wins".
#[derive(Default)]
struct Params {
    name: Option<String>,
    uri: Option<String>,
    arguments: Option<Value>,
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Params;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("params as an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Params, A::Error> {
                fn set<'de, A: serde::de::MapAccess<'de>, T: Deserialize<'de>>(
                    map: &mut A,
                    slot: &mut Option<T>,
                    key: &'static str,
                ) -> Result<(), A::Error> {
                    if slot.is_some() {
                        return Err(serde::de::Error::duplicate_field(key));
                    }
                    *slot = Some(map.next_value()?);
                    Ok(())
                }
                let mut params = Params::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "name" => set(&mut map, &mut params.name, "name")?,
                        "uri" => set(&mut map, &mut params.uri, "uri")?,
                        "arguments" => set(&mut map, &mut params.arguments, "arguments")?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(params)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl Message {
    /// Read one JSON-RPC message (a body that passed the envelope check).
    pub fn parse(body: &[u8]) -> Result<Message, Unreadable> {
        // Params given as an array (allowed by JSON-RPC, not used by MCP) name nothing.
        let probe = match serde_json::from_slice::<Probe<'_>>(body) {
            Ok(probe) => probe,
            Err(_) => match serde_json::from_slice::<MethodOnly<'_>>(body) {
                Ok(MethodOnly { method }) if !names_something(method.as_deref()) => Probe {
                    method,
                    params: None,
                },
                Ok(_) | Err(_) => {
                    let error = serde_json::from_slice::<Probe<'_>>(body)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    return Err(Unreadable::Invalid(error));
                }
            },
        };
        let method = probe.method.map(Cow::into_owned);
        let params = probe.params;
        let text = |params: &Option<Params>, method: &'static str, param: &'static str| {
            let value = params.as_ref().and_then(|p| match param {
                "name" => p.name.as_deref(),
                _ => p.uri.as_deref(),
            });
            value
                .map(str::to_owned)
                .ok_or(Unreadable::MissingParam { method, param })
        };
        let subject = match method.as_deref() {
            Some("tools/call") => {
                let name = text(&params, "tools/call", "name")?;
                let args = match params.and_then(|p| p.arguments) {
                    None | Some(Value::Null) => Value::Object(Default::default()),
                    Some(args @ Value::Object(_)) => args,
                    Some(_) => {
                        return Err(Unreadable::Arguments {
                            method: "tools/call",
                        });
                    }
                };
                Subject::Tool { name, args }
            }
            Some("resources/read") => Subject::Resource {
                uri: text(&params, "resources/read", "uri")?,
            },
            Some("resources/subscribe") => Subject::Resource {
                uri: text(&params, "resources/subscribe", "uri")?,
            },
            Some("prompts/get") => Subject::Prompt {
                name: text(&params, "prompts/get", "name")?,
            },
            Some(method) => ListKind::of_method(method).map_or(Subject::None, Subject::List),
            None => Subject::None,
        };
        Ok(Message { method, subject })
    }

    /// The target of this message on `server`; `Err` when the message's `Mcp-Method` or
    /// `Mcp-Name` header names something else than its body (an upstream routing by the
    /// header would then run what the policy phases did not check).
    pub fn target<'a>(&'a self, server: &'a str, parts: &Parts) -> Result<Target<'a>, Unreadable> {
        let target = self.target_on(server);
        let named = match &self.subject {
            Subject::Tool { name, .. } | Subject::Prompt { name } => Some(name.as_str()),
            Subject::Resource { uri } => Some(uri.as_str()),
            _ => None,
        };
        let checks = [
            ("Mcp-Method", MCP_METHOD, self.method.as_deref()),
            ("Mcp-Name", MCP_NAME, named),
        ];
        for (field, name, body) in checks {
            let (Some(body), Some(header)) = (body, parts.headers.get(name)) else {
                continue;
            };
            if header.as_bytes() != body.as_bytes() {
                return Err(Unreadable::NameMismatch {
                    field,
                    header: String::from_utf8_lossy(header.as_bytes()).into_owned(),
                    body: body.to_owned(),
                });
            }
        }
        Ok(target)
    }

    /// The target of this message on `server`, without looking at headers.
    pub fn target_on<'a>(&'a self, server: &'a str) -> Target<'a> {
        match &self.subject {
            Subject::Tool { name, args } => Target::ToolCall {
                server,
                tool: name,
                args,
            },
            Subject::Resource { uri } => Target::ResourceRead { server, uri },
            Subject::Prompt { name } => Target::PromptGet { server, name },
            Subject::List(_) | Subject::None => Target::Other,
        }
    }

    /// The list whose answer must be filtered, if this is one.
    pub fn list(&self) -> Option<ListKind> {
        match self.subject {
            Subject::List(kind) => Some(kind),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct MethodOnly<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
}

/// Whether messages of `method` name something the policy phases decide on.
pub fn names_something(method: Option<&str>) -> bool {
    matches!(
        method,
        Some("tools/call" | "resources/read" | "resources/subscribe" | "prompts/get")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(message: Value) -> Result<Message, Unreadable> {
        Message::parse(message.to_string().as_bytes())
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tool_calls_name_their_tool_and_arguments() {
        let message = parse(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"delete","arguments":{"id":7}}}))
        .unwrap();
        let target = message.target("crm", &parts(&[])).unwrap();
        assert_eq!(
            target,
            Target::ToolCall {
                server: "crm",
                tool: "delete",
                args: &json!({"id": 7})
            }
        );
        assert_eq!(target.server(), Some("crm"));
        // Missing or null arguments are the empty object, as the fingerprint has it.
        let message =
            parse(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}))
                .unwrap();
        assert!(matches!(
            message.target_on("s"),
            Target::ToolCall { args, .. } if *args == json!({})
        ));
    }

    #[test]
    fn resources_prompts_and_lists() {
        for method in ["resources/read", "resources/subscribe"] {
            let message = parse(json!({"jsonrpc":"2.0","id":1,"method":method,
                "params":{"uri":"file:///a"}}))
            .unwrap();
            assert_eq!(
                message.target_on("s"),
                Target::ResourceRead {
                    server: "s",
                    uri: "file:///a"
                }
            );
        }
        let message = parse(json!({"jsonrpc":"2.0","id":1,"method":"prompts/get",
            "params":{"name":"greet","arguments":{"who":"x"}}}))
        .unwrap();
        assert_eq!(
            message.target_on("s"),
            Target::PromptGet {
                server: "s",
                name: "greet"
            }
        );
        let list =
            parse(json!({"jsonrpc":"2.0","id":1,"method":"resources/templates/list"})).unwrap();
        assert_eq!(list.list(), Some(ListKind::ResourceTemplates));
        assert_eq!(list.target_on("s"), Target::Other);
        for other in [
            json!({"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe","params":{"uri":"u"}}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","id":1,"result":{}}),
            json!({"jsonrpc":"2.0","id":1,"method":"ping","params":[1, 2]}),
        ] {
            let message = parse(other.clone()).unwrap();
            assert_eq!(message.target_on("s"), Target::Other, "{other}");
            assert_eq!(message.list(), None);
        }
    }

    #[test]
    fn escaped_method_names_are_read_as_json_reads_them() {
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"d\u0065lete"}}"#;
        let message = Message::parse(body).unwrap();
        assert!(matches!(
            message.target_on("s"),
            Target::ToolCall { tool: "delete", .. }
        ));
    }

    #[test]
    fn unreadable_messages_are_refused() {
        for (message, expected) in [
            (
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}),
                "params.name",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}),
                "invalid message",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}),
                "invalid message",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}),
                "arguments",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}),
                "params.uri",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"prompts/get"}),
                "params.name",
            ),
        ] {
            let error = parse(message.clone()).expect_err(&message.to_string());
            assert!(error.to_string().contains(expected), "{message}: {error}");
        }
        // Two names: which one would the upstream take? Neither is trusted.
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"delete"}}"#;
        assert!(Message::parse(body).is_err());
    }

    #[test]
    fn the_mcp_name_header_must_agree_with_the_body() {
        let message = parse(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"read"}}))
        .unwrap();
        assert!(message.target("s", &parts(&[("mcp-name", "read")])).is_ok());
        let refused = message
            .target("s", &parts(&[("mcp-name", "delete")]))
            .unwrap_err();
        assert!(matches!(refused, Unreadable::NameMismatch { .. }));
        let both = parts(&[("mcp-method", "tools/call"), ("mcp-name", "read")]);
        assert!(message.target("s", &both).is_ok());
        let refused = message
            .target("s", &parts(&[("mcp-method", "ping")]))
            .unwrap_err();
        assert!(refused.to_string().contains("Mcp-Method"), "{refused}");
        let ping = parse(json!({"jsonrpc":"2.0","id":1,"method":"ping"})).unwrap();
        assert!(
            ping.target("s", &parts(&[("mcp-method", "tools/call")]))
                .is_err()
        );
    }
}
