//! The `Admin` gRPC service used by conduitctl: apply, rollback, reads of versions, fleet
//! status, waiting for a rollout, listing and deciding approval requests, and reading audit
//! records and their statistics.
//!
//! Every RPC first checks the calling principal's role (`principals`): reads (audit
//! records included) need `viewer`, apply, rollback and approval decisions `operator`.
//! Config documents are shown with their secrets masked to principals below `admin`.
//!
//! This module only translates between the wire and [`Versions`]/[`Fleet`]; the rules live
//! there. Errors map to gRPC codes here, including the `ConfigErrors` status details that
//! carry every validation problem of a rejected document.

use std::sync::Arc;
use std::time::Duration;

use conduit_proto::v1::admin_server::Admin;
use conduit_proto::v1::wait_rollout_response::Outcome;
use conduit_proto::v1::{
    self as pb, ApplyRequest, ApplyResponse, ConfigVersion, DataPlaneStatus, FleetStatusRequest,
    FleetStatusResponse, GetConfigRequest, ListVersionsRequest, ListVersionsResponse,
    RollbackRequest, WaitRolloutRequest, WaitRolloutResponse, approval,
};
use prost::Message;
use tonic::{Code, Request, Response, Status};

use crate::approvals::{Approvals, DecideError};
use crate::audit::{Audit, AuditError, StatsRow};
use crate::fleet::{Fleet, NodeStatus, RolloutSummary};
use crate::metrics::{AdminMethod, Metrics};
use crate::principals::{AdminRole, require};
use crate::store::{ApprovalRow, ApprovalStatus, VersionRow};
use crate::versions::{Applied, ApplyInput, Versions, VersionsError};

/// The service; one per server.
pub struct AdminService {
    versions: Arc<Versions>,
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    approvals: Arc<Approvals>,
    audit: Arc<Audit>,
}

