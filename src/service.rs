//! The VirtualHost's login service, as the host's thread sees it: standard
//! tokens are decided at once; Matrix logins get a waiter id, their check
//! runs on the [`Engine`] (or is answered by the cache, or shares an
//! identical check in flight), and [`Service::drain`] hands back finished
//! logins when the engine's fd is readable. Pure of Lua.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::auth::{AuthOptions, Authenticator, LoginStep, MatrixSettings};
use crate::engine::{Engine, SubmitError};
use crate::error::{Error, Result};
use crate::matrix::MatrixLogin;
use crate::token::{self, Claims};
use crate::verify::cache::{Broker, Plan};
use crate::verify::http::Http;
use crate::verify::{Backend, Verdict};

/// What a login needs next.
#[derive(Debug)]
pub enum Step {
    /// A standard token's verified claims: the session gets
    /// [`token::session_fields`] of them, and they go with
    /// `jitsi-authentication-token-verified`.
    Verified(Claims),
    /// A Matrix login answered from the cache: copy these fields.
    Done(Map<String, Value>),
    /// Wait until [`Service::drain`] returns this waiter id.
    Pending(u64),
}

/// A Matrix login that has its answer.
#[derive(Debug)]
pub struct Finished {
    pub id: u64,
    /// A log line about the verdict (never a secret).
    pub detail: String,
    pub result: Result<Map<String, Value>>,
}

struct Matrix {
    engine: Engine<Verdict>,
    backend: Arc<dyn Backend>,
    broker: Broker,
    settings: MatrixSettings,
    /// Logins waiting for a verdict, by waiter id.
    waiting: HashMap<u64, MatrixLogin>,
}

pub struct Service {
    auth: Authenticator,
    matrix: Option<Matrix>,
}

impl Service {
    pub fn new(options: AuthOptions) -> Result<Self> {
        let (auth, settings) = Authenticator::new(options)?;
        let matrix = match settings {
            None => None,
            Some(settings) => {
                let http = Http::new().map_err(|e| Error::Config(format!("cannot start the HTTP client: {e}")))?;
                let engine = Engine::new(settings.max_in_flight, settings.queue_limit)
                    .map_err(|e| Error::Config(format!("cannot start the Matrix check thread: {e}")))?;
                Some(Matrix {
                    engine,
                    backend: settings.backend.clone().build(http),
                    broker: Broker::new(settings.cache_ttl),
                    settings,
                    waiting: HashMap::new(),
                })
            }
        };
        Ok(Service { auth, matrix })
    }

    /// Check `token` (any bytes) presented for the Jitsi room `room`;
    /// `session_key` is a PEM public key that overrides the configured one.
    pub fn login(&mut self, token: &[u8], room: Option<&[u8]>, session_key: Option<&[u8]>) -> Result<Step> {
        let login = match self.auth.begin(token, room, token::now(), session_key)? {
            LoginStep::Verified(claims) => return Ok(Step::Verified(claims)),
            LoginStep::Matrix(login) => login,
        };
        let m = self.matrix.as_mut().ok_or(Error::MatrixDisabled)?;
        let now = Instant::now();
        let id = m.engine.next_id();
        match m.broker.plan(&login.check, id, now) {
            Plan::Cached(verdict) => return self.auth.finish(&login, &verdict, m.backend.name()).map(Step::Done),
            Plan::Joined => {}
            Plan::Send => {
                let job = Arc::clone(&m.backend).check(login.check.clone());
                if let Err(e) = m.engine.submit(id, now + m.settings.timeout, job) {
                    m.broker.abandon(id);
                    return Err(match e {
                        SubmitError::QueueFull { limit } => Error::MatrixBusy(limit),
                        SubmitError::Closed => Error::Unloaded,
                    });
                }
            }
        }
        m.waiting.insert(id, login);
        Ok(Step::Pending(id))
    }

    /// Every Matrix login whose answer arrived (never blocks).
    pub fn drain(&mut self) -> Vec<Finished> {
        let Some(m) = self.matrix.as_mut() else { return Vec::new() };
        let now = Instant::now();
        let source = m.backend.name();
        let mut out = Vec::new();
        for (request, verdict) in m.engine.drain() {
            for id in m.broker.finish(request, &verdict, now) {
                let Some(login) = m.waiting.remove(&id) else { continue };
                out.push(Finished {
                    id,
                    detail: verdict.detail(source),
                    result: self.auth.finish(&login, &verdict, source),
                });
            }
        }
        out
    }

    /// Stop: every waiting login is answered (`Unloaded`), the engine's
    /// thread is told to stop (never joined) and its fd closed.
    pub fn close(&mut self) -> Vec<Finished> {
        let Some(m) = self.matrix.as_mut() else { return Vec::new() };
        m.engine.close();
        m.broker.take_all_waiters();
        m.waiting
            .drain()
            .map(|(id, _)| Finished { id, detail: "module unloaded".into(), result: Err(Error::Unloaded) })
            .collect()
    }

    /// The fd that becomes readable when answers arrive.
    pub fn fd(&self) -> Option<RawFd> {
        self.matrix.as_ref().and_then(|m| m.engine.fd())
    }

    /// Matrix logins waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.matrix.as_ref().map_or(0, |m| m.waiting.len())
    }

    /// A one-line summary for the startup log (never a secret).
    pub fn describe(&self) -> String {
        let base = self.auth.describe();
        match &self.matrix {
            None => base,
            Some(m) => format!(
                "{base}; Matrix checks by {} (timeout {:.1} s, {} in flight, {} waiting at most, cache {} s)",
                m.backend.name(),
                m.settings.timeout.as_secs_f64(),
                m.engine.max_in_flight(),
                m.engine.queue_limit(),
                m.settings.cache_ttl.as_secs_f64(),
            ),
        }
    }
}
