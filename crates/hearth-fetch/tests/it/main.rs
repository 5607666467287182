//! Integration tests of hearth-fetch, one binary. Everything runs offline: HTTP against a server
//! on 127.0.0.1 started by the test, wheels built by the test, and pip replaced by a small script
//! through `HEARTH_PYTHON` where the pip step itself is exercised.

mod catalog;
mod concurrent;
mod hostile;
mod http;
mod info;
mod local;
mod pip;
mod support;
mod wheel;
