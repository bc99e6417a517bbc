//! A minimal HTTP/1.1 endpoint for `/metrics`, `/healthz` and `/readyz`: GET only, one
//! request per connection, bounded reads. Enough for Prometheus and probes,
//! without pulling a web framework into a network agent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::report::metrics::Metrics;

const MAX_REQUEST: usize = 8192;
/// Connections served at once. Past it, new ones wait in the kernel's
/// backlog, where they cost the agent no file descriptor: a flood of idle
/// connections cannot starve the passes of descriptors.
const MAX_CONNECTIONS: usize = 64;
/// A connection is closed when its request has not been received and
/// answered within this, however slowly its client trickles bytes in.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// The pause after a failed accept (out of descriptors, of memory), doubling
/// while failures go on: a failing accept must not spin.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line about failed accepts per interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Binds `addr` and serves in the background.
pub async fn serve(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let mut failures = AcceptFailures::default();
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    failures.recovered();
                    let metrics = Arc::clone(&metrics);
                    tokio::spawn(async move {
                        let _slot = slot;
                        // Per request at debug level: a flood of broken
                        // clients must not flood the log.
                        match tokio::time::timeout(REQUEST_DEADLINE, handle(stream, &metrics)).await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => debug!(error = %e, "metrics request failed"),
                            Err(_) => debug!(
                                "metrics request not completed within {REQUEST_DEADLINE:?}: closed"
                            ),
                        }
                    });
                }
                Err(e) => {
                    let (pause, log) = failures.failed(Instant::now());
                    if let Some(failed) = log {
                        warn!(error = %e, failed, "metrics listener: accept failed; backing off (one line per {}s)", ACCEPT_LOG_INTERVAL.as_secs());
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    });
    Ok(local)
}

/// Failed accepts in a row: the pause before the next try, and when to say so.
#[derive(Debug, Default)]
struct AcceptFailures {
    backoff: Duration,
    last_logged: Option<Instant>,
    /// Failures since the last log line.
    unlogged: u64,
}

impl AcceptFailures {
    /// One more failure at `now`: the pause, and the failures to log (this
    /// one included) when a log line is due.
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.backoff = (self.backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        self.unlogged += 1;
        let due = self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_LOG_INTERVAL);
        if !due {
            return (self.backoff, None);
        }
        self.last_logged = Some(now);
        (self.backoff, Some(std::mem::take(&mut self.unlogged)))
    }

    fn recovered(&mut self) {
        self.backoff = Duration::ZERO;
    }
}

async fn handle(mut stream: TcpStream, metrics: &Mutex<Metrics>) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            let body = metrics.lock().unwrap_or_else(|e| e.into_inner()).render();
            ("200 OK", "text/plain; version=0.0.4", body)
        }
        ("GET", "/healthz" | "/readyz") => {
            let metrics = metrics.lock().unwrap_or_else(|e| e.into_inner());
            let state = match path {
                "/healthz" => metrics.alive(),
                _ => metrics.ready(),
            };
            match state {
                Ok(()) => ("200 OK", "text/plain", "ok\n".to_string()),
                Err(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[test]
    fn failed_accepts_back_off_and_log_once_per_interval() {
        let mut f = AcceptFailures::default();
        let start = Instant::now();
        let pauses: Vec<_> = (0..9).map(|_| f.failed(start)).collect();
        assert_eq!(pauses[0], (ACCEPT_BACKOFF_MIN, Some(1)));
        assert_eq!(pauses[1], (ACCEPT_BACKOFF_MIN * 2, None));
        assert_eq!(pauses[8].0, ACCEPT_BACKOFF_MAX);
        assert!(pauses[1..].iter().all(|(_, log)| log.is_none()));
        // The next line, an interval later, counts the failures in between.
        let (_, log) = f.failed(start + ACCEPT_LOG_INTERVAL);
        assert_eq!(log, Some(9));
        f.recovered();
        assert_eq!(f.failed(start + ACCEPT_LOG_INTERVAL).0, ACCEPT_BACKOFF_MIN);
    }

    #[tokio::test]
    async fn a_trickling_client_is_cut_at_the_deadline() {
        let metrics = Arc::new(Mutex::new(Metrics::default()));
        let addr = serve("127.0.0.1:0".parse().unwrap(), metrics)
            .await
            .unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        // One byte a second: every read alone would be in time.
        loop {
            if s.write_all(b"G").await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => panic!("answered a request never completed"),
                Err(_) => assert!(started.elapsed() < REQUEST_DEADLINE * 2, "never closed"),
            }
        }
        assert!(started.elapsed() >= REQUEST_DEADLINE - Duration::from_millis(100));
    }

    #[tokio::test]
    async fn serves_metrics_and_health_on_loopback() {
        let metrics = Arc::new(Mutex::new(Metrics::default()));
        let addr = serve("127.0.0.1:0".parse().unwrap(), metrics)
            .await
            .unwrap();
        let m = get(addr, "/metrics").await;
        assert!(
            m.starts_with("HTTP/1.1 200 OK") && m.contains("kvmnet_passes_total 0"),
            "{m}"
        );
        let h = get(addr, "/healthz").await;
        assert!(
            h.starts_with("HTTP/1.1 503") && h.contains("no pass has completed yet"),
            "{h}"
        );
        let r = get(addr, "/readyz").await;
        assert!(
            r.starts_with("HTTP/1.1 503") && r.contains("no pass has completed yet"),
            "{r}"
        );
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
