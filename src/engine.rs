//! Background requests for a single-threaded host (Prosody's event loop).
//!
//! One background thread runs a tokio current-thread runtime; every job is
//! a future on it, so hundreds of HTTP requests wait on the network at once
//! without a thread each. The host submits a job and gets an answer later:
//!
//! - [`Engine::submit`] never blocks. At most `queue_limit` jobs are
//!   pending (a full engine refuses: fail closed) and at most
//!   `max_in_flight` run at once; the others wait their turn.
//! - One deadline bounds a job's whole life, the wait for a turn included.
//!   A job past its deadline completes with [`Outcome::timed_out`].
//! - A finished job is queued as `(id, outcome)` and the Linux eventfd
//!   [`Engine::fd`] becomes readable; the host calls [`Engine::drain`].
//!   Once `drain` returns with nothing pending the fd is not readable.
//! - [`Engine::close`] (and `Drop`) never blocks: it tells the thread to
//!   stop (jobs still running are dropped) and closes the eventfd. Nothing
//!   is ever joined on the host's thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use crate::verify::BoxFuture;

/// What a job reports when it could not finish by itself.
pub trait Outcome: Send + 'static {
    /// The deadline passed after `after` (queue wait included).
    fn timed_out(after: Duration) -> Self;
    /// The job panicked.
    fn panicked(message: String) -> Self;
}

/// Why a job was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// `limit` jobs are already pending (waiting or running).
    #[error("the queue is full ({limit} jobs pending)")]
    QueueFull { limit: usize },
    /// The engine was closed.
    #[error("the engine is closed")]
    Closed,
}

struct Done<Out> {
    results: Vec<(u64, Out)>,
    /// `None` once closed: nothing is written to a closed (maybe reused) fd.
    efd: Option<OwnedFd>,
}

struct Shared<Out> {
    /// Finished jobs not yet drained. The eventfd is written while this
    /// lock is held and read under it in `drain`, so they never disagree.
    done: Mutex<Done<Out>>,
    /// Submitted and not yet finished.
    pending: AtomicUsize,
}

impl<Out> Shared<Out> {
    fn complete(&self, id: u64, out: Out) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        let mut done = lock(&self.done);
        if let Some(efd) = &done.efd {
            write_eventfd(efd.as_raw_fd());
            done.results.push((id, out));
        }
    }
}

