//! The page's own files, compiled into the binary: `/` (index.html, also at each of the page's
//! own addresses: `/c/{id}` for a chat, `/settings/{tab}`, so a reload or a bookmark opens the
//! same screen), `/app.js` (the entry module), `/app.css`, the ES modules it imports under
//! `/page/{name}`, and the web app manifest with its icons (`/icons/{name}`, drawn by
//! `scripts/gen-icons.py`).
//!
//! Every file is served `no-cache` (the browser revalidates, so a new Hearth never runs an old
//! page), with its exact type and `nosniff`; the page itself carries a Content-Security-Policy
//! that lets only these files run.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

const JS: &str = "text/javascript; charset=utf-8";

/// The modules under `/page/`, by file name. A module the page imports but that is missing here
/// would leave the page blank; `every_module_the_page_imports_is_served` checks the list.
const PAGE_MODULES: &[(&str, &str)] = &[
    ("advice.js", include_str!("../../assets/page/advice.js")),
    (
        "assistant.js",
        include_str!("../../assets/page/assistant.js"),
    ),
    ("api.js", include_str!("../../assets/page/api.js")),
    ("branches.js", include_str!("../../assets/page/branches.js")),
    ("chat.js", include_str!("../../assets/page/chat.js")),
    ("chatx.js", include_str!("../../assets/page/chatx.js")),
    ("dom.js", include_str!("../../assets/page/dom.js")),
    ("family.js", include_str!("../../assets/page/family.js")),
    (
        "highlight.js",
        include_str!("../../assets/page/highlight.js"),
    ),
    ("i18n.js", include_str!("../../assets/page/i18n.js")),
    ("lengths.js", include_str!("../../assets/page/lengths.js")),
    ("login.js", include_str!("../../assets/page/login.js")),
    ("markdown.js", include_str!("../../assets/page/markdown.js")),
    (
        "messages-en.js",
        include_str!("../../assets/page/messages-en.js"),
    ),
    (
        "messages-fr.js",
        include_str!("../../assets/page/messages-fr.js"),
    ),
    (
        "server-words.js",
        include_str!("../../assets/page/server-words.js"),
    ),
    ("settings.js", include_str!("../../assets/page/settings.js")),
    ("shell.js", include_str!("../../assets/page/shell.js")),
    ("theme.js", include_str!("../../assets/page/theme.js")),
];

const MANIFEST: &str = include_str!("../../assets/manifest.webmanifest");

/// The icons under `/icons/`: name, bytes, type.
const ICONS: &[(&str, &[u8], &str)] = &[
    (
        "icon.svg",
        include_bytes!("../../assets/icons/icon.svg"),
        "image/svg+xml",
    ),
    (
        "icon-192.png",
        include_bytes!("../../assets/icons/icon-192.png"),
        "image/png",
    ),
    (
        "icon-512.png",
        include_bytes!("../../assets/icons/icon-512.png"),
        "image/png",
    ),
    (
        "maskable-512.png",
        include_bytes!("../../assets/icons/maskable-512.png"),
        "image/png",
    ),
    (
        "apple-touch-icon.png",
        include_bytes!("../../assets/icons/apple-touch-icon.png"),
        "image/png",
    ),
];

fn asset(body: impl Into<axum::body::Body>, kind: &'static str) -> Response {
    let mut r = (StatusCode::OK, body.into()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `/`.
pub(crate) async fn index() -> Response {
    let mut r = asset(INDEX_HTML, "text/html; charset=utf-8");
    // The page runs only its own scripts and styles; model text is never HTML.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    r.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// `/c/{id}`, `/settings`, `/settings/{tab}`: the page, which opens that screen itself (it checks
/// the session and the chat's owner through the API like any other screen).
pub(crate) async fn index_at() -> Response {
    index().await
}

/// `/manifest.webmanifest`: what a phone needs to put Hearth on its home screen.
pub(crate) async fn manifest() -> Response {
    asset(MANIFEST, "application/manifest+json")
}

/// `/icons/{name}`.
pub(crate) async fn icon(Path(name): Path<String>) -> Response {
    match ICONS.iter().find(|(n, _, _)| *n == name) {
        Some((_, body, kind)) => asset(*body, kind),
        None => ApiError::not_found("no such page").into_response(),
    }
}

/// `/app.js`.
pub(crate) async fn app_js() -> Response {
    asset(APP_JS, JS)
}

/// `/app.css`.
pub(crate) async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// `/page/{name}`: one of the page's modules.
pub(crate) async fn page_module(Path(name): Path<String>) -> Response {
    match PAGE_MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => asset(*body, JS),
        None => ApiError::not_found("no such page").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relative module paths (`'./x.js'`, `'./page/x.js'`) that `src` imports or re-exports.
    fn imports(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in src.lines() {
            let line = line.trim_start();
            if !(line.starts_with("import ") || line.starts_with("export ")) {
                continue;
            }
            if let Some(at) = line.find(" from '") {
                let rest = &line[at + " from '".len()..];
                if let Some(end) = rest.find('\'') {
                    out.push(rest[..end].to_string());
                }
            }
        }
        out
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        let mut seen = 0;
        let mut check = |from: &str, src: &str, prefix: &str| {
            for path in imports(src) {
                let name = path
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("{from} imports {path}, outside /page/"));
                assert!(
                    PAGE_MODULES.iter().any(|(n, _)| *n == name),
                    "{from} imports {path}, which PAGE_MODULES does not serve"
                );
                seen += 1;
            }
        };
        check("app.js", APP_JS, "./page/");
        for (name, src) in PAGE_MODULES {
            check(name, src, "./");
        }
        assert!(
            seen >= PAGE_MODULES.len(),
            "the import scan found too little"
        );
        // And nothing is served that no module imports.
        let all: String = std::iter::once(APP_JS)
            .chain(PAGE_MODULES.iter().map(|(_, s)| *s))
            .collect();
        for (name, _) in PAGE_MODULES {
            assert!(
                all.contains(&format!("/{name}'")),
                "{name} is served but never imported"
            );
        }
    }
}
