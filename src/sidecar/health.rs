//! The HTTP side of `pgtenant run --listen ADDR`: `GET /healthz`,
//! `GET /readyz` and `GET /metrics`.
//!
//! This module owns the (deliberately tiny) HTTP/1.1 server: a request head
//! parser and a responder on a tokio `TcpListener`. It is hand-written because
//! three read-only routes do not justify an HTTP stack in an 8 MiB container.
//! It is bounded so that it is safe to expose inside a cluster: at most
//! [`MAX_HEAD_BYTES`] of request head, [`IO_TIMEOUT`] to send it and to take
//! the answer, [`MAX_CONNECTIONS`] at once, one request per connection
//! (`Connection: close`), only `GET` and `HEAD`, no request body read. The
//! answers never contain a secret: reasons come from errors whose messages
//! never do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// A request head larger than this is refused (431): no client of these
/// routes needs more.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time allowed to send the request head, and again to take the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 16;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the routes report; implemented by the long-running loop's state.
pub trait Probe: Send + Sync + 'static {
    /// `Ok` when ready, else the one-line reason.
    fn ready(&self) -> Result<(), String>;
    /// The metrics exposition.
    fn metrics(&self) -> String;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The client's `Accept` asks for OpenMetrics (Prometheus does).
    pub wants_openmetrics: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head has not ended yet: read more.
    Incomplete,
    Request(Request),
    /// Malformed: answer 400 with this reason.
    Bad(&'static str),
}

/// Parses a request head (request line and header lines, up to the empty
/// line). Bytes after the head (a body) are ignored.
pub fn parse_head(buf: &[u8]) -> Parsed {
    let Some(end) = find(buf, b"\r\n\r\n").or_else(|| find(buf, b"\n\n")) else {
        return Parsed::Incomplete;
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Bad("request head is not valid utf-8");
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Parsed::Bad("malformed method");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Parsed::Bad("unsupported http version");
    }
    if !target.starts_with('/') {
        return Parsed::Bad("request target must be a path");
    }
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut wants_openmetrics = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Bad("malformed header line");
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Parsed::Bad("malformed header name");
        }
        if name.eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text") {
            wants_openmetrics = true;
        }
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    Parsed::Request(Request {
        method,
        path,
        wants_openmetrics,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One answer, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub allow: bool,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        body.push('\n');
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
            allow: false,
        }
    }

    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The answer to one parsed request.
pub fn route(request: &Request, probe: &dyn Probe) -> Response {
    if request.method == Method::Other {
        let mut r = Response::text(405, "method not allowed");
        r.allow = true;
        return r;
    }
    match request.path.as_str() {
        "/healthz" => Response::text(200, "ok"),
        "/readyz" => match probe.ready() {
            Ok(()) => Response::text(200, "ok"),
            // One line, whatever the reason's text.
            Err(reason) => Response::text(503, reason.replace(['\r', '\n'], " ")),
        },
        "/metrics" => Response {
            status: 200,
            content_type: if request.wants_openmetrics {
                OPENMETRICS
            } else {
                PROMETHEUS_TEXT
            },
            body: probe.metrics(),
            allow: false,
        },
        _ => Response::text(404, "not found"),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, probe: Arc<dyn Probe>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Waiting for a slot before accepting leaves excess clients in the
        // kernel's queue instead of costing memory here.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let probe = probe.clone();
                tokio::spawn(async move {
                    handle(stream, peer, &*probe).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: do not spin on it.
                warn!(error = %e, "health endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, peer: SocketAddr, probe: &dyn Probe) {
    let response = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Parsed::Request(request))) => {
            let head_only = request.method == Method::Head;
            Some((route(&request, probe), head_only))
        }
        Ok(Ok(Parsed::Bad(reason))) => Some((Response::text(400, reason), false)),
        Ok(Ok(Parsed::Incomplete)) => Some((Response::text(431, "request head too large"), false)),
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "health endpoint: read failed");
            None
        }
        Err(_) => Some((Response::text(408, "request timeout"), false)),
    };
    if let Some((response, head_only)) = response {
        let bytes = response.to_bytes(head_only);
        let _ = tokio::time::timeout(IO_TIMEOUT, async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        })
        .await;
    }
}

