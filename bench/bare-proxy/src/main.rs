//! `conduit-bench-bare-proxy`: the floor that `bench/proxy.sh` measures the data plane
//! against.
//!
//! A hyper HTTP/1.1 server on one address that sends every POST to one upstream URL and
//! answers with what came back, parsing the JSON both ways on the way ([`hop`]). It has the
//! same runtime as the data plane (multi-threaded, one worker per CPU unless told), so the
//! difference between the two is what the gateway does per call, not how it is scheduled.
#![forbid(unsafe_code)]

mod hop;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser;
use http::Uri;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::hop::Hop;

#[derive(Debug, Parser)]
#[command(
    name = "conduit-bench-bare-proxy",
    version,
    about = "Bare hyper proxy for benchmarks: parses the JSON body both ways and forwards it \
             to one upstream over a keep-alive pool"
)]
struct Args {
    /// Serve at http://ADDR (any path).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3200")]
    listen: SocketAddr,
    /// Send every request to this plain-HTTP URL.
    #[arg(long, value_name = "URL")]
    upstream: Uri,
    /// Runtime worker threads (default: one per CPU, as the data plane).
    #[arg(long, value_name = "N")]
    worker_threads: Option<NonZeroUsize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.upstream.scheme_str() != Some("http") || args.upstream.host().is_none() {
        bail!("--upstream must be an http:// URL with a host");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.get());
    }
    runtime.build()?.block_on(serve(args.listen, args.upstream))
}

async fn serve(addr: SocketAddr, upstream: Uri) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("forwarding http://{} to {upstream}", listener.local_addr()?);
    let hop = Arc::new(Hop::new(upstream));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let hop = hop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let hop = hop.clone();
                async move { Ok::<_, std::convert::Infallible>(hop.handle(request).await) }
            });
            // A client closing its connection mid-request is normal under load.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
