//! Checks of the platform sections: `observability`, `connect`, `plugins` and `discovery`.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::{Checker, at, nth};
use crate::model::{Discovery, DiscoveryKind, Document};

pub(super) fn check(c: &mut Checker, doc: &Document) {
    observability(c, doc);
    connect(c, doc);
    plugins(c, doc);
    if let Some(discovery) = &doc.discovery {
        self::discovery(c, discovery);
    }
}

fn observability(c: &mut Checker, doc: &Document) {
    let Some(observability) = &doc.observability else {
        return;
    };
    if let Some(fields) = &observability.redact_fields {
        for (index, field) in fields.iter().enumerate() {
            if field.trim().is_empty() {
                c.error(
                    nth("observability.redact_fields", index),
                    "empty field name",
                );
            }
        }
        c.unique(
            "field",
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| (nth("observability.redact_fields", i), f.as_str())),
        );
    }
    if let Some(otel) = &observability.opentelemetry {
        let path = "observability.opentelemetry.endpoint";
        match &otel.endpoint {
            Some(endpoint) => {
                c.url(path, endpoint, &["http", "https"]);
            }
            None if otel.is_enabled() => c.error(path, "required when opentelemetry is enabled"),
            None => {}
        }
    }
}

fn connect(c: &mut Checker, doc: &Document) {
    let Some(connect) = &doc.connect else { return };
    if let Some(url) = connect.registry.as_ref().and_then(|r| r.base_url.as_ref()) {
        c.url("connect.registry.base_url", url, &["https", "http"]);
    }
    if let Some(root) = connect
        .managed_runtime
        .as_ref()
        .and_then(|m| m.root_dir.as_ref())
    {
        c.safe_dir("connect.managed_runtime.root_dir".into(), root);
    }
}

fn plugins(c: &mut Checker, doc: &Document) {
    c.unique(
        "plugin name",
        doc.plugins
            .iter()
            .enumerate()
            .map(|(i, p)| (at(&nth("plugins", i), "name"), p.name.as_str())),
    );
    for (index, plugin) in doc.plugins.iter().enumerate() {
        let path = nth("plugins", index);
        let plugin_path = at(&path, "path");
        if !c.deferred(&plugin.path) {
            if Path::new(&plugin.path)
                .components()
                .any(|part| part == Component::ParentDir)
            {
                c.error(&plugin_path, "must not contain `..`");
            }
            c.safe_dir(plugin_path, &plugin.path);
        }
        let hooks_path = at(&path, "hooks");
        if plugin.hooks.is_empty() {
            c.error(&hooks_path, "must list at least one hook");
        }
        let mut seen = BTreeSet::new();
        for (i, hook) in plugin.hooks.iter().enumerate() {
            if !seen.insert(*hook) {
                c.error(nth(&hooks_path, i), "listed twice");
            }
        }
    }
}

fn discovery(c: &mut Checker, discovery: &Discovery) {
    let poll = discovery.poll_interval_seconds.unwrap_or(30);
    let stale = discovery.stale_timeout_seconds.unwrap_or(90);
    if stale <= poll {
        c.error(
            "discovery.stale_timeout_seconds",
            format!("must be more than poll_interval_seconds ({stale} <= {poll})"),
        );
    }
    if discovery.is_enabled() && discovery.backends.is_empty() {
        c.error(
            "discovery.backends",
            "must list at least one backend when enabled",
        );
    }
    if let Some(cache) = &discovery.default_cache {
        super::servers::server_cache(c, "discovery.default_cache", cache);
    }
    for (index, backend) in discovery.backends.iter().enumerate() {
        let path = nth("discovery.backends", index);
        let (dns, consul) = match backend.kind {
            DiscoveryKind::Http => (false, false),
            DiscoveryKind::Dns => (true, false),
            DiscoveryKind::Consul => (false, true),
        };
        let fields = [
            ("domain", backend.domain.is_some(), dns, "type: dns"),
            (
                "consul_url",
                backend.consul_url.is_some(),
                consul,
                "type: consul",
            ),
            (
                "service_name",
                backend.service_name.is_some(),
                consul,
                "type: consul",
            ),
        ];
        for (field, present, needed, kind) in fields {
            if needed {
                c.require(at(&path, field), present, &format!("for {kind}"));
            } else {
                c.forbid(at(&path, field), present, &format!("only for {kind}"));
            }
        }
        if let Some(url) = &backend.consul_url {
            c.url(&at(&path, "consul_url"), url, &["http", "https"]);
        }
        if let Some(domain) = &backend.domain
            && !c.deferred(domain)
            && (domain.is_empty() || domain.contains(|ch: char| ch.is_whitespace() || ch == '/'))
        {
            c.error(
                at(&path, "domain"),
                format!("invalid DNS name \"{domain}\""),
            );
        }
    }
}
