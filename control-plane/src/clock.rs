//! Wall-clock time as the control plane writes it: RFC 3339 for the times it stores and
//! reports, Unix seconds for the instants it compares with other hosts (session key
//! schedules, approval expiry).

/// Now as RFC 3339 with millisecond precision, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now in Unix seconds, from the wall clock: the instants it is compared with were taken
/// on other hosts (tokens sealed by data planes, grants checked fleet-wide).
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
