//! Read-only views of stored configuration: `get config` (one document) and `history`
//! (every version's metadata, newest first).

use chrono::SecondsFormat;
use conduit_config::Document;
use conduit_proto::v1::{ConfigVersion, GetConfigRequest, ListVersionsRequest};
use serde::Serialize;

use crate::cli::{ConnectionArgs, GetConfigArgs, HistoryArgs};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::output::{ConfigFormat, ListFormat, Table, json, or_dash, short_hash, yaml_of_json};

/// `conduitctl get config [--version N] [-o yaml|json]`.
pub async fn config(connection: &ConnectionArgs, args: &GetConfigArgs) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let request = GetConfigRequest {
        version: args.version.unwrap_or(0),
    };
    let stored = session
        .call(CALL_TIMEOUT, session.admin.clone().get_config(request))
        .await?;
    if stored.version == 0 {
        return Err(CliError::new(
            Exit::ServerError,
            "error: no config has been applied yet",
        ));
    }
    print!("{}", render_config(&stored.config_json, args.output)?);
    Ok(Exit::Ok)
}

/// The stored canonical JSON as YAML (the config model's own rendering, so `get config`
/// output applies back unchanged) or as pretty JSON.
pub fn render_config(config_json: &str, format: ConfigFormat) -> Result<String, CliError> {
    let value: serde_json::Value = serde_json::from_str(config_json).map_err(|error| {
        CliError::new(
            Exit::ServerError,
            format!("error: control plane sent a config that is not JSON: {error}"),
        )
    })?;
    Ok(match format {
        ConfigFormat::Json => json(&value),
        ConfigFormat::Yaml => match Document::from_text(config_json) {
            Ok(document) => document.to_yaml(),
            // Written by a newer control plane than this conduitctl knows: still show it.
            Err(_) => yaml_of_json(&value),
        },
    })
}

/// `conduitctl history [-o table|json] [--limit N]`.
pub async fn history(connection: &ConnectionArgs, args: &HistoryArgs) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let request = ListVersionsRequest {
        limit: args.limit.unwrap_or(0),
    };
    let listing = session
        .call(CALL_TIMEOUT, session.admin.clone().list_versions(request))
        .await?;
    print!("{}", render_history(&listing.versions, args.output));
    Ok(Exit::Ok)
}

/// One entry of `history -o json`; the field set is part of the CLI contract.
#[derive(Debug, Serialize)]
struct HistoryEntry<'a> {
    version: u64,
    hash: &'a str,
    author: &'a str,
    message: &'a str,
    created_at: &'a str,
    /// 0 when the version was not created by a rollback (as on the wire).
    rolled_back_from: u64,
}

pub fn render_history(versions: &[ConfigVersion], format: ListFormat) -> String {
    match format {
        ListFormat::Json => json(
            &versions
                .iter()
                .map(|v| HistoryEntry {
                    version: v.version,
                    hash: &v.hash,
                    author: &v.author,
                    message: &v.message,
                    created_at: &v.created_at,
                    rolled_back_from: v.rolled_back_from,
                })
                .collect::<Vec<_>>(),
        ),
        ListFormat::Table => {
            let mut table = Table::new(&["VERSION", "AUTHOR", "CREATED", "MESSAGE", "HASH"]);
            for version in versions {
                table.row(vec![
                    version.version.to_string(),
                    or_dash(&version.author),
                    created(&version.created_at),
                    message_cell(version),
                    short_hash(&version.hash).to_string(),
                ]);
            }
            table.render()
        }
    }
}

/// The subject line of the message, with the rollback origin appended.
fn message_cell(version: &ConfigVersion) -> String {
    let subject = version.message.lines().next().unwrap_or("").trim();
    match (subject.is_empty(), version.rolled_back_from) {
        (true, 0) => "-".to_string(),
        (false, 0) => subject.to_string(),
        (true, from) => format!("(rollback of {from})"),
        (false, from) => format!("{subject} (rollback of {from})"),
    }
}

/// UTC to the second; whatever the server sent when it is not RFC 3339.
fn created(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|time| {
            time.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| or_dash(rfc3339))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64, message: &str, rolled_back_from: u64) -> ConfigVersion {
        ConfigVersion {
            version: n,
            hash: format!("{n:0>2}23456789abcdef"),
            author: "ana@laptop".into(),
            message: message.into(),
            created_at: "2026-11-24T12:23:05.123456+01:00".into(),
            config_json: String::new(),
            rolled_back_from,
        }
    }

    #[test]
    fn history_table() {
        let versions = [
            version(3, "", 1),
            version(2, "add search server\n\nlong body", 0),
            version(1, "", 0),
        ];
        assert_eq!(
            render_history(&versions, ListFormat::Table),
            "VERSION   AUTHOR       CREATED                MESSAGE             HASH\n\
             3         ana@laptop   2026-11-24T11:23:05Z   (rollback of 1)     03234567\n\
             2         ana@laptop   2026-11-24T11:23:05Z   add search server   02234567\n\
             1         ana@laptop   2026-11-24T11:23:05Z   -                   01234567\n"
        );
    }

    #[test]
    fn history_json_has_the_contract_fields() {
        let out = render_history(&[version(2, "revert", 1)], ListFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{
                "version": 2,
                "hash": "0223456789abcdef",
                "author": "ana@laptop",
                "message": "revert",
                "created_at": "2026-11-24T12:23:05.123456+01:00",
                "rolled_back_from": 1
            }])
        );
        assert_eq!(render_history(&[], ListFormat::Json), "[]\n");
    }

    #[test]
    fn config_as_json_and_yaml() {
        let stored = r#"{"servers":[{"id":"a","url":"http://a"}]}"#;
        assert_eq!(
            render_config(stored, ConfigFormat::Json).unwrap(),
            "{\n  \"servers\": [\n    {\n      \"id\": \"a\",\n      \"url\": \"http://a\"\n    }\n  ]\n}\n"
        );
        let yaml = render_config(stored, ConfigFormat::Yaml).unwrap();
        // Whatever the model's exact rendering, it must read back as the same config.
        let reparsed = Document::from_text(&yaml).unwrap();
        assert_eq!(
            reparsed.canonical_json(),
            Document::from_text(stored).unwrap().canonical_json()
        );
        assert_eq!(
            render_config("nope", ConfigFormat::Yaml)
                .unwrap_err()
                .exit(),
            Exit::ServerError
        );
    }

    #[test]
    fn created_is_normalized_to_utc_seconds() {
        assert_eq!(
            created("2026-11-24T12:23:05.9+01:00"),
            "2026-11-24T11:23:05Z"
        );
        assert_eq!(created(""), "-");
        assert_eq!(created("today"), "today");
    }
}
