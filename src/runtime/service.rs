//! The VirtualHost's login service, as the host's thread sees it: standard
//! tokens with a configured key are decided at once; Matrix logins, and
//! standard tokens whose key must first be fetched by `kid`, get a waiter
//! id. Their requests run on the [`Engine`] (or are answered by a cache, or
//! share an identical request in flight), and [`Service::drain`] hands back
//! finished logins when the engine's fd is readable. Pure of Lua.
//!
//! Bounds (README "Standard Jitsi tokens", SECURITY.md "Availability"): key fetches run in a budget
//! of the engine of their own ([`KEY_FETCH_IN_FLIGHT`], [`KEY_FETCH_QUEUE`]),
//! apart from Matrix checks, so neither starves the other; logins waiting
//! for a key ([`KEY_WAITERS_LIMIT`]) and for a Matrix verdict
//! (`uvs_queue_limit`) are bounded lists, refused at once when full;
//! logins with the same kid share one fetch. The engine's thread starts
//! with the first request (see [`crate::runtime::engine`] for forks).

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::runtime::login::{AuthOptions, Authenticator, LoginStep, MatrixSettings};
use crate::runtime::waiters::{Full, Waiters};
use crate::runtime::engine::{later, Budget, Engine, Outcome, SubmitError};
use crate::error::{Error, Result};
use crate::standard::keys::{Fetched, KeyStore, Lookup, MAX_KID_LEN};
use crate::matrix::token::MatrixLogin;
use crate::standard::token::{self, Claims};
use crate::matrix::verify::cache::{Broker, Plan};
use crate::runtime::http::{Http, MAX_SMALL_BODY};
use crate::matrix::verify::{Backend, BoxFuture, Failure, Verdict};

/// Budget of one key fetch (`asap_key_server`, `cache_keys_url`).
pub const KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests waiting at once when there are no Matrix settings.
const DEFAULT_LIMITS: (usize, usize) = (64, 1024);
/// Key fetches running at once (their own budget on the engine): more
/// than the rate limit lets start within one fetch's deadline (burst 20 +
/// 10/s x 5 s), so an admitted fetch never waits behind a slow key server.
pub const KEY_FETCH_IN_FLIGHT: usize = 64;
/// Key fetches pending at once (running or waiting for a turn).
pub const KEY_FETCH_QUEUE: usize = 128;
/// Standard logins waiting for a key, at most.
pub const KEY_WAITERS_LIMIT: usize = 1024;

/// What a login needs next.
#[derive(Debug)]
pub enum Reply {
    /// A standard token's verified claims: the session gets
    /// [`token::session_fields`] of them, and they go with
    /// `jitsi-authentication-token-verified`.
    Verified(Claims),
    /// A Matrix login answered from the cache: copy these fields.
    Granted(Map<String, Value>),
    /// Wait until [`Service::drain`] returns this waiter id; after
    /// `timeout` (the request's own deadline) with no answer, the host
    /// gives up with [`Service::expire`].
    Pending { id: u64, timeout: Duration },
}

/// What a finished login gives the session.
#[derive(Debug)]
pub enum Granted {
    Fields(Map<String, Value>),
    Claims(Claims),
}

/// A login that has its answer.
#[derive(Debug)]
pub struct Finished {
    pub id: u64,
    /// A log line about the answer (never a secret).
    pub detail: String,
    pub result: Result<Granted>,
}

/// What a request on the engine gives back.
#[derive(Debug)]
pub enum JobOutcome {
    Verdict(Verdict),
    /// A key fetch: status, body and `max-age`, or the transport failure.
    Fetched(std::result::Result<(u16, Vec<u8>, Option<Duration>), Failure>),
    TimedOut(Duration),
    Panicked(String),
}

impl Outcome for JobOutcome {
    fn timed_out(after: Duration) -> Self {
        JobOutcome::TimedOut(after)
    }
    fn panicked(message: String) -> Self {
        JobOutcome::Panicked(message)
    }
}

impl JobOutcome {
    fn into_verdict(self) -> Verdict {
        match self {
            JobOutcome::Verdict(v) => v,
            JobOutcome::TimedOut(after) => Verdict::timed_out(after),
            JobOutcome::Panicked(m) => Failure::Internal(format!("task panicked: {}", crate::text::escape_line(&m))).into(),
            JobOutcome::Fetched(_) => Failure::Internal("a key answer for a Matrix check".into()).into(),
        }
    }

