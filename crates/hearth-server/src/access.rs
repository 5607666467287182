//! Which browsers may reach Hearth: the `Host` and `Origin` rules.
//!
//! A web page the family opens can make their browser send requests to Hearth, because Hearth
//! is on their machine or their network. Two rules stop every such page:
//!
//! * **Host.** A page on `evil.example` can make its own name resolve to 127.0.0.1 (DNS
//!   rebinding); the browser then treats Hearth as that page's own origin and lets its script
//!   read the answers. The request still carries `Host: evil.example`, so Hearth answers only to
//!   the names it is known by: any IP literal (rebinding needs a name), `localhost`,
//!   `hearth.local`, this machine's host name, and names the keeper adds with `--host-name`.
//!   Anything else gets 421 and a sentence saying how to allow it.
//! * **Origin.** Browsers say which page sent a request in `Origin` (every `POST`, and every
//!   script's cross-origin request). A request whose origin is neither the page's own (the
//!   `Host` it was sent to) nor one the keeper listed with `--cors-origin` is refused with 403,
//!   whatever its content type: a foreign page cannot set up the household, log in, or use `/v1`.
//!   A browser that sends `Sec-Fetch-Site: cross-site` (or `same-site`: another port of the same
//!   host) on a state-changing request without an `Origin` is refused too.
//!
//! Apps that are not browsers send neither `Origin` nor `Sec-Fetch-Site`, so they are not
//! affected. Listed origins get CORS headers (no cookies: such an app uses an API key).

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The names and origins Hearth answers to.
#[derive(Clone, Debug)]
pub struct Access {
    /// Lowercase host names without a port or trailing dot.
    names: Vec<String>,
    /// Lowercase `scheme://host[:port]` origins, with the scheme's default port left out.
    cors: Vec<String>,
}

/// A `--cors-origin` that is not an origin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{given:?} is not a web origin: give it as the browser shows it, e.g. http://192.168.1.20:3000 or https://chat.example (a scheme, a host and perhaps a port; no path)")]
pub struct BadOrigin {
    pub given: String,
}

/// A `--host-name` that is not a host name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{given:?} is not a host name: give the name alone, e.g. family-pc.home (no scheme, port or path)")]
pub struct BadHostName {
    pub given: String,
}

impl Default for Access {
    /// `localhost` and `hearth.local` (the mDNS name Hearth announces), no CORS origins.
    fn default() -> Access {
        Access {
            names: vec!["localhost".into(), "hearth.local".into()],
            cors: Vec::new(),
        }
    }
}

impl Access {
    /// Also answers to `name` (this machine's host name, or one the keeper gave).
    pub fn with_host_name(mut self, name: &str) -> Result<Access, BadHostName> {
        let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(BadHostName {
                given: name.to_string(),
            });
        }
        if !self.names.contains(&n) {
            self.names.push(n);
        }
        Ok(self)
    }

    /// Lets pages from `origin` call Hearth (with an API key; cookies are not shared).
    pub fn with_cors_origin(mut self, origin: &str) -> Result<Access, BadOrigin> {
        let o = normalize_origin(origin.trim().trim_end_matches('/')).ok_or_else(|| BadOrigin {
            given: origin.to_string(),
        })?;
        if !self.cors.contains(&o) {
            self.cors.push(o);
        }
        Ok(self)
    }

    /// Whether a request with this `Host` header value may be answered.
    fn host_allowed(&self, host: &str) -> bool {
        match split_host(host) {
            Some((name, _)) => name.parse::<IpAddr>().is_ok() || self.names.contains(&name),
            None => false,
        }
    }

    /// Whether `origin` is one the keeper listed with `--cors-origin`.
    fn listed(&self, origin: &str) -> bool {
        normalize_origin(origin).is_some_and(|o| self.cors.contains(&o))
    }

    /// The refusal for a request, in the order the rules are explained above; otherwise what
    /// CORS answer a listed origin gets.
    fn check(&self, method: &Method, headers: &HeaderMap) -> Result<Cors, ApiError> {
        let host = headers.get(header::HOST).map(|v| v.to_str().unwrap_or(""));
        if let Some(host) = host {
            if !self.host_allowed(host) {
                let name = split_host(host).map_or(host.to_string(), |(n, _)| n);
                return Err(ApiError {
                    status: StatusCode::MISDIRECTED_REQUEST,
                    ..ApiError::bad_request(format!(
                        "Hearth does not answer to the name {name:?}. If that is how people at home reach this machine, start Hearth with --host-name {name} (the IP address, localhost and hearth.local always work)."
                    ))
                    .with_code("unknown_host")
                });
            }
        }
        if let Some(value) = headers.get(header::ORIGIN) {
            let origin = value.to_str().unwrap_or("");
            if host.is_some_and(|h| same_origin(origin, h)) {
                return Ok(Cors::None);
            }
            if !self.listed(origin) {
                return Err(forbidden(format!(
                    "requests from the web page at {origin:?} are not allowed. If that page is an app of your own that should use Hearth's API, start Hearth with --cors-origin {origin} and give the app an API key."
                )));
            }
            let preflight =
                *method == Method::OPTIONS && headers.contains_key("access-control-request-method");
            return Ok(if preflight {
                Cors::Preflight(value.clone())
            } else {
                Cors::Simple(value.clone())
            });
        }
        let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if unsafe_method && (site == "cross-site" || site == "same-site") {
            return Err(forbidden(
                "requests from other web pages are not allowed".to_string(),
            ));
        }
        Ok(Cors::None)
    }
}