impl AdminService {
    pub fn new(
        versions: Arc<Versions>,
        fleet: Arc<Fleet>,
        metrics: Arc<Metrics>,
        approvals: Arc<Approvals>,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            versions,
            fleet,
            metrics,
            approvals,
            audit,
        }
    }

    /// The role gate of one RPC, counted like any other failure.
    fn gate<T>(
        &self,
        method: AdminMethod,
        request: &Request<T>,
        needed: AdminRole,
    ) -> Result<crate::principals::Principal, Status> {
        require(request, needed, method.describe()).inspect_err(|status| {
            self.metrics.admin_request(method, Err(status.code()));
        })
    }

    fn count<T>(&self, method: AdminMethod, result: Result<T, Status>) -> Result<T, Status> {
        self.metrics
            .admin_request(method, result.as_ref().map(|_| ()).map_err(Status::code));
        result
    }

    async fn wait_rollout_inner(
        &self,
        request: WaitRolloutRequest,
    ) -> Result<WaitRolloutResponse, Status> {
        let version = match request.version {
            0 => self.versions.current_version(),
            version => version,
        };
        if version == 0 || version > self.versions.current_version() {
            return Err(Status::not_found(format!(
                "version {} does not exist",
                request.version
            )));
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(request.timeout_ms));
        let mut changes = self.fleet.subscribe();
        loop {
            // Mark the generation seen *before* reading the fleet, so a change that lands
            // between the read and the wait below still wakes us.
            changes.borrow_and_update();
            let RolloutSummary { rejected, pending } = self.fleet.rollout_summary(version);
            let outcome = if !pending {
                Some(if rejected {
                    Outcome::Rejected
                } else {
                    Outcome::Converged
                })
            } else if tokio::time::Instant::now() >= deadline {
                // A known rejection says more than a timeout.
                Some(if rejected {
                    Outcome::Rejected
                } else {
                    Outcome::TimedOut
                })
            } else {
                None
            };
            if let Some(outcome) = outcome {
                return Ok(WaitRolloutResponse {
                    outcome: outcome.into(),
                    data_planes: self
                        .fleet
                        .statuses()
                        .into_iter()
                        .filter(|status| status.connected)
                        .map(to_proto_status)
                        .collect(),
                });
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(Status::unavailable("control plane is shutting down"));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn apply(
        &self,
        request: Request<ApplyRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        self.gate(AdminMethod::Apply, &request, AdminRole::Operator)?;
        let request = request.into_inner();
        let result = self
            .versions
            .apply(ApplyInput {
                document: request.document,
                author: request.author,
                message: request.message,
                dry_run: request.dry_run,
            })
            .await
            .map(to_apply_response)
            .map_err(to_status);
        self.count(AdminMethod::Apply, result).map(Response::new)
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        self.gate(AdminMethod::Rollback, &request, AdminRole::Operator)?;
        let request = request.into_inner();
        let result = if request.to_version == 0 {
            Err(Status::invalid_argument(
                "to_version must name a stored version",
            ))
        } else {
            self.versions
                .rollback(request.to_version, request.author, request.message)
                .await
                .map(to_apply_response)
                .map_err(to_status)
        };
        self.count(AdminMethod::Rollback, result).map(Response::new)
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<ConfigVersion>, Status> {
        let principal = self.gate(AdminMethod::GetConfig, &request, AdminRole::Viewer)?;
        let version = request.into_inner().version;
        // Below `admin` the document comes masked (also for `diff`, which reads it here).
        let result = match self.versions.get_as(version, principal.role).await {
            Ok(row) => Ok(to_proto_version(row)),
            Err(VersionsError::NotFound(0)) => {
                Err(Status::not_found("no configuration has been applied yet"))
            }
            Err(error) => Err(to_status(error)),
        };
        self.count(AdminMethod::GetConfig, result)
            .map(Response::new)
    }

    async fn list_versions(
        &self,
        request: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        self.gate(AdminMethod::ListVersions, &request, AdminRole::Viewer)?;
        let result = self
            .versions
            .list(request.into_inner().limit)
            .await
            .map(|rows| ListVersionsResponse {
                versions: rows.into_iter().map(to_proto_version).collect(),
            })
            .map_err(to_status);
        self.count(AdminMethod::ListVersions, result)
            .map(Response::new)
    }

    async fn fleet_status(
        &self,
        request: Request<FleetStatusRequest>,
    ) -> Result<Response<FleetStatusResponse>, Status> {
        self.gate(AdminMethod::FleetStatus, &request, AdminRole::Viewer)?;
        let response = FleetStatusResponse {
            current_version: self.versions.current_version(),
            data_planes: self
                .fleet
                .statuses()
                .into_iter()
                .map(to_proto_status)
                .collect(),
        };
        self.count(AdminMethod::FleetStatus, Ok(response))
            .map(Response::new)
    }

    async fn wait_rollout(
        &self,
        request: Request<WaitRolloutRequest>,
    ) -> Result<Response<WaitRolloutResponse>, Status> {
        self.gate(AdminMethod::WaitRollout, &request, AdminRole::Viewer)?;
        let result = self.wait_rollout_inner(request.into_inner()).await;
        self.count(AdminMethod::WaitRollout, result)
            .map(Response::new)
    }

    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        self.gate(AdminMethod::ListApprovals, &request, AdminRole::Viewer)?;
        let request = request.into_inner();
        let status = match approval::Status::try_from(request.status) {
            Ok(approval::Status::Unspecified) => Ok(None),
            Ok(approval::Status::Pending) => Ok(Some(ApprovalStatus::Pending)),
            Ok(approval::Status::Approved) => Ok(Some(ApprovalStatus::Approved)),
            Ok(approval::Status::Rejected) => Ok(Some(ApprovalStatus::Rejected)),
            Ok(approval::Status::Expired) => Ok(Some(ApprovalStatus::Expired)),
            Err(_) => Err(Status::invalid_argument(format!(
                "unknown approval status {}",
                request.status
            ))),
        };
        let result = match status {
            Ok(status) => self
                .approvals
                .list(status, request.limit)
                .await
                .map(|rows| pb::ListApprovalsResponse {
                    approvals: rows.into_iter().map(to_proto_approval).collect(),
                })
                .map_err(decide_status),
            Err(status) => Err(status),
        };
        self.count(AdminMethod::ListApprovals, result)
            .map(Response::new)
    }

    async fn decide_approval(
        &self,
        request: Request<pb::DecideApprovalRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        let principal = self.gate(AdminMethod::DecideApproval, &request, AdminRole::Operator)?;
        let request = request.into_inner();
        let result = if request.id.is_empty() {
            Err(Status::invalid_argument("id must name an approval request"))
        } else {
            self.approvals
                .decide(
                    &principal,
                    &request.id,
                    request.approve,
                    request.note,
                    (request.max_uses != 0).then_some(request.max_uses),
                )
                .await
                .map(to_proto_approval)
                .map_err(decide_status)
        };
        self.count(AdminMethod::DecideApproval, result)
            .map(Response::new)
    }

    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        self.gate(AdminMethod::QueryAudit, &request, AdminRole::Viewer)?;
        let result = self
            .audit
            .query(request.into_inner())
            .await
            .map(|records| pb::QueryAuditResponse { records })
            .map_err(audit_status);
        self.count(AdminMethod::QueryAudit, result)
            .map(Response::new)
    }

    async fn audit_stats(
        &self,
        request: Request<pb::AuditStatsRequest>,
    ) -> Result<Response<pb::AuditStatsResponse>, Status> {
        self.gate(AdminMethod::AuditStats, &request, AdminRole::Viewer)?;
        let result = self
            .audit
            .stats(request.into_inner())
            .await
            .map(|stats| pb::AuditStatsResponse {
                total: Some(to_proto_stats_row(stats.total)),
                groups: stats.groups.into_iter().map(to_proto_stats_row).collect(),
            })
            .map_err(audit_status);
        self.count(AdminMethod::AuditStats, result)
            .map(Response::new)
    }
}

/// The gRPC status for a failed audit read.
fn audit_status(error: AuditError) -> Status {
    match error {
        AuditError::Invalid(reason) => Status::invalid_argument(reason),
        error @ (AuditError::Store(_) | AuditError::Task(_)) => {
            tracing::error!(%error, "audit request failed");
            Status::internal(error.to_string())
        }
    }
}

fn to_proto_stats_row(row: StatsRow) -> pb::AuditStatsRow {
    pb::AuditStatsRow {
        key: row.key,
        requests: row.requests,
        errors: row.errors,
        p50_ms: row.p50_ms,
        p95_ms: row.p95_ms,
        p99_ms: row.p99_ms,
    }
}

/// The gRPC status for a failed approval operation.
fn decide_status(error: DecideError) -> Status {
    match error {
        DecideError::NotFound(_) => Status::not_found(error.to_string()),
        DecideError::NotPending { .. } => Status::failed_precondition(error.to_string()),
        DecideError::Forbidden(reason) => Status::permission_denied(reason),
        DecideError::InvalidArgument(reason) => Status::invalid_argument(reason),
        error @ (DecideError::Store(_) | DecideError::Task(_)) => {
            tracing::error!(%error, "approval request failed");
            Status::internal(error.to_string())
        }
    }
}

fn to_proto_approval(row: ApprovalRow) -> pb::Approval {
    let status = match row.status {
        ApprovalStatus::Pending => approval::Status::Pending,
        ApprovalStatus::Approved => approval::Status::Approved,
        ApprovalStatus::Rejected => approval::Status::Rejected,
        ApprovalStatus::Expired => approval::Status::Expired,
    };
    let request = row.request;
    pb::Approval {
        id: request.id,
        status: status.into(),
        client_id: request.client_id,
        tenant_id: request.tenant_id,
        server_id: request.server_id,
        tool: request.tool,
        fingerprint: request.fingerprint,
        arguments_json: request.arguments_json,
        rule: request.rule,
        source: request.source,
        reason: request.reason,
        trace_id: request.trace_id,
        created_at: rfc3339(request.created_at),
        expires_at: rfc3339(request.expires_at),
        decided_at: row.decided_at.map(rfc3339).unwrap_or_default(),
        approver: row.approver.unwrap_or_default(),
        note: row.note.unwrap_or_default(),
        max_uses: if row.status == ApprovalStatus::Approved {
            row.max_uses
        } else {
            0
        },
        uses: row.uses,
    }
}

/// Unix seconds as RFC 3339, UTC.
fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The gRPC status for a failed version operation.
fn to_status(error: VersionsError) -> Status {
    match error {
        VersionsError::Invalid(errors) => {
            let details = pb::ConfigErrors {
                errors: errors.0.iter().cloned().map(Into::into).collect(),
            };
            Status::with_details(
                Code::InvalidArgument,
                errors.to_string(),
                details.encode_to_vec().into(),
            )
        }
        VersionsError::NotFound(version) => {
            Status::not_found(format!("version {version} does not exist"))
        }
        error @ (VersionsError::Store(_) | VersionsError::Task(_)) => {
            tracing::error!(%error, "admin request failed");
            Status::internal(error.to_string())
        }
    }
}

fn to_apply_response(applied: Applied) -> ApplyResponse {
    ApplyResponse {
        version: applied.version,
        hash: applied.hash,
        changed: applied.changed,
        dry_run: applied.dry_run,
    }
}

fn to_proto_version(row: VersionRow) -> ConfigVersion {
    ConfigVersion {
        version: row.version,
        hash: row.hash,
        author: row.author,
        message: row.message,
        created_at: row.created_at,
        config_json: row.config_json,
        rolled_back_from: row.rolled_back_from.unwrap_or(0),
    }
}

fn to_proto_status(status: NodeStatus) -> DataPlaneStatus {
    let row = status.row;
    DataPlaneStatus {
        node_id: row.node_id,
        labels: row.labels.into_iter().collect(),
        build_version: row.build_version,
        connected: status.connected,
        applied_version: row.applied_version,
        applied_hash: row.applied_hash,
        rejected_version: row.rejected_version,
        rejected_errors: row
            .rejected_errors
            .into_iter()
            .map(|error| pb::ConfigError {
                path: error.path,
                message: error.message,
            })
            .collect(),
        last_seen: row.last_seen,
        connected_since: row.connected_since,
        peer_address: row.peer_address,
    }
}