    /// A fetched body (200), or why not.
    fn into_body(self) -> std::result::Result<(Vec<u8>, Option<Duration>), String> {
        match self {
            JobOutcome::Fetched(Ok((200, body, age))) => Ok((body, age)),
            JobOutcome::Fetched(Ok((status, _, _))) => Err(format!("HTTP {status}")),
            JobOutcome::Fetched(Err(f)) => Err(f.to_string()),
            JobOutcome::TimedOut(after) => Err(format!("timed out after {} ms", after.as_millis())),
            JobOutcome::Panicked(m) => Err(crate::text::escape_line(&m)),
            JobOutcome::Verdict(_) => Err("a Matrix answer for a key fetch".into()),
        }
    }
}

/// What a request in flight is for.
enum Job {
    Matrix,
    Kid(String),
    KeySet,
}

/// A standard login waiting for the key of its `kid`.
struct KeyWait {
    kid: String,
    token: Vec<u8>,
    /// Waiting for the first key set (`cache_keys_url`), not a fetch by kid.
    for_set: bool,
}

struct MatrixChecks {
    backend: Arc<dyn Backend>,
    broker: Broker,
    settings: MatrixSettings,
    /// Logins waiting for a verdict (at most `uvs_queue_limit`).
    waiting: Waiters<MatrixLogin>,
}

pub struct Service {
    auth: Authenticator,
    engine: Option<Engine<JobOutcome>>,
    http: Option<Http>,
    matrix: Option<MatrixChecks>,
    keys: KeyStore,
    jobs: HashMap<u64, Job>,
    /// The engine's budget for key fetches.
    key_budget: Budget,
    /// Standard logins waiting for a key (by kid, or the first key set).
    key_waiters: Waiters<KeyWait>,
    /// Lines for the log (key fetch failures, key set loads), drained by
    /// [`Service::take_notes`].
    notes: Vec<(&'static str, String)>,
}

impl Service {
    pub fn new(options: AuthOptions) -> Result<Self> {
        let (auth, settings) = Authenticator::new(options)?;
        let now = Instant::now();
        let keys = KeyStore::new(auth.standard_options(), now);
        let needs_engine = settings.is_some() || keys.enabled();
        let (engine, http) = if needs_engine {
            let (in_flight, queue) = settings.as_ref().map_or(DEFAULT_LIMITS, |s| (s.max_in_flight, s.queue_limit));
            let http = Http::new().map_err(|e| Error::Config(format!("cannot start the HTTP client: {e}")))?;
            let mut engine = Engine::new(in_flight, queue)
                .map_err(|e| Error::Config(format!("cannot start the background thread: {e}")))?;
            let key_budget = engine.add_budget(KEY_FETCH_IN_FLIGHT, KEY_FETCH_QUEUE);
            (Some((engine, key_budget)), Some(http))
        } else {
            (None, None)
        };
        let matrix = settings.map(|settings| {
            let backend = settings.build_backend(http.clone().expect("made above"));
            MatrixChecks { broker: Broker::new(backend.verdict_ttl(settings.cache_ttl)), backend, waiting: Waiters::new(settings.queue_limit), settings }
        });
        let (engine, key_budget) = match engine {
            Some((e, b)) => (Some(e), b),
            None => (None, Budget::DEFAULT),
        };
        // Nothing is sent yet: the first tick or login starts the engine
        // (after a daemonizing fork, in the process that serves).
        Ok(Service {
            auth,
            engine,
            key_budget,
            http,
            matrix,
            keys,
            jobs: HashMap::new(),
            key_waiters: Waiters::new(KEY_WAITERS_LIMIT),
            notes: Vec::new(),
        })
    }

    fn engine(&mut self) -> Result<&mut Engine<JobOutcome>> {
        self.engine.as_mut().ok_or(Error::Unloaded)
    }

