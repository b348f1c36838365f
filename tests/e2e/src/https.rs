//! The TLS side of the test client: HTTP/1.1 requests over rustls (blocking, like
//! [`crate::http`]), a handshake probe that reports what the server presented, and one
//! HTTP/2 request (hyper over tokio-rustls) to prove the h2 path.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, StreamOwned};

use crate::http::{self, Response};

/// One request over TLS. `url` must be `https://host:port/path`; the server's certificate
/// is verified against `tls`'s roots for `host`.
pub fn request(
    tls: &Arc<ClientConfig>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<Response> {
    let (authority, path) = split_https(url)?;
    let mut stream = connect(tls, authority, timeout)?;
    http::exchange(&mut stream, method, authority, path, headers, body)
        .with_context(|| format!("{method} {url}"))
}

/// What a completed handshake showed.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// DER of the server's end-entity certificate.
    pub server_cert: Vec<u8>,
    pub version: ProtocolVersion,
    /// The ALPN protocol the server chose.
    pub alpn: Option<String>,
}

/// A TLS handshake with `authority` (`host:port`) and nothing else.
///
/// In TLS 1.3 the server judges a client certificate after the client has finished, so a
/// refused client certificate shows in the first read, not here: use [`request`] for that.
pub fn handshake(
    tls: &Arc<ClientConfig>,
    authority: &str,
    timeout: Duration,
) -> anyhow::Result<Handshake> {
    describe(&connect(tls, authority, timeout)?)
}

/// What the handshake of an open connection showed.
pub fn describe(stream: &TlsStream) -> anyhow::Result<Handshake> {
    let connection = &stream.conn;
    let server_cert = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| anyhow!("the server sent no certificate"))?
        .to_vec();
    Ok(Handshake {
        server_cert,
        version: connection
            .protocol_version()
            .ok_or_else(|| anyhow!("no protocol version after the handshake"))?,
        alpn: connection
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    })
}

/// One HTTP/2 POST over TLS (ALPN `h2`); returns the status, headers and body.
pub fn post_h2(
    tls: &Arc<ClientConfig>,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let (authority, path) = split_https(url)?;
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = server_name(authority)?;
    let mut request = hyper::Request::post(format!("https://{authority}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body)))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let tcp = tokio::net::TcpStream::connect(authority).await?;
            let tls = connector.connect(server_name, tcp).await?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                bail!("the server did not choose h2 by ALPN");
            }
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await?;
            tokio::spawn(connection);
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes().to_vec();
            Ok::<_, anyhow::Error>(Response {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        (name.as_str().to_owned(), value)
                    })
                    .collect(),
                body,
            })
        })
        .await
        .map_err(|_| anyhow!("no HTTP/2 response within {timeout:?}"))?
    })
}

/// A blocking TLS connection.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `authority` with the handshake done; send a request on it with
/// [`http::exchange`].
pub fn connect(
    tls: &Arc<ClientConfig>,
    authority: &str,
    timeout: Duration,
) -> anyhow::Result<TlsStream> {
    let tcp =
        TcpStream::connect(authority).with_context(|| format!("connecting to {authority}"))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let connection = ClientConnection::new(Arc::clone(tls), server_name(authority)?)?;
    let mut stream = StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .context("TLS handshake")?;
    }
    Ok(stream)
}

fn server_name(authority: &str) -> anyhow::Result<ServerName<'static>> {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned()).with_context(|| format!("server name {host:?}"))
}

fn split_https(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("an https:// URL is required, got {url}"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_server_by_its_host() {
        assert_eq!(
            server_name("127.0.0.1:443").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("localhost:8443").unwrap(),
            ServerName::try_from("localhost").unwrap()
        );
        assert_eq!(
            split_https("https://127.0.0.1:1/mcp/x").unwrap(),
            ("127.0.0.1:1", "/mcp/x")
        );
        assert!(split_https("http://h").is_err());
    }
}
