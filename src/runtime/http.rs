//! The shared non-blocking HTTP client: many requests in flight on the
//! engine's one thread, bodies read with a size limit, redirects never
//! followed (a redirect is an answer other than 200: fail closed, and a
//! bearer token is never carried elsewhere), and error texts that never
//! carry a URL (a URL may hold an OpenID token in its query).

use crate::matrix::verify::Failure;
use crate::text::escape_line;

/// Largest body read from UVS (a real answer is a few hundred bytes).
pub const MAX_SMALL_BODY: usize = 1 << 20;
/// Largest body read for a room's state (a 10,000-member room is ~5 MB).
pub const MAX_STATE_BODY: usize = 32 << 20;

/// A status and, when it was read, the body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, when the answer has one.
    pub max_age: Option<std::time::Duration>,
}

/// A reqwest client configured for talking to UVS or a homeserver.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Proxies from the environment would be a surprise on a server.
            .no_proxy()
            .user_agent(concat!("jitsi-prosody-security/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| escape_line(&e.without_url().to_string()))?;
        Ok(Http { client })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request`; reads the body (at most `limit` bytes) only when
    /// the status is one of `read_body_on`.
    pub async fn send(&self, request: reqwest::RequestBuilder, limit: usize, read_body_on: &[u16]) -> Result<HttpAnswer, Failure> {
        let mut resp = request.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let max_age = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::standard::keys::max_age);
        let mut body = Vec::new();
        if read_body_on.contains(&status) {
            if resp.content_length().is_some_and(|n| n > limit as u64) {
                return Err(Failure::BadBody(format!("is larger than {limit} bytes")));
            }
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                if body.len() + chunk.len() > limit {
                    return Err(Failure::BadBody(format!("is larger than {limit} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
        }
        Ok(HttpAnswer { status, body, max_age })
    }
}

/// A transport error as a [`Failure`]: without its URL, with its causes
/// (reqwest's own text is terse), escaped.
fn transport(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    Failure::Connect(escape_line(&text))
}