/// Reads until the head is complete, malformed, or [`MAX_HEAD_BYTES`] long
/// (then `Incomplete`).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Parsed> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Parsed::Bad(
                "connection closed before the request head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Parsed::Incomplete if buf.len() >= MAX_HEAD_BYTES => return Ok(Parsed::Incomplete),
            Parsed::Incomplete => continue,
            done => return Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str) -> Parsed {
        Parsed::Request(Request {
            method,
            path: path.to_owned(),
            wants_openmetrics: false,
        })
    }

    #[test]
    fn parses_a_plain_get() {
        assert_eq!(
            parse_head(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"),
            req(Method::Get, "/readyz")
        );
        assert_eq!(
            parse_head(b"HEAD /healthz?verbose=1 HTTP/1.0\r\n\r\nbody ignored"),
            req(Method::Head, "/healthz")
        );
        assert_eq!(
            parse_head(
                b"GET /metrics HTTP/1.1\nAccept: application/openmetrics-text;version=1.0.0\n\n"
            ),
            Parsed::Request(Request {
                method: Method::Get,
                path: "/metrics".into(),
                wants_openmetrics: true
            })
        );
        assert_eq!(
            parse_head(b"DELETE /readyz HTTP/1.1\r\n\r\n"),
            req(Method::Other, "/readyz")
        );
    }

    #[test]
    fn waits_for_the_end_of_the_head() {
        assert_eq!(parse_head(b""), Parsed::Incomplete);
        assert_eq!(
            parse_head(b"GET /readyz HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Incomplete
        );
    }

    #[test]
    fn refuses_malformed_heads() {
        for bad in [
            &b"GET /readyz\r\n\r\n"[..],
            b"GET  /readyz HTTP/1.1\r\n\r\n",
            b"get /readyz HTTP/1.1\r\n\r\n",
            b"GET /readyz HTTP/2\r\n\r\n",
            b"GET http://x/readyz HTTP/1.1\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad), Parsed::Bad(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    struct Fixed(Result<(), String>);
    impl Probe for Fixed {
        fn ready(&self) -> Result<(), String> {
            self.0.clone()
        }
        fn metrics(&self) -> String {
            "# EOF\n".into()
        }
    }

    fn get(path: &str) -> Request {
        Request {
            method: Method::Get,
            path: path.into(),
            wants_openmetrics: false,
        }
    }

    #[test]
    fn routes() {
        let ready = Fixed(Ok(()));
        let not_ready = Fixed(Err("input invalid:\nline 2".into()));
        assert_eq!(route(&get("/healthz"), &not_ready).status, 200);
        assert_eq!(route(&get("/readyz"), &ready).status, 200);
        let r = route(&get("/readyz"), &not_ready);
        assert_eq!(
            (r.status, r.body.as_str()),
            (503, "input invalid: line 2\n")
        );
        let r = route(&get("/metrics"), &ready);
        assert_eq!((r.status, r.content_type), (200, PROMETHEUS_TEXT));
        assert_eq!(route(&get("/nope"), &ready).status, 404);
        let mut post = get("/readyz");
        post.method = Method::Other;
        let r = route(&post, &ready);
        assert_eq!(r.status, 405);
        let bytes = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(bytes.contains("Allow: GET, HEAD\r\n"), "{bytes}");
        let head = String::from_utf8(route(&get("/healthz"), &ready).to_bytes(true)).unwrap();
        assert!(
            head.ends_with("\r\n\r\n") && head.contains("Content-Length: 3\r\n"),
            "{head}"
        );
    }
}
