//! An HTTP upstream that fails on purpose, one way per path, so the tests can check that
//! each failure gives the caller a timely JSON-RPC error and leaves other callers alone:
//!
//! - `/hang`: reads the request and never answers (until the test ends);
//! - `/drop`: reads the request and closes the connection without a word;
//! - `/malformed`: `200 application/json` with a truncated JSON body;
//! - `/error500`: `500 text/plain`;
//! - `/sse-cut`: `200 text/event-stream`, one progress notification, then the connection
//!   closes before the response arrives.
//!
//! Plain blocking sockets and a thread per connection: the tests need only a handful.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The running upstream; stops accepting when dropped.
#[derive(Debug)]
pub struct Misbehaving {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Misbehaving {
    pub fn start() -> anyhow::Result<Misbehaving> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let stopping = Arc::clone(&stopping);
                    std::thread::spawn(move || serve(stream, &stopping));
                }
            }
        });
        Ok(Misbehaving { addr, stop })
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(stream) => stream,
        Err(_) => return,
    });
    let mut writer = stream;
    // Keep-alive: serve requests on this connection until one of them ends it.
    loop {
        let Some((path, body)) = read_request(&mut reader) else {
            return;
        };
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|message| message.get("id").cloned())
            .unwrap_or(serde_json::Value::Null);
        let keep_going = match path.as_str() {
            "/hang" => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                false
            }
            "/drop" => false,
            "/malformed" => {
                let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[");
                respond(&mut writer, "200 OK", "application/json", &body)
            }
            "/error500" => respond(
                &mut writer,
                "500 Internal Server Error",
                "text/plain",
                "boom",
            ),
            "/sse-cut" => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
                let event = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(event.as_bytes());
                let _ = writer.flush();
                std::thread::sleep(Duration::from_millis(50));
                false
            }
            _ => respond(&mut writer, "404 Not Found", "text/plain", "no such path"),
        };
        if !keep_going {
            return;
        }
    }
}

/// The path and body of the next request, `None` when the connection ends.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

fn respond(writer: &mut TcpStream, status: &str, content_type: &str, body: &str) -> bool {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    writer.write_all(response.as_bytes()).is_ok()
}
