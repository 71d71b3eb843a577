//! A file server on 127.0.0.1 that speaks just enough HTTP/1.1 for downloads with resume: it
//! honours `Range: bytes=N-`, and can break the first transfer half way to prove the resume.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Log {
    /// The Range header of every request ("" when none).
    pub ranges: Vec<String>,
}

pub struct FileServer {
    pub port: u16,
    pub log: Arc<Mutex<Log>>,
}

impl FileServer {
    /// Serves `body` at any path; the first response stops after `break_first_at` bytes.
    pub async fn start(body: Vec<u8>, break_first_at: Option<usize>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let (l2, body) = (log.clone(), Arc::new(body));
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let range = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=").map(|r| r.trim().to_string()))
                    .unwrap_or_default();
                l2.lock().unwrap().ranges.push(range.clone());
                let start: usize = range.trim_end_matches('-').parse().unwrap_or(0).min(body.len());
                let head = if range.is_empty() {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                } else {
                    format!("HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n", body.len() - start, body.len() - 1, body.len())
                };
                let _ = s.write_all(head.as_bytes()).await;
                let end = match (first, break_first_at) {
                    (true, Some(b)) => b.min(body.len()),
                    _ => body.len(),
                };
                first = false;
                let _ = s.write_all(&body[start..end.max(start)]).await;
                let _ = s.shutdown().await;
            }
        });
        FileServer { port, log }
    }
}