/// The background runtime and its bounds.
pub struct Engine<Out: Outcome> {
    shared: Arc<Shared<Out>>,
    runtime: tokio::runtime::Handle,
    in_flight: Arc<Semaphore>,
    stop: Option<oneshot::Sender<()>>,
    queue_limit: usize,
    max_in_flight: usize,
    next_id: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<Out: Outcome> Engine<Out> {
    /// Start the background thread. `max_in_flight` and `queue_limit` are
    /// at least 1.
    pub fn new(max_in_flight: usize, queue_limit: usize) -> io::Result<Self> {
        let (max_in_flight, queue_limit) = (max_in_flight.max(1), queue_limit.max(1));
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        thread::Builder::new().name("jitsi-security-net".into()).spawn(move || {
            // Runs every job until told to stop (or the engine is dropped),
            // then drops whatever is still running.
            let _ = runtime.block_on(stopped);
            runtime.shutdown_background();
        })?;
        Ok(Engine {
            shared: Arc::new(Shared { done: Mutex::new(Done { results: Vec::new(), efd: Some(efd) }), pending: AtomicUsize::new(0) }),
            runtime: handle,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            stop: Some(stop),
            queue_limit,
            max_in_flight,
            next_id: 1,
        })
    }

    /// A fresh id for a job or a waiter (ids start at 1 and only grow).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Run `job` (id from [`Engine::next_id`]) until `deadline`. Never blocks.
    pub fn submit(&self, id: u64, deadline: Instant, job: BoxFuture<Out>) -> Result<(), SubmitError> {
        if self.stop.is_none() {
            return Err(SubmitError::Closed);
        }
        let pending = &self.shared.pending;
        if pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.queue_limit).then_some(n + 1))
            .is_err()
        {
            return Err(SubmitError::QueueFull { limit: self.queue_limit });
        }
        let shared = Arc::clone(&self.shared);
        let in_flight = Arc::clone(&self.in_flight);
        let started = Instant::now();
        self.runtime.spawn(async move {
            let work = tokio::spawn(async move {
                // Closed only when the runtime stops; then nothing reports.
                let _permit = in_flight.acquire_owned().await;
                job.await
            });
            let abort = work.abort_handle();
            let out = match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(Ok(out)) => out,
                Ok(Err(e)) if e.is_panic() => Out::panicked(panic_text(e.into_panic())),
                Ok(Err(_)) => return, // cancelled: the engine is stopping
                Err(_) => {
                    abort.abort();
                    Out::timed_out(started.elapsed())
                }
            };
            shared.complete(id, out);
        });
        Ok(())
    }

    /// The eventfd to watch for readability (`None` once closed).
    pub fn fd(&self) -> Option<RawFd> {
        lock(&self.shared.done).efd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Resets the eventfd and returns every finished job (never blocks).
    pub fn drain(&self) -> Vec<(u64, Out)> {
        let mut done = lock(&self.shared.done);
        if let Some(efd) = &done.efd {
            read_eventfd(efd.as_raw_fd());
        }
        std::mem::take(&mut done.results)
    }

    /// Jobs submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Stop without waiting: the thread drops every job and exits on its
    /// own; the eventfd is closed now. Later submits are refused.
    pub fn close(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut done = lock(&self.shared.done);
        done.efd = None;
        done.results.clear();
    }

    /// Whether [`Engine::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.stop.is_none()
    }
}

impl<Out: Outcome> Drop for Engine<Out> {
    fn drop(&mut self) {
        self.close();
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn write_eventfd(fd: RawFd) {
    let one: u64 = 1;
    loop {
        // SAFETY: writes 8 bytes from a live u64 to an fd we own (the
        // caller holds the lock that keeps it open).
        let n = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // EAGAIN would mean the counter is at its maximum: still readable.
            return;
        }
    }
}

fn read_eventfd(fd: RawFd) {
    let mut count: u64 = 0;
    loop {
        // SAFETY: reads 8 bytes into a live u64 from an fd we own.
        let n = unsafe { libc::read(fd, (&mut count as *mut u64).cast(), 8) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // EAGAIN: the counter was already 0.
            return;
        }
    }
}

impl Outcome for crate::verify::Verdict {
    fn timed_out(after: Duration) -> Self {
        crate::verify::Verdict::timed_out(after)
    }

    fn panicked(message: String) -> Self {
        crate::verify::Failure::Internal(format!("task panicked: {}", crate::text::escape_line(&message))).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Val(u64),
        TimedOut,
        Panicked(String),
    }

    impl Outcome for Out {
        fn timed_out(_: Duration) -> Self {
            Out::TimedOut
        }
        fn panicked(m: String) -> Self {
            Out::Panicked(m)
        }
    }

