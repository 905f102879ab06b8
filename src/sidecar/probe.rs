//! `pgtenant probe URL`: one HTTP GET, exit 0 on a 2xx answer, 1 otherwise.
//!
//! The container image is `FROM scratch`: no shell, no curl, no wget, so a
//! Compose `healthcheck` (or any exec probe) has nothing to run but pgtenant
//! itself. This is the smallest client that job needs, written by hand on
//! tokio (already a dependency) rather than pulling in an HTTP client crate
//! with TLS, redirects, pools and decompression: it only ever talks plain
//! HTTP/1.1 to pgtenant's own `--listen` address, usually on loopback.
//!
//! Everything is bounded: the whole exchange by `--timeout`, the answer's
//! head and the part of the body that is shown by [`MAX_ANSWER`]. Only the
//! status line decides; the first line of the body is shown on failure,
//! since `/readyz` says there why it is not ready.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exit;

/// At most this much of the answer is read.
const MAX_ANSWER: usize = 8 * 1024;

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parses the URL a probe may take: `http://` only, no user info.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(format!("{url:?}: user information is not supported"));
    }
    if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(format!(
            "{url:?}: the path has spaces or control characters"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unterminated [IPv6 address]"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{url:?}: invalid port {p:?}"))?,
    };
    Ok(Target {
        host: host.to_string(),
        port,
        path,
    })
}

/// The status code and the first line of the body of an answer's start.
fn parse_answer(answer: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(answer);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err("the answer is not HTTP/1.x".to_string());
    }
    let code = code
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// An I/O error as the rest of pgtenant words them: no errno suffix.
fn describe(e: std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        _ => e.to_string(),
    }
}

async fn exchange(target: &Target) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(describe)?;
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pgtenant-probe\r\nConnection: close\r\n\r\n",
        target.path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(describe)?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while answer.len() < MAX_ANSWER {
        let n = stream.read(&mut chunk).await.map_err(describe)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n.min(MAX_ANSWER - answer.len())]);
    }
    parse_answer(&answer)
}

/// Runs the probe and returns the exit code: 0 on 2xx, 1 on anything else,
/// 2 for a URL it cannot probe. The outcome goes to stderr on failure only,
/// so a healthy healthcheck stays silent.
pub async fn command(url: &str, timeout: Duration) -> i32 {
    let target = match parse_url(url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pgtenant probe: {e}");
            return exit::INVALID_INPUT;
        }
    };
    match tokio::time::timeout(timeout, exchange(&target)).await {
        Ok(Ok((code, _))) if (200..300).contains(&code) => exit::SUCCESS,
        Ok(Ok((code, body))) => {
            let detail = if body.is_empty() {
                String::new()
            } else {
                format!(": {body}")
            };
            eprintln!("pgtenant probe: {url}: HTTP {code}{detail}");
            exit::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("pgtenant probe: {url}: {e}");
            exit::FAILURE
        }
        Err(_) => {
            eprintln!(
                "pgtenant probe: {url}: no answer within {}",
                crate::duration::format(timeout)
            );
            exit::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, port: u16, path: &str) -> Target {
        Target {
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/readyz"),
            Ok(t("127.0.0.1", 8080, "/readyz"))
        );
        assert_eq!(parse_url("http://localhost"), Ok(t("localhost", 80, "/")));
        assert_eq!(
            parse_url("http://[::1]:9/readyz?verbose"),
            Ok(t("::1", 9, "/readyz?verbose"))
        );
        assert_eq!(parse_url("http://h:1?verbose"), Ok(t("h", 1, "/?verbose")));
        for bad in [
            "https://h/",
            "h:80/",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u:p@h/",
            "http://h/a b",
            "http://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"),
            Ok((200, "ok".into()))
        );
        assert_eq!(
            parse_answer(b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot yet applied: waiting\nmore"),
            Ok((503, "not yet applied: waiting".into()))
        );
        assert_eq!(
            parse_answer(b"HTTP/1.0 204 No Content\r\n\r\n"),
            Ok((204, "".into()))
        );
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 999 X\r\n\r\n").is_err());
        assert!(parse_answer(b"").is_err());
    }
}
