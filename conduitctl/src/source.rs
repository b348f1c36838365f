//! Where the policy commands read their config from: a local file (`-f`, offline, validated
//! like `validate`) or a version stored on the control plane (`--version N`, default the
//! current one).

use conduit_config::Document;
use conduit_proto::v1::GetConfigRequest;
use tonic::Code;

use crate::cli::ConnectionArgs;
use crate::cli_policy::SourceArgs;
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::validate;

/// A validated document and how to name it in messages.
pub struct Source {
    /// `c.yaml`, `<stdin>` or `version 3`.
    pub name: String,
    pub document: Document,
}

/// The document a check or audit reads.
pub async fn load(connection: &ConnectionArgs, args: &SourceArgs) -> Result<Source, CliError> {
    if let Some(file) = &args.file {
        let local = validate::load(file)?;
        return Ok(Source {
            name: local.name,
            document: local.document,
        });
    }
    if !connection.server.contains("://") {
        return Err(CliError::usage(format!(
            "error: --server {:?} is the control plane's URL; the MCP server to check is \
             --server-id",
            connection.server
        )));
    }
    let session = Session::connect(connection).await?;
    match fetch(&session, args.version.unwrap_or(0)).await? {
        Some((version, document)) => Ok(Source {
            name: format!("version {version}"),
            document,
        }),
        None => Err(CliError::new(
            Exit::ServerError,
            "error: no config has been applied yet",
        )),
    }
}

/// A stored version (0 = current) and its document; `None` when nothing was applied yet.
pub async fn fetch(session: &Session, version: u64) -> Result<Option<(u64, Document)>, CliError> {
    let answer = session
        .call_status(
            CALL_TIMEOUT,
            session
                .admin
                .clone()
                .get_config(GetConfigRequest { version }),
        )
        .await?;
    let stored = match answer {
        Ok(stored) => stored,
        Err(status) if status.code() == Code::NotFound && version == 0 => return Ok(None),
        Err(status) => return Err(session.status_error(status)),
    };
    if stored.version == 0 {
        return Ok(None);
    }
    let document = Document::from_text(&stored.config_json).map_err(|errors| {
        CliError::invalid(
            &format!(
                "version {}: the stored config is not valid for this conduitctl",
                stored.version
            ),
            &errors,
        )
    })?;
    Ok(Some((stored.version, document)))
}
