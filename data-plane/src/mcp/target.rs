//! What a message asks for, as the policy phases see it: the [`Target`] of a `tools/call`,
//! `resources/read` / `resources/subscribe`, `prompts/get` or `completion/complete` (as
//! the prompt or resource it completes), and the list whose answer is filtered. Read from
//! the message body only when a policy section is on, so the path without policies never
//! parses a message twice.
//!
//! Parsing fails closed: a message the policy phases cannot read (a `tools/call` without a
//! string `params.name`, duplicate keys at the top of `params` or anywhere inside
//! `params.arguments`) is refused, never passed through unchecked, because an upstream
//! could read it differently than the gateway did. Methods MCP does not define for clients
//! are refused too ([`Message::known`]): the gateway cannot admit what it cannot read.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::lists::ListKind;
use super::methods::known_method;
use super::strict::Strict;

/// What one message asks the policy phases to decide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target<'a> {
    /// `tools/call` of `tool` (unprefixed: the name the server knows) with `args`.
    ToolCall {
        server: &'a str,
        tool: &'a str,
        args: &'a Value,
    },
    /// `resources/read` or `resources/subscribe` of `uri`, or the completion of an argument
    /// of the resource template `uri`.
    ResourceRead { server: &'a str, uri: &'a str },
    /// `prompts/get` of `name`, or the completion of one of its arguments.
    PromptGet { server: &'a str, name: &'a str },
    /// Anything else: only the rate-limit phase applies (`admission::admit_request`).
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
pub(crate) struct Message {
    /// The JSON-RPC method; `None` for a response.
    pub method: Option<String>,
    /// A method without an id: nobody waits for an answer.
    pub notification: bool,
    /// What the message names, by method.
    pub subject: Subject,
}

/// What a message names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Subject {
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
pub(crate) enum Unreadable {
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("{method} needs params.{param} (a string)")]
    MissingParam {
        method: &'static str,
        param: &'static str,
    },
    #[error("{method} needs params.arguments to be an object")]
    Arguments { method: &'static str },
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    params: Option<Params>,
}

/// The params the policy phases read. Only an object is accepted (a struct would also take
/// an array, by position), and a repeated key is an error rather than "last one wins", at
/// the top and anywhere inside `arguments`.
#[derive(Default)]
struct Params {
    name: Option<String>,
    uri: Option<String>,
    arguments: Option<Strict>,
    reference: Option<Reference>,
}

