use super::*;

fn invalid_with(errors: Vec<(&str, &str)>) -> Status {
    let details = conduit_proto::v1::ConfigErrors {
        errors: errors
            .into_iter()
            .map(|(path, message)| conduit_proto::v1::ConfigError {
                path: path.into(),
                message: message.into(),
            })
            .collect(),
    };
    Status::with_details(
        Code::InvalidArgument,
        "invalid config",
        details.encode_to_vec().into(),
    )
}

#[test]
fn invalid_argument_with_details_prints_every_error() {
    let status = invalid_with(vec![
        ("servers[0].url", "must be an http(s) URL"),
        ("", "document is empty"),
    ]);
    let error = status_error(&status, "http://cp", true);
    assert_eq!(error.exit(), Exit::Invalid);
    assert_eq!(
        error.message(),
        "the control plane rejected the config (2 errors):\n\
         servers[0].url: must be an http(s) URL\n\
         document is empty"
    );
}

#[test]
fn invalid_argument_without_details_is_a_server_error() {
    let status = Status::invalid_argument("limit too large");
    let error = status_error(&status, "http://cp", true);
    assert_eq!(error.exit(), Exit::ServerError);
    assert!(error.message().contains("limit too large"));
}

#[test]
fn auth_failures_are_6_with_a_hint() {
    for status in [
        Status::unauthenticated("bad token"),
        Status::permission_denied("viewer cannot apply"),
    ] {
        let error = status_error(&status, "http://cp", false);
        assert_eq!(error.exit(), Exit::AuthRefused);
        assert!(error.message().contains(status.message()));
        assert!(error.message().contains("CONDUIT_TOKEN"));
    }
    let without = status_error(&Status::unauthenticated("x"), "http://cp", false);
    assert!(without.message().contains("no token was given"));
    let with = status_error(&Status::unauthenticated("x"), "http://cp", true);
    assert!(with.message().contains("token was refused"));
}

#[test]
fn unavailable_is_unreachable_and_others_are_7() {
    let error = status_error(
        &Status::unavailable("connection reset"),
        "http://cp:1",
        true,
    );
    assert_eq!(error.exit(), Exit::Unreachable);
    assert!(error.message().contains("http://cp:1"));
    let error = status_error(&Status::not_found("no version 9"), "http://cp", true);
    assert_eq!(error.exit(), Exit::ServerError);
    assert!(error.message().contains("no version 9"));
    let error = status_error(&Status::internal(""), "http://cp", true);
    assert_eq!(error.exit(), Exit::ServerError);
}

#[test]
fn broken_connection_statuses_are_unreachable() {
    let status = Status::from_error(Box::new(std::io::Error::other("broken pipe")));
    let error = status_error(&status, "http://cp:7700", true);
    assert_eq!(error.exit(), Exit::Unreachable);
    assert!(
        error.message().contains("broken pipe"),
        "{}",
        error.message()
    );
    assert!(error.message().contains("https://"), "{}", error.message());
    // The same code sent by the server itself is the server's error.
    let error = status_error(&Status::unknown("boom"), "http://cp:7700", true);
    assert_eq!(error.exit(), Exit::ServerError);
}

#[test]
fn bearer_header() {
    let value = bearer(Some(" s3cret\n")).unwrap().unwrap();
    assert_eq!(value.to_str().unwrap(), "Bearer s3cret");
    assert!(bearer(None).unwrap().is_none());
    assert!(bearer(Some(" ")).unwrap().is_none());
    assert_eq!(bearer(Some("bad\u{7}")).unwrap_err().exit(), Exit::Usage);
}

#[test]
fn server_urls() {
    let args = |server: &str, ca: Option<&str>| ConnectionArgs {
        server: server.into(),
        token: None,
        ca_cert: ca.map(Into::into),
    };
    assert!(endpoint(&args("http://127.0.0.1:7700", None)).is_ok());
    assert_eq!(
        endpoint(&args("127.0.0.1:7700", None)).unwrap_err().exit(),
        Exit::Usage
    );
    assert_eq!(
        endpoint(&args("http://cp", Some("ca.pem")))
            .unwrap_err()
            .exit(),
        Exit::Usage
    );
    let missing = endpoint(&args("https://cp", Some("/nonexistent/ca.pem"))).unwrap_err();
    assert_eq!(missing.exit(), Exit::Usage);
    assert!(missing.message().contains("--ca-cert"));
}

#[test]
fn loopback_hosts() {
    for host in [
        "127.0.0.1",
        "127.0.0.53",
        "localhost",
        "LOCALHOST",
        "[::1]",
        "::1",
    ] {
        assert!(is_loopback(host), "{host}");
    }
    for host in ["10.0.0.1", "cp.example", "[2001:db8::1]", ""] {
        assert!(!is_loopback(host), "{host}");
    }
}
