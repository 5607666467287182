//! Reading only a model's header: a prefix of a local file, or of a remote one by HTTP range
//! requests, never the tensor data. `hearth plan` judges a 40 GB file from its first few MB this
//! way, before anything is downloaded.
//!
//! Both readers start small and grow to what the GGUF parser says it still needs
//! ([`hearth_gguf::Error::Truncated`]'s `needed`), so a header of several MB (vocabulary arrays)
//! takes a few reads, and a truncated or hostile file ends in an error, never a loop.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use hearth_gguf::Header;

use crate::error::{Error, HeaderError, Result};

/// Bytes asked for per range request: the header's end is overshot by at most this much.
const URL_STEP: u64 = 256 << 10;

/// The header of a remote file and how it was read.
#[derive(Debug)]
pub struct UrlHeader {
    pub header: Header,
    /// Bytes of the file received.
    pub read: u64,
    /// Whether the server honoured range requests; when not, the start of the whole file was
    /// streamed until the header parsed.
    pub ranged: bool,
}

/// Reads the header of a remote .gguf with HTTP range requests of [`URL_STEP`] (or what the
/// parser says it needs), so a 40 GB file is judged from its first few MB. A server that ignores
/// ranges is read as a stream, stopping once the header parses.
pub fn read_url_header(url: &str) -> Result<UrlHeader> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        // A proxy from the environment, except for this machine itself (ureq 2 ignores
        // NO_PROXY).
        .try_proxy_from_env(!is_loopback(url))
        .build();
    let unreadable = |source: HeaderError| Error::Remote {
        url: url.to_string(),
        source,
    };
    let bad_header = |source: HeaderError| Error::Header {
        what: url.to_string(),
        source,
    };
    let mut buf = Vec::new();
    let mut want = URL_STEP;
    loop {
        let have = buf.len() as u64;
        let resp = agent
            .get(url)
            .set("Range", &format!("bytes={have}-{}", want - 1))
            .call()
            .map_err(|e| unreadable(HeaderError::Http(Box::new(e))))?;
        if resp.status() != 206 {
            // The whole file is coming from its first byte: read only what the header needs.
            let (header, read) =
                read_header_from(resp.into_reader(), u64::MAX).map_err(bad_header)?;
            return Ok(UrlHeader {
                header,
                read,
                ranged: false,
            });
        }
        resp.into_reader()
            .take(want - have)
            .read_to_end(&mut buf)
            .map_err(|e| unreadable(e.into()))?;
        match Header::parse(&buf) {
            Ok(header) => {
                return Ok(UrlHeader {
                    header,
                    read: buf.len() as u64,
                    ranged: true,
                })
            }
            Err(hearth_gguf::Error::Truncated { needed, .. }) if buf.len() as u64 > have => {
                want = needed.max(buf.len() as u64 + URL_STEP);
            }
            Err(e) => return Err(bad_header(e.into())),
        }
    }
}

/// Whether `url` points at this machine (`localhost`, `127.x.x.x`, `[::1]`).
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    authority == "localhost"
        || authority.starts_with("localhost:")
        || authority.starts_with("127.")
        || authority.starts_with("[::1]")
}

/// Reads a prefix of `path` long enough for the header, never the tensor data.
pub fn read_header(path: &Path) -> Result<Header> {
    let bad_header = |source: HeaderError| Error::Header {
        what: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file.metadata().map_err(|e| bad_header(e.into()))?.len();
    let (header, _read) = read_header_from(file, len).map_err(bad_header)?;
    Ok(header)
}

/// Reads the header from the start of `src` (`len` bytes long): 1 MiB first, then as much as
/// the parser says it needs (vocabulary arrays make headers several MB). Returns the header and
/// the bytes read.
pub fn read_header_from(src: impl Read, len: u64) -> Result<(Header, u64), HeaderError> {
    let mut src = src;
    let mut buf = Vec::new();
    let mut want: u64 = (1 << 20).min(len);
    loop {
        let have = buf.len() as u64;
        if want > have {
            (&mut src).take(want - have).read_to_end(&mut buf)?;
        }
        match Header::parse(&buf) {
            Ok(h) => return Ok((h, buf.len() as u64)),
            Err(hearth_gguf::Error::Truncated { needed, .. })
                // Only while the last read made progress: a source shorter than `len` ends it.
                if (buf.len() as u64) < len && buf.len() as u64 > have =>
            {
                // Grow at least by half so a header takes few reads, without reading far past it.
                want = needed.max(buf.len() as u64 * 3 / 2).min(len);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_read_without_the_tensor_data() {
        let path = crate::test_model("smollm2-135m").expect("SmolLM2 test model");
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let (header, read) = read_header_from(file, len).unwrap();
        assert_eq!(header, *hearth_gguf::Gguf::open(&path).unwrap().header());
        // At most half again past where the header ends: far less than the file.
        assert!(read >= header.data_offset.min(len) / 2, "read {read}");
        assert!(
            read <= header.data_offset * 3 / 2 + (1 << 20),
            "read {read}"
        );
        assert!(read < len / 4, "read {read} of {len}");
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback("http://127.0.0.1:8080/m.gguf"));
        assert!(is_loopback("http://localhost/m.gguf"));
        assert!(is_loopback("http://[::1]:80/m.gguf"));
        assert!(!is_loopback("https://localhost.example.org/m.gguf"));
        assert!(!is_loopback("https://example.org/127.0.0.1"));
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_loop() {
        let bytes = hearth_model::testing::TinySpec::new("llama").build();
        let cut = &bytes[..64];
        let e = read_header_from(cut, cut.len() as u64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends"), "{e}");
    }
}