/// `params.ref` of `completion/complete`: what is being completed.
#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
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
                        "ref" => set(&mut map, &mut params.reference, "ref")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
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
    pub(crate) fn parse(body: &[u8]) -> Result<Message, Unreadable> {
        // Params given as an array (allowed by JSON-RPC, not used by MCP) name nothing.
        let probe = match serde_json::from_slice::<Probe<'_>>(body) {
            Ok(probe) => probe,
            Err(_) => match serde_json::from_slice::<MethodOnly<'_>>(body) {
                Ok(MethodOnly { method, id }) if !names_something(method.as_deref()) => Probe {
                    method,
                    id,
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
        let notification = method.is_some() && probe.id.is_none();
        let params = probe.params.unwrap_or_default();
        let text = |value: Option<String>, method: &'static str, param: &'static str| {
            value.ok_or(Unreadable::MissingParam { method, param })
        };
        let subject = match method.as_deref() {
            Some("tools/call") => {
                let name = text(params.name, "tools/call", "name")?;
                let args = match params.arguments.map(|strict| strict.0) {
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
                uri: text(params.uri, "resources/read", "uri")?,
            },
            Some("resources/subscribe") => Subject::Resource {
                uri: text(params.uri, "resources/subscribe", "uri")?,
            },
            Some("prompts/get") => Subject::Prompt {
                name: text(params.name, "prompts/get", "name")?,
            },
            Some("completion/complete") => completed(params.reference)?,
            Some(method) => ListKind::of_method(method).map_or(Subject::None, Subject::List),
            None => Subject::None,
        };
        Ok(Message {
            method,
            notification,
            subject,
        })
    }

    /// The target of this message on `server`.
    pub(crate) fn target_on<'a>(&'a self, server: &'a str) -> Target<'a> {
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
    pub(crate) fn list(&self) -> Option<ListKind> {
        match self.subject {
            Subject::List(kind) => Some(kind),
            _ => None,
        }
    }

    /// Whether admission knows this message: a response, or a method MCP defines for a
    /// client to send ([`known_method`]).
    pub(crate) fn known(&self) -> bool {
        self.method
            .as_deref()
            .is_none_or(|method| known_method(method, self.notification))
    }
}

/// What `completion/complete` completes: an argument of the prompt `ref.name`
/// (`ref/prompt`) or of the resource template `ref.uri` (`ref/resource`); it is admitted
/// as that prompt or resource, so a caller cannot learn about what it may not use.
fn completed(reference: Option<Reference>) -> Result<Subject, Unreadable> {
    const METHOD: &str = "completion/complete";
    let missing = |param| Unreadable::MissingParam {
        method: METHOD,
        param,
    };
    let reference = reference.ok_or(missing("ref.type"))?;
    match reference.kind.as_deref() {
        Some("ref/prompt") => Ok(Subject::Prompt {
            name: reference.name.ok_or(missing("ref.name"))?,
        }),
        Some("ref/resource") => Ok(Subject::Resource {
            uri: reference.uri.ok_or(missing("ref.uri"))?,
        }),
        _ => Err(missing("ref.type")),
    }
}

#[derive(Deserialize)]
struct MethodOnly<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<IgnoredAny>,
}

/// Whether messages of `method` name something the policy phases decide on.
pub(crate) fn names_something(method: Option<&str>) -> bool {
    matches!(
        method,
        Some(
            "tools/call"
                | "resources/read"
                | "resources/subscribe"
                | "prompts/get"
                | "completion/complete"
        )
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(message: Value) -> Result<Message, Unreadable> {
        Message::parse(message.to_string().as_bytes())
    }

    #[test]
    fn tool_calls_name_their_tool_and_arguments() {
        let message = parse(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"delete","arguments":{"id":7}}}))
        .unwrap();
        let target = message.target_on("crm");
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
    fn completions_are_their_prompt_or_resource() {
        let prompt = parse(json!({"jsonrpc":"2.0","id":1,"method":"completion/complete",
            "params":{"ref":{"type":"ref/prompt","name":"secret"},"argument":{"name":"a","value":""}}}))
        .unwrap();
        assert_eq!(
            prompt.target_on("s"),
            Target::PromptGet {
                server: "s",
                name: "secret"
            }
        );
        let resource = parse(
            json!({"jsonrpc":"2.0","id":1,"method":"completion/complete",
            "params":{"ref":{"type":"ref/resource","uri":"test://template/{id}/data"}}}),
        )
        .unwrap();
        assert_eq!(
            resource.target_on("s"),
            Target::ResourceRead {
                server: "s",
                uri: "test://template/{id}/data"
            }
        );
        for (params, missing) in [
            (json!({}), "params.ref.type"),
            (
                json!({"ref": {"type": "ref/other", "name": "x"}}),
                "params.ref.type",
            ),
            (json!({"ref": {"type": "ref/prompt"}}), "params.ref.name"),
            (
                json!({"ref": {"type": "ref/resource", "name": "x"}}),
                "params.ref.uri",
            ),
        ] {
            let message =
                json!({"jsonrpc":"2.0","id":1,"method":"completion/complete","params":params});
            let error = parse(message).unwrap_err().to_string();
            assert!(error.contains(missing), "{params}: {error}");
        }
        // Two refs: which one would the server complete?
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"ok"},"ref":{"type":"ref/prompt","name":"secret"}}}"#;
        assert!(Message::parse(body).is_err());
    }

    #[test]
    fn repeated_keys_inside_arguments_are_refused_at_any_depth() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"order":{"to":"alice","to":"mallory"}}}}"#;
        let error = Message::parse(body).unwrap_err();
        assert!(error.to_string().contains("repeats a key"), "{error}");
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"a":"1","a":"2"}}}"#;
        assert!(Message::parse(body).is_err());
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"order":{"to":"alice"},"to":"bob"}}}"#;
        assert!(Message::parse(body).is_ok());
    }

    #[test]
    fn only_methods_mcp_defines_for_clients_are_known() {
        for known in [
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}),
            json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t"}}),
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}),
            json!({"jsonrpc":"2.0","id":1,"result":{}}),
        ] {
            assert!(parse(known.clone()).unwrap().known(), "{known}");
        }
        for unknown in [
            json!({"jsonrpc":"2.0","id":1,"method":"admin/delete_everything"}),
            json!({"jsonrpc":"2.0","id":1,"method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","method":"initialize"}),
            json!({"jsonrpc":"2.0","method":"notifications/x-vendor"}),
        ] {
            let message = parse(unknown.clone()).unwrap();
            assert!(!message.known(), "{unknown}");
        }
        let notification = parse(json!({"jsonrpc":"2.0","method":"notifications/x"})).unwrap();
        assert!(notification.notification);
    }
}
