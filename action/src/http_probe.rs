//! A minimal plain-HTTP GET for readiness and warm-up requests to the app under training.
//! It only asks "did this answer 2xx?"; it must not be used for registries (no TLS, no redirects).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Splits `http://host[:port][/path]` into (`host:port`, host header, path).
pub fn split_url(url: &str) -> Option<(String, String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Some((address, authority.to_string(), path.to_string()))
}

/// True when a GET of `url` answers with a 2xx status within `timeout`.
pub async fn get_ok(url: &str, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, get_status(url)).await,
        Ok(Some(200..=299))
    )
}

async fn get_status(url: &str) -> Option<u16> {
    let (address, host, path) = split_url(url)?;
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: classcache-build\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    // The status line is all we need; read the rest so the server sees a clean close.
    stream.read_to_end(&mut response).await.ok()?;
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    head.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/ready").unwrap(),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1:8080".into(),
                "/ready".into()
            )
        );
        assert_eq!(split_url("http://localhost").unwrap().0, "localhost:80");
        assert!(split_url("https://x/").is_none());
    }

    #[tokio::test]
    async fn answers_are_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let body =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                s.write_all(body.as_bytes()).await.unwrap();
            }
        });
        let url = format!("http://127.0.0.1:{port}/ready");
        assert!(get_ok(&url, Duration::from_secs(5)).await);
        assert!(!get_ok(&url, Duration::from_secs(5)).await);
    }
}