/// What a request that passed [`Access::check`] gets besides its answer.
#[derive(Debug)]
enum Cors {
    None,
    Simple(HeaderValue),
    Preflight(HeaderValue),
}

fn forbidden(message: String) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        ..ApiError::bad_request(message).with_code("foreign_origin")
    }
}

/// `(host, port)` of a `Host` header value: lowercase, without brackets or a trailing dot.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        ip.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (ip.to_string(), port)
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n.to_string(), Some(p.parse().ok()?)),
            None => (host.to_string(), None),
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.contains(['/', '@', ' ', ':']) && name.parse::<IpAddr>().is_err() {
        return None;
    }
    Some((name, port))
}

/// `scheme://host[:port]`, lowercase, without the scheme's default port; `None` for anything
/// that is not an http(s) origin (`null`, paths, user info).
fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (name, port) = split_host(rest)?;
    let name = if name.contains(':') {
        format!("[{name}]")
    } else {
        name
    };
    Some(match port {
        Some(p) if p != default => format!("{scheme}://{name}:{p}"),
        _ => format!("{scheme}://{name}"),
    })
}

/// Whether `origin` is the origin of a page served from `host` (the request's own `Host`).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some(o) = normalize_origin(origin) else {
        return false;
    };
    let scheme = if o.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    normalize_origin(&format!("{scheme}://{host}")).is_some_and(|h| h == o)
}

/// The middleware: refuses foreign hosts and origins, answers listed origins' preflights and
/// adds CORS headers to their answers.
pub(crate) async fn guard(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let cors = match state.access.check(req.method(), req.headers()) {
        Ok(cors) => cors,
        Err(e) => {
            // Someone who typed the address into a browser reads a sentence, not JSON.
            let page = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            if page {
                let mut r = (e.status, e.message).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                return r;
            }
            return e.into_response();
        }
    };
    match cors {
        Cors::None => next.run(req).await,
        Cors::Preflight(origin) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(header::VARY, HeaderValue::from_static("origin"));
            r
        }
        Cors::Simple(origin) => {
            let mut r = next.run(req).await;
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::VARY, HeaderValue::from_static("origin"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn hosts_answered_to() {
        let a = Access::default().with_host_name("Family-PC").expect("name");
        for ok in [
            "127.0.0.1",
            "127.0.0.1:4314",
            "192.168.1.20:4314",
            "[::1]:4314",
            "[fe80::1]",
            "localhost",
            "LOCALHOST:4314",
            "localhost.:4314",
            "hearth.local:4314",
            "family-pc:4314",
        ] {
            assert!(a.host_allowed(ok), "{ok} should be answered");
        }
        for no in [
            "evil.example",
            "evil.example:4314",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "0x7f.1",
            "[::1",
            "user@localhost",
            "",
        ] {
            assert!(!a.host_allowed(no), "{no} should be refused");
        }
    }

    #[test]
    fn origins() {
        let a = Access::default()
            .with_cors_origin("http://192.168.1.20:3000/")
            .expect("origin");
        let get = Method::GET;
        let post = Method::POST;
        // The page's own origin, whatever name it was reached by.
        assert!(a
            .check(
                &post,
                &headers(&[
                    ("host", "hearth.local:4314"),
                    ("origin", "http://hearth.local:4314")
                ])
            )
            .is_ok());
        // Another port of the same host is another origin.
        let e = a
            .check(
                &post,
                &headers(&[
                    ("host", "localhost:4314"),
                    ("origin", "http://localhost:8080"),
                ]),
            )
            .expect_err("another port");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("--cors-origin http://localhost:8080"));
        for o in [
            "null",
            "http://evil.example",
            "file://",
            "chrome-extension://abc",
        ] {
            assert!(a
                .check(&get, &headers(&[("host", "127.0.0.1:4314"), ("origin", o)]))
                .is_err());
        }
        assert!(a
            .check(
                &post,
                &headers(&[
                    ("host", "127.0.0.1:4314"),
                    ("origin", "http://192.168.1.20:3000")
                ])
            )
            .is_ok());
        // A browser that hides the origin still says the request is cross-site.
        assert!(a
            .check(
                &post,
                &headers(&[("host", "127.0.0.1:4314"), ("sec-fetch-site", "cross-site")])
            )
            .is_err());
        // Following a link from another site to the page is fine.
        assert!(a
            .check(
                &get,
                &headers(&[("host", "127.0.0.1:4314"), ("sec-fetch-site", "cross-site")])
            )
            .is_ok());
        // Apps send neither.
        assert!(a
            .check(&post, &headers(&[("host", "127.0.0.1:4314")]))
            .is_ok());
    }

    #[test]
    fn bad_flags_are_refused() {
        for o in ["localhost:3000", "http://a/b", "ftp://x", "http://user@x"] {
            assert!(Access::default().with_cors_origin(o).is_err(), "{o}");
        }
        for n in ["http://x", "x:80", "a/b", ""] {
            assert!(Access::default().with_host_name(n).is_err(), "{n}");
        }
    }
}