    fn readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) == 1 }
    }

    fn sleeper(ms: u64, v: u64) -> BoxFuture<Out> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Out::Val(v)
        })
    }

    fn collect(e: &Engine<Out>, n: usize, within: Duration) -> Vec<(u64, Out)> {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < end {
            if readable(e.fd().unwrap(), 50) {
                got.extend(e.drain());
            }
        }
        got.sort_by_key(|(id, _)| *id);
        got
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn engine_result_arrives_and_fd_is_quiet_after_drain() {
        let mut e = Engine::<Out>::new(4, 16).unwrap();
        let id = e.next_id();
        e.submit(id, far(), sleeper(10, 7)).unwrap();
        assert_eq!(collect(&e, 1, Duration::from_secs(5)), vec![(id, Out::Val(7))]);
        assert!(!readable(e.fd().unwrap(), 0), "drained fd is not readable");
        assert!(e.drain().is_empty());
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn engine_runs_many_waits_at_once_on_one_thread() {
        let mut e = Engine::<Out>::new(200, 200).unwrap();
        let start = Instant::now();
        for v in 0..200 {
            let id = e.next_id();
            e.submit(id, far(), sleeper(200, v)).unwrap();
        }
        let got = collect(&e, 200, Duration::from_secs(10));
        assert_eq!(got.len(), 200);
        // 200 waits of 200 ms in parallel, not in waves (a generous bound:
        // in waves of even 50 this would take 800 ms).
        assert!(start.elapsed() < Duration::from_millis(700), "{:?}", start.elapsed());
    }

    #[test]
    fn engine_in_flight_limit_makes_waves() {
        let mut e = Engine::<Out>::new(2, 16).unwrap();
        let start = Instant::now();
        for v in 0..4 {
            let id = e.next_id();
            e.submit(id, far(), sleeper(100, v)).unwrap();
        }
        assert_eq!(collect(&e, 4, Duration::from_secs(5)).len(), 4);
        assert!(start.elapsed() >= Duration::from_millis(200), "two waves of two");
    }

    #[test]
    fn engine_queue_limit_refuses_without_blocking() {
        let mut e = Engine::<Out>::new(1, 2).unwrap();
        for _ in 0..2 {
            let id = e.next_id();
            e.submit(id, far(), sleeper(100, 0)).unwrap();
        }
        let id = e.next_id();
        assert_eq!(e.submit(id, far(), sleeper(1, 0)), Err(SubmitError::QueueFull { limit: 2 }));
        assert_eq!(collect(&e, 2, Duration::from_secs(5)).len(), 2);
        let id = e.next_id();
        assert!(e.submit(id, far(), sleeper(1, 0)).is_ok(), "slots come back");
    }

    #[test]
    fn engine_deadline_covers_the_wait_for_a_turn() {
        let mut e = Engine::<Out>::new(1, 8).unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(300);
        let (a, b) = (e.next_id(), e.next_id());
        e.submit(a, deadline, sleeper(10_000, 1)).unwrap();
        // Queued behind `a`: it must not wait for `a`'s 10 s.
        e.submit(b, deadline, sleeper(10, 2)).unwrap();
        let got = collect(&e, 2, Duration::from_secs(5));
        assert_eq!(got, vec![(a, Out::TimedOut), (b, Out::TimedOut)]);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn engine_panicking_job_completes_with_panic_outcome() {
        let mut e = Engine::<Out>::new(1, 8).unwrap();
        let id = e.next_id();
        e.submit(id, far(), Box::pin(async { panic!("boom") })).unwrap();
        assert_eq!(collect(&e, 1, Duration::from_secs(5)), vec![(id, Out::Panicked("boom".into()))]);
        let id = e.next_id();
        e.submit(id, far(), sleeper(1, 3)).unwrap();
        assert_eq!(collect(&e, 1, Duration::from_secs(5)), vec![(id, Out::Val(3))], "still works");
    }

    #[test]
    fn engine_close_never_waits_for_running_jobs() {
        let mut e = Engine::<Out>::new(4, 8).unwrap();
        for _ in 0..4 {
            let id = e.next_id();
            e.submit(id, far(), sleeper(20_000, 0)).unwrap();
        }
        let start = Instant::now();
        e.close();
        drop(e);
        assert!(start.elapsed() < Duration::from_millis(100), "{:?}", start.elapsed());
    }

    #[test]
    fn engine_closed_refuses_and_has_no_fd() {
        let mut e = Engine::<Out>::new(1, 8).unwrap();
        e.close();
        assert!(e.fd().is_none());
        let id = e.next_id();
        assert_eq!(e.submit(id, far(), sleeper(1, 0)), Err(SubmitError::Closed));
        assert!(e.drain().is_empty());
    }
}