    /// GET `url` on the engine as job `job`; returns the request id.
    fn fetch(&mut self, url: String, job: Job) -> Result<u64> {
        let http = self.http.clone().ok_or(Error::Unloaded)?;
        let budget = self.key_budget;
        let engine = self.engine()?;
        let id = engine.next_id();
        let fut: BoxFuture<JobOutcome> = Box::pin(async move {
            let request = http.client().get(url).header("Accept", "application/json, application/x-pem-file, */*");
            JobOutcome::Fetched(http.send(request, MAX_SMALL_BODY, &[200]).await.map(|a| (a.status, a.body, a.max_age)))
        });
        engine.submit_to(budget, id, later(Instant::now(), KEY_FETCH_TIMEOUT), fut).map_err(|e| match e {
            SubmitError::QueueFull { limit } => Error::KeyFetchBusy(format!("{limit} key fetches are pending")),
            e => submit_error(e),
        })?;
        self.jobs.insert(id, job);
        Ok(id)
    }

    /// Periodic work (call every few seconds): refresh `cache_keys_url`.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if let Some(url) = self.keys.due_refresh(now) {
            self.keys.refresh_started(now);
            if let Err(e) = self.fetch(url, Job::KeySet) {
                self.notes.push(("warn", format!("cannot fetch cache_keys_url: {e}")));
            }
        }
    }

    /// Check `token` (any bytes) presented for the Jitsi room `room`;
    /// `session_key` is a PEM public key that overrides the configured one.
    pub fn login(&mut self, token: &[u8], room: Option<&[u8]>, session_key: Option<&[u8]>) -> Result<Reply> {
        match self.auth.begin(token, room, token::now(), session_key)? {
            LoginStep::Verified(claims) => Ok(Reply::Verified(claims)),
            LoginStep::NeedKey(kid) => self.login_by_kid(kid, token),
            LoginStep::Matrix(login) => self.login_matrix(login),
        }
    }

    fn login_by_kid(&mut self, kid: String, token: &[u8]) -> Result<Reply> {
        if kid.len() > MAX_KID_LEN {
            return Err(Error::TokenMalformed("the header's kid is longer than 256 bytes"));
        }
        let now = Instant::now();
        if self.keys.set_waiting() {
            // The first key set is fetched with the first login (or tick).
            self.tick();
        }
        let known = match self.keys.lookup(&kid, now) {
            Lookup::Found(v) => return Ok(Reply::Verified(v.verify(token, token::now())?)),
            Lookup::Refused(why) => return Err(Error::KeyUnavailable(why)),
            Lookup::Fetch { known } => known,
        };
        let full = |Full(limit)| Error::KeyFetchBusy(format!("{limit} logins are waiting for a key"));
        if self.key_waiters.len() >= self.key_waiters.limit() {
            return Err(full(Full(self.key_waiters.limit())));
        }
        let timeout = KEY_FETCH_TIMEOUT;
        if let Some(url) = self.keys.asap_url(&kid).filter(|_| !self.keys.set_waiting()) {
            if !self.key_waiters.any(|w| !w.for_set && w.kid == kid) {
                if !known && !self.keys.may_fetch_unknown(now) {
                    return Err(Error::KeyFetchBusy(format!(
                        "more than {} kids never seen were asked for in the last second",
                        crate::standard::keys::KID_FETCHES_PER_SECOND
                    )));
                }
                self.fetch(url, Job::Kid(kid.clone()))?;
            }
            let id = self.engine()?.next_id();
            self.key_waiters.add(id, KeyWait { kid, token: token.to_vec(), for_set: false }).map_err(full)?;
            Ok(Reply::Pending { id, timeout })
        } else {
            let id = self.engine()?.next_id();
            self.key_waiters.add(id, KeyWait { kid, token: token.to_vec(), for_set: true }).map_err(full)?;
            Ok(Reply::Pending { id, timeout })
        }
    }

    fn login_matrix(&mut self, login: MatrixLogin) -> Result<Reply> {
        let m = self.matrix.as_mut().ok_or(Error::MatrixDisabled)?;
        let engine = self.engine.as_mut().ok_or(Error::Unloaded)?;
        let now = Instant::now();
        if m.waiting.len() >= m.waiting.limit() {
            return Err(Error::MatrixBusy(m.waiting.limit()));
        }
        let id = engine.next_id();
        match m.broker.plan(&login.check, id, now) {
            Plan::Cached(verdict) => return self.auth.finish(&login, &verdict, m.backend.name()).map(Reply::Granted),
            Plan::Joined => {}
            Plan::Send => {
                let check = Arc::clone(&m.backend).check(login.check.clone());
                let job: BoxFuture<JobOutcome> = Box::pin(async move { JobOutcome::Verdict(check.await) });
                if let Err(e) = engine.submit(id, later(now, m.settings.timeout), job) {
                    m.broker.abandon(id);
                    return Err(submit_error(e));
                }
                self.jobs.insert(id, Job::Matrix);
            }
        }
        m.waiting.add(id, login).map_err(|Full(limit)| Error::MatrixBusy(limit))?;
        Ok(Reply::Pending { id, timeout: m.settings.timeout })
    }

    /// Every login whose answer arrived (never blocks).
    pub fn drain(&mut self) -> Vec<Finished> {
        let Some(engine) = self.engine.as_mut() else { return Vec::new() };
        let answers = engine.drain();
        let mut out = Vec::new();
        for (request, answer) in answers {
            match self.jobs.remove(&request) {
                Some(Job::Matrix) => self.finish_matrix(request, answer.into_verdict(), &mut out),
                Some(Job::Kid(kid)) => self.finish_kid(kid, answer, &mut out),
                Some(Job::KeySet) => self.finish_set(answer, &mut out),
                None => {}
            }
        }
        out
    }

    fn finish_matrix(&mut self, request: u64, verdict: Verdict, out: &mut Vec<Finished>) {
        let Some(m) = self.matrix.as_mut() else { return };
        let source = m.backend.name();
        for id in m.broker.finish(request, &verdict, Instant::now()) {
            let Some(login) = m.waiting.take(id) else { continue };
            let result = self.auth.finish(&login, &verdict, source).map(Granted::Fields);
            out.push(Finished { id, detail: verdict.detail(source), result });
        }
    }

    fn verify_waiter(verifier: Option<&crate::standard::token::Verifier>, why: &str, id: u64, token: &[u8]) -> Finished {
        let result = match verifier {
            Some(v) => v.verify(token, token::now()).map(Granted::Claims),
            None => Err(Error::KeyUnavailable(why.to_string())),
        };
        Finished { id, detail: why.to_string(), result }
    }

    fn finish_kid(&mut self, kid: String, answer: JobOutcome, out: &mut Vec<Finished>) {
        let fetched = match &answer {
            JobOutcome::Fetched(Ok((200, body, age))) => Fetched::Body(body, *age),
            JobOutcome::Fetched(Ok((404, _, _))) => Fetched::NotFound,
            JobOutcome::Fetched(Ok((status, _, _))) => Fetched::Failed(format!("HTTP {status}")),
            JobOutcome::Fetched(Err(f)) => Fetched::Failed(f.to_string()),
            JobOutcome::TimedOut(after) => Fetched::Failed(format!("timed out after {} ms", after.as_millis())),
            JobOutcome::Panicked(m) => Fetched::Failed(crate::text::escape_line(m)),
            JobOutcome::Verdict(_) => Fetched::Failed("a Matrix answer for a key fetch".into()),
        };
        let shown = crate::text::Untrusted::new(&kid);
        let made = self.keys.asap_answer(&kid, fetched, Instant::now()).map_err(|e| {
            let reason = crate::text::escape_line(&e.text);
            self.notes.push(("warn", format!("the key of kid {shown} could not be fetched: {reason}")));
            if e.definite {
                Error::KeyUnavailable(format!("the key of kid {shown} could not be fetched: {reason}"))
            } else {
                Error::KeyFetchFailed(format!("{reason} (kid {shown})"))
            }
        });
        let why = match &made {
            Ok(_) => format!("key of kid {shown} fetched"),
            Err(e) => e.to_string(),
        };
        for (id, KeyWait { token, .. }) in self.key_waiters.take_where(|w| !w.for_set && w.kid == kid) {
            let result = match &made {
                Ok(v) => v.verify(&token, token::now()).map(Granted::Claims),
                Err(e) => Err(e.clone()),
            };
            out.push(Finished { id, detail: why.clone(), result });
        }
    }

    fn finish_set(&mut self, answer: JobOutcome, out: &mut Vec<Finished>) {
        let body = answer.into_body();
        let loaded = self.keys.set_answer(body.as_ref().map(|(b, age)| (b.as_slice(), *age)).map_err(String::clone), Instant::now());
        match &loaded {
            Ok(n) => self.notes.push(("info", format!("cache_keys_url: {n} keys"))),
            Err(e) => self.notes.push(("warn", format!("cache_keys_url could not be loaded (retried in 30 s): {}", crate::text::escape_line(e)))),
        }
        for (id, KeyWait { kid, token, .. }) in self.key_waiters.take_where(|w| w.for_set) {
            let finished = match self.keys.lookup(&kid, Instant::now()) {
                Lookup::Found(v) => Self::verify_waiter(Some(&v), "key set loaded", id, &token),
                Lookup::Refused(why) => Self::verify_waiter(None, &why, id, &token),
                Lookup::Fetch { .. } => Finished {
                    id,
                    detail: "the key set could not be loaded".into(),
                    result: Err(Error::KeyFetchFailed("the key set could not be loaded".into())),
                },
            };
            out.push(finished);
        }
    }

    /// Seconds of clock skew tolerated on standard tokens (`token_leeway`).
    pub fn token_leeway(&self) -> u64 {
        self.auth.standard_options().token_leeway.unwrap_or(0)
    }

    /// Give up on waiter `id` (the host's own deadline passed without an
    /// answer: a lost or stuck engine must not hang a login). Its answer
    /// is a timeout, as the engine's own deadline would have given.
    pub fn expire(&mut self, id: u64, after: Duration) -> Finished {
        if let Some(m) = self.matrix.as_mut() {
            if let Some(login) = m.waiting.take(id) {
                let verdict = Verdict::timed_out(after);
                let source = m.backend.name();
                let result = self.auth.finish(&login, &verdict, source).map(Granted::Fields);
                return Finished { id, detail: verdict.detail(source), result };
            }
        }
        let text = format!("no answer within {} ms", after.as_millis());
        let found = self.key_waiters.take(id).is_some();
        let error = if found { Error::KeyFetchFailed(text.clone()) } else { Error::MatrixUnavailable(text.clone()) };
        Finished { id, detail: text, result: Err(error) }
    }

    /// Log lines gathered since the last call: (level, text).
    pub fn take_notes(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.notes)
    }

    /// Stop: every waiting login is answered (`Unloaded`), the engine's
    /// thread is told to stop (never joined) and its fd closed.
    pub fn close(&mut self) -> Vec<Finished> {
        if let Some(engine) = self.engine.as_mut() {
            engine.close();
        }
        self.engine = None;
        let unloaded = |id| Finished { id, detail: "module unloaded".into(), result: Err(Error::Unloaded) };
        let mut ids: Vec<u64> = Vec::new();
        if let Some(m) = self.matrix.as_mut() {
            m.broker.take_all_waiters();
            ids.extend(m.waiting.take_all().into_iter().map(|(id, _)| id));
        }
        ids.extend(self.key_waiters.take_all().into_iter().map(|(id, _)| id));
        self.jobs.clear();
        ids.into_iter().map(unloaded).collect()
    }

    /// The fd that becomes readable when answers arrive.
    pub fn fd(&self) -> Option<RawFd> {
        self.engine.as_ref().and_then(|e| e.fd())
    }

    /// Logins waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.matrix.as_ref().map_or(0, |m| m.waiting.len()) + self.key_waiters.len()
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
                m.settings.max_in_flight,
                m.settings.queue_limit,
                m.settings.cache_ttl.as_secs_f64(),
            ),
        }
    }
}

