//! The upstream's whole protocol: one JSON-RPC message in, one answer out, no state.
//!
//! Just enough MCP for a client to connect (`initialize`, `ping`, `tools/list`) and one
//! tool, `add`, whose answer a load generator can check: the text is the sum of `a` and `b`.

use serde::Deserialize;
use serde_json::{Value, json};

const PROTOCOL_VERSION: &str = "2025-11-25";

/// What the HTTP layer sends back.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// `200 application/json` with this body.
    Json(Vec<u8>),
    /// `202 Accepted`, no body: the message was a notification or a response.
    Accepted,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

/// Answer one POSTed body.
pub fn answer(body: &[u8]) -> Answer {
    let message = match serde_json::from_slice::<Message>(body) {
        Ok(message) => message,
        Err(error) if error.is_data() => {
            return reply(
                &Value::Null,
                Err((-32600, format!("invalid request: {error}"))),
            );
        }
        Err(error) => return reply(&Value::Null, Err((-32700, format!("parse error: {error}")))),
    };
    let (Some(id), Some(method)) = (message.id, message.method) else {
        return Answer::Accepted;
    };
    let outcome = match method.as_str() {
        "tools/call" => call(&message.params),
        "initialize" => Ok(json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "conduit-bench-upstream", "version": env!("CARGO_PKG_VERSION")},
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": [{
            "name": "add",
            "description": "The sum of two integers.",
            "inputSchema": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        }]})),
        other => Err((-32601, format!("unknown method {other}"))),
    };
    reply(&id, outcome)
}

fn call(params: &Value) -> Result<Value, (i64, String)> {
    if params["name"] != "add" {
        return Err((-32602, "unknown tool (only add exists)".into()));
    }
    let arguments = &params["arguments"];
    let (Some(a), Some(b)) = (arguments["a"].as_i64(), arguments["b"].as_i64()) else {
        return Err((-32602, "add needs the integers a and b".into()));
    };
    let sum = a
        .checked_add(b)
        .ok_or((-32602, "the sum overflows a 64-bit integer".into()))?;
    Ok(json!({"content": [{"type": "text", "text": sum.to_string()}], "isError": false}))
}

fn reply(id: &Value, outcome: Result<Value, (i64, String)>) -> Answer {
    let message = match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    };
    Answer::Json(serde_json::to_vec(&message).expect("a JSON value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(answer: Answer) -> Value {
        match answer {
            Answer::Json(body) => serde_json::from_slice(&body).unwrap(),
            Answer::Accepted => panic!("no body"),
        }
    }

    #[test]
    fn add_answers_the_sum_with_the_request_id() {
        let body = br#"{"jsonrpc":"2.0","id":"7+-3","method":"tools/call","params":{"name":"add","arguments":{"a":7,"b":-3}}}"#;
        assert_eq!(
            json_of(answer(body)),
            json!({"jsonrpc":"2.0","id":"7+-3","result":{"content":[{"type":"text","text":"4"}],"isError":false}})
        );
    }

    #[test]
    fn errors_keep_the_id() {
        let unknown = json_of(answer(br#"{"jsonrpc":"2.0","id":3,"method":"nope"}"#));
        assert_eq!(
            (unknown["id"].clone(), unknown["error"]["code"].clone()),
            (json!(3), json!(-32601))
        );
        let bad = json_of(answer(
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"add","arguments":{"a":1}}}"#,
        ));
        assert_eq!(
            (bad["id"].clone(), bad["error"]["code"].clone()),
            (json!(4), json!(-32602))
        );
        assert_eq!(
            json_of(answer(b"{no")).pointer("/error/code"),
            Some(&json!(-32700))
        );
        let overflow = json_of(answer(
            br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"add","arguments":{"a":9223372036854775807,"b":1}}}"#,
        ));
        assert_eq!(
            (overflow["id"].clone(), overflow["error"]["code"].clone()),
            (json!(5), json!(-32602))
        );
    }

    #[test]
    fn notifications_are_accepted_without_a_body() {
        assert_eq!(
            answer(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Answer::Accepted
        );
    }
}
