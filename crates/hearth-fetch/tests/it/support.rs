//! Helpers shared by the tests: deterministic content, sha256, wheels, a tiny HTTP server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hearth_gguf::write::GgufWriter;
use hearth_gguf::{GgmlType, Value};
use sha2::{Digest, Sha256};

/// `n` bytes of a fixed pseudo-random sequence (xorshift), different per `seed`.
pub fn content(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A well-formed GGUF file of about `n` bytes: a header and one I8 tensor holding
/// [`content`]`(n, seed)`, so pulls that check the format accept it.
pub fn gguf(n: usize, seed: u64) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()));
    w.tensor("weights", &[n as u64], GgmlType::I8, content(n, seed));
    w.to_bytes()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a zip file at `path` with `members` (name, bytes); odd members are deflated, even
/// ones stored, so both paths through the reader are used.
pub fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for (i, (name, bytes)) in members.iter().enumerate() {
        let method = if i % 2 == 1 {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(false);
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// How the test server behaves; changeable while it runs.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// Answer `Range` requests with 206 (else ignore them and send 200 with everything).
    pub honor_range: bool,
    /// Close the connection after this many body bytes, for this many more requests.
    pub drop_after: Option<(usize, usize)>,
}

/// A request the server saw: path and `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

pub struct Server {
    pub base: String,
    pub behavior: Arc<Mutex<Behavior>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Serves `body` at `/FILE` for any file name; other paths (no dot) get 404.
    pub fn start(body: Vec<u8>, behavior: Behavior) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let behavior = Arc::new(Mutex::new(behavior));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (b, s) = (behavior.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &body, &b, &s);
            }
        });
        Server {
            base,
            behavior,
            seen,
        }
    }

    pub fn url(&self, file: &str) -> String {
        format!("{}/files/{file}", self.base)
    }

    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap() = behavior;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: std::net::TcpStream,
    body: &[u8],
    behavior: &Mutex<Behavior>,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let mut b = behavior.lock().unwrap();
    let drop_at = match &mut b.drop_after {
        Some((at, times)) if *times > 0 => {
            *times -= 1;
            Some(*at)
        }
        _ => None,
    };
    let honor = b.honor_range;
    drop(b);
    if !path.starts_with("/files/") {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        seen.lock().unwrap().push(Seen {
            path,
            range,
            status: 404,
        });
        return;
    }
    let start = range
        .as_deref()
        .filter(|_| honor)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    let (status, head, slice) = match start {
        Some(s) if s >= body.len() => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            (416, head, &body[..0])
        }
        Some(s) => {
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() - 1,
                body.len(),
                body.len() - s
            );
            (206, head, &body[s..])
        }
        None => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            (200, head, body)
        }
    };
    seen.lock().unwrap().push(Seen {
        path,
        range,
        status,
    });
    let _ = stream.write_all(head.as_bytes());
    let slice = match drop_at {
        Some(at) => &slice[..at.min(slice.len())],
        None => slice,
    };
    let _ = stream.write_all(slice);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
