//! The one list of the methods MCP defines for a client to send: which ones admission
//! knows, and which ones are their own `method` label of `conduit_dp_requests_total`.

/// A request MCP defines for a client to send (2025-06-18 to 2026-07-28).
struct ClientRequest {
    method: &'static str,
    /// Whether the method is its own metrics label; the newer ones share `other`, which
    /// keeps the label set of the request metric as it was.
    labelled: bool,
}

const fn request(method: &'static str, labelled: bool) -> ClientRequest {
    ClientRequest { method, labelled }
}

/// Requests MCP defines for a client to send, apart from `subscriptions/listen`, whose
/// subscriptions admission does not read yet.
const CLIENT_REQUESTS: [ClientRequest; 19] = [
    request("initialize", true),
    request("ping", true),
    request("server/discover", false),
    request("tools/list", true),
    request("tools/call", true),
    request("resources/list", true),
    request("resources/templates/list", true),
    request("resources/read", true),
    request("resources/subscribe", true),
    request("resources/unsubscribe", true),
    request("prompts/list", true),
    request("prompts/get", true),
    request("completion/complete", true),
    request("logging/setLevel", true),
    request("tasks/get", false),
    request("tasks/result", false),
    request("tasks/list", false),
    request("tasks/cancel", false),
    request("tasks/update", false),
];

/// Notifications MCP defines for a client to send.
const CLIENT_NOTIFICATIONS: [&str; 5] = [
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// Whether admission knows `method` (a request, or with `notification` a notification):
/// with admission on, anything else is refused (a request) or dropped (a notification).
pub(crate) fn known_method(method: &str, notification: bool) -> bool {
    if notification {
        CLIENT_NOTIFICATIONS.contains(&method)
    } else {
        CLIENT_REQUESTS.iter().any(|known| known.method == method)
    }
}

/// The `method` label of a JSON-RPC method: itself when it is one MCP defines for clients,
/// `notifications` for any notification, else `other` (callers choose method names, so
/// they never become label values).
pub(crate) fn method_label(method: &str) -> &'static str {
    let labelled = CLIENT_REQUESTS
        .iter()
        .find(|known| known.labelled && known.method == method);
    if let Some(known) = labelled {
        return known.method;
    }
    if method.starts_with("notifications/") {
        "notifications"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_closed_set() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("logging/setLevel"), "logging/setLevel");
        assert_eq!(method_label("notifications/initialized"), "notifications");
        assert_eq!(method_label("tools/call2"), "other");
        assert_eq!(method_label("server/discover"), "other");
    }
}