fn submit_error(e: SubmitError) -> Error {
    match e {
        SubmitError::QueueFull { limit } => Error::MatrixBusy(limit),
        SubmitError::Closed => Error::Unloaded,
        SubmitError::Start(e) => Error::MatrixUnavailable(format!("cannot start the background thread: {}", crate::text::escape_line(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::token::VerifierOptions;
    use serde_json::json;

    fn part(v: Value) -> String {
        data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes())
    }

    /// A standard token whose key is chosen by `kid` (the signature is never
    /// reached: these tests stop at the key).
    fn token(kid: &str) -> Vec<u8> {
        let header = part(json!({"alg": "RS256", "typ": "JWT", "kid": kid}));
        let claims = part(json!({"iss": "app", "aud": "jitsi", "room": "*"}));
        format!("{header}.{claims}.c2ln").into_bytes()
    }

    /// Keys from a port that refuses connections: every fetch fails fast,
    /// without a definite answer.
    fn service() -> Service {
        let standard = VerifierOptions {
            app_id: Some("app".into()),
            asap_key_server: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        Service::new(AuthOptions { standard, ..Default::default() }).unwrap()
    }

    fn pending(step: Result<Reply>) -> u64 {
        match step {
            Ok(Reply::Pending { id, timeout }) => {
                assert_eq!(timeout, KEY_FETCH_TIMEOUT);
                id
            }
            other => panic!("not pending: {other:?}"),
        }
    }

    fn finished(s: &mut Service, n: usize) -> Vec<Finished> {
        let end = later(Instant::now(), Duration::from_secs(10));
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < end {
            got.extend(s.drain());
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    }

    #[test]
    fn service_refuses_a_long_kid_before_any_fetch() {
        let mut s = service();
        let long = "k".repeat(MAX_KID_LEN + 1);
        assert_eq!(s.login(&token(&long), None, None).unwrap_err(), Error::TokenMalformed("the header's kid is longer than 256 bytes"));
        assert!(s.jobs.is_empty(), "nothing fetched");
        pending(s.login(&token(&"k".repeat(MAX_KID_LEN)), None, None));
    }

    #[test]
    fn service_logins_with_one_kid_share_one_fetch() {
        let mut s = service();
        let ids: Vec<u64> = (0..5).map(|_| pending(s.login(&token("same"), None, None))).collect();
        assert_eq!(s.jobs.len(), 1, "one fetch");
        assert_eq!(s.waiting(), 5);
        let mut done: Vec<u64> = finished(&mut s, 5).iter().map(|f| f.id).collect();
        done.sort();
        assert_eq!(done, ids);
    }

    #[test]
    fn service_rate_limits_unknown_kids() {
        let mut s = service();
        let burst = crate::standard::keys::KID_FETCH_BURST as usize;
        for i in 0..burst {
            pending(s.login(&token(&format!("kid-{i}")), None, None));
        }
        let over = s.login(&token("one-too-many"), None, None).unwrap_err();
        assert_eq!(over.to_string(), "the key of this token is not fetched now: more than 10 kids never seen were asked for in the last second");
        assert_eq!(over.reason_code(), "key_fetch_busy");
        assert_eq!(over.sasl_condition(), "temporary-auth-failure");
        assert_eq!(s.jobs.len(), burst);
    }

    #[test]
    fn service_does_not_remember_a_fetch_without_a_definite_answer() {
        let mut s = service();
        let id = pending(s.login(&token("flaky"), None, None));
        let got = finished(&mut s, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, id);
        let err = got[0].result.as_ref().unwrap_err();
        assert_eq!(err.reason_code(), "key_fetch_failed", "{err}");
        let text = err.to_string();
        assert!(text.starts_with("the key of this token could not be fetched: ") && text.ends_with(" (kid 'flaky')"), "{text}");
        // Asked again at once: not "could not be fetched recently".
        pending(s.login(&token("flaky"), None, None));
    }

    #[test]
    fn service_bounds_the_logins_waiting_for_a_key() {
        let mut s = service();
        for _ in 0..KEY_WAITERS_LIMIT {
            pending(s.login(&token("crowded"), None, None));
        }
        let full = s.login(&token("crowded"), None, None).unwrap_err();
        assert_eq!(full.to_string(), "the key of this token is not fetched now: 1024 logins are waiting for a key");
        assert_eq!(full.reason_code(), "key_fetch_busy");
    }

    #[test]
    fn service_expire_answers_a_waiting_login_once() {
        let mut s = service();
        let id = pending(s.login(&token("slow"), None, None));
        let f = s.expire(id, Duration::from_secs(7));
        assert_eq!(f.id, id);
        assert_eq!(f.result.unwrap_err(), Error::KeyFetchFailed("no answer within 7000 ms".into()));
        assert_eq!(s.waiting(), 0);
        // The fetch's own answer, when it comes, finds nobody waiting.
        let end = later(Instant::now(), Duration::from_secs(10));
        let mut answered = Vec::new();
        while !s.jobs.is_empty() && Instant::now() < end {
            answered.extend(s.drain());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(s.jobs.is_empty(), "the fetch answered");
        assert!(answered.is_empty(), "answered once: {answered:?}");
    }
}
