//! The `portcullis` binary as a process: graceful drain on SIGTERM, flat memory while
//! streaming a large body.

use crate::support::*;
use hyper::StatusCode;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn_gateway(dir: &TempDir, upstream: std::net::SocketAddr) -> (Proc, String) {
    let cfg = dir.path().join("c.toml");
    // The child binds the port itself: a port taken meanwhile is retried on another.
    let (child, port) = spawn_listening("portcullis run", Duration::from_secs(20), |port| {
        std::fs::write(&cfg, base_config(port, upstream, "")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let base = format!("http://127.0.0.1:{port}");
    (Proc(child), base)
}

fn sigterm(p: &Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let up = TestUpstream::start().await;
    let dir = TempDir::new("drain");
    let (mut proc_, base) = spawn_gateway(&dir, up.addr).await;
    let url = format!("{base}/hc/slow?ms=1500");
    let inflight = tokio::spawn(async move { Http::new().get(&url, &[]).await });
    // SIGTERM once the request is in flight (the upstream has it), not after a guessed delay.
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.hits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm(&proc_);
    let r = inflight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "the in-flight request finished");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = proc_.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit after drain: {status:?}");
    // New connections are refused once it stopped.
    assert!(
        tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .is_err()
    );
    let _ = &mut proc_;
}

#[tokio::test]
async fn a_large_streamed_body_leaves_the_gateway_rss_flat() {
    use http_body_util::BodyExt;
    let up = TestUpstream::start().await;
    let dir = TempDir::new("rss");
    let (proc_, base) = spawn_gateway(&dir, up.addr).await;
    let pid = proc_.0.id();
    let http = Http::new();
    // Warm up pools and allocator.
    let _ = http.get(&format!("{base}/hc/big?n=1048576"), &[]).await;
    let before = rss_kib(pid);

    // Download 1 GiB, reading it as it streams.
    const GIB: u64 = 1 << 30;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client
        .get(format!("{base}/hc/big?n={GIB}").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got: u64 = 0;
    let mut peak = before;
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Some(d) = f.unwrap().data_ref() {
            got += d.len() as u64;
        }
        n += 1;
        if n.is_multiple_of(2048) {
            peak = peak.max(rss_kib(pid));
        }
    }
    assert_eq!(got, GIB);

    // Upload 1 GiB, generated as it is sent.
    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let stream =
        futures_util::stream::iter((0..4096).map(move |_| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))
        }));
    let up_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::StreamBody<_>>();
    let req = hyper::Request::post(format!("{base}/hc/upload"))
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let resp = up_client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        std::str::from_utf8(&text).unwrap(),
        format!("{{\"received\":{GIB}}}")
    );
    let after = rss_kib(pid);
    peak = peak.max(after);
    // 2 GiB went through; the gateway may grow by buffers, not by the body.
    assert!(
        peak < before + 64 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
}
