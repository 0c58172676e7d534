//! Background requests for a single-threaded host (Prosody's event loop).
//!
//! One background thread runs a tokio current-thread runtime; every job is
//! a future on it, so hundreds of HTTP requests wait on the network at once
//! without a thread each. The host submits a job and gets an answer later:
//!
//! - [`Engine::submit`] never blocks. Jobs are counted in budgets: the
//!   engine's own (from [`Engine::new`]) and any added with
//!   [`Engine::add_budget`], each with its own `queue_limit` (pending
//!   jobs; a full budget refuses: fail closed) and `max_in_flight` (jobs
//!   running at once; the others wait their turn). A full budget never
//!   delays the jobs of another one.
//! - One deadline bounds a job's whole life, the wait for a turn included.
//!   A job past its deadline completes with [`Outcome::timed_out`].
//! - A finished job is queued as `(id, outcome)` and the Linux eventfd
//!   [`Engine::fd`] becomes readable; the host calls [`Engine::drain`].
//!   Once `drain` returns with nothing pending the fd is not readable.
//! - [`Engine::close`] (and `Drop`) never blocks: it tells the thread to
//!   stop (jobs still running are dropped) and closes the eventfd. Nothing
//!   is ever joined on the host's thread.
//!
//! Fork safety (`prosodyctl start` and Debian's init script run Prosody
//! with `-D`, which forks after the modules are loaded; the child has no
//! threads): the thread starts on the first submit, not in
//! [`Engine::new`], and every submit and drain compares the process id
//! with the one that started it. In a forked child the old thread's state
//! is left untouched (its locks may be held by a thread that no longer
//! exists: it is leaked, never dropped nor locked), jobs it had are
//! answered with [`Outcome::lost`], and a new thread starts. The eventfd
//! stays the same: the child inherits it (its parent exits, as
//! `pposix.daemonize` does), so a host that watches `fd()` keeps watching
//! the right one.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use crate::matrix::verify::BoxFuture;

/// `now + d` without overflow: a sum past what an `Instant` can hold
/// (`Cache-Control: max-age=18446744073709551615`) is as far as it goes
/// instead of a panic. Every `Instant + Duration` of the crate goes
/// through here.
pub fn later(now: Instant, d: Duration) -> Instant {
    if let Some(t) = now.checked_add(d) {
        return t;
    }
    // Halve until it fits: at most 64 steps, and a century fits anywhere.
    let mut step = d;
    let mut t = now;
    while !step.is_zero() {
        step /= 2;
        if let Some(next) = t.checked_add(step) {
            t = next;
        }
    }
    t
}

/// What a job reports when it could not finish by itself.
pub trait Outcome: Send + 'static {
    /// The deadline passed after `after` (queue wait included).
    fn timed_out(after: Duration) -> Self;
    /// The job panicked.
    fn panicked(message: String) -> Self;
    /// The process forked while the job ran: the thread that ran it is
    /// not in this process.
    fn lost() -> Self
    where
        Self: Sized,
    {
        Self::panicked("the background thread was lost when the process forked".into())
    }
}

/// Why a job was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// `limit` jobs of its budget are already pending (waiting or running).
    #[error("the queue is full ({limit} jobs pending)")]
    QueueFull { limit: usize },
    /// The engine was closed.
    #[error("the engine is closed")]
    Closed,
    /// The background thread could not be started.
    #[error("cannot start the background thread: {0}")]
    Start(String),
}

/// A budget of jobs (see [`Engine::add_budget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget(usize);

impl Budget {
    /// The budget of [`Engine::new`].
    pub const DEFAULT: Budget = Budget(0);
}

struct Completed<Out> {
    results: Vec<(u64, Out)>,
    /// False once closed: nothing is written to a closed (maybe reused) fd.
    open: bool,
}

struct Shared<Out> {
    /// Finished jobs not yet drained. The eventfd is written while this
    /// lock is held and read under it in `drain`, so they never disagree.
    done: Mutex<Completed<Out>>,
    /// The eventfd (owned by the [`Engine`], written only while `open`).
    efd: RawFd,
}

impl<Out> Shared<Out> {
    fn complete(&self, lane: &Lane, id: u64, out: Out) {
        lane.pending.fetch_sub(1, Ordering::AcqRel);
        let mut done = lock(&self.done);
        if done.open {
            write_eventfd(self.efd);
            done.results.push((id, out));
        }
    }
}

/// One budget's counters on the running thread.
struct Lane {
    in_flight: Arc<Semaphore>,
    /// Submitted and not yet finished.
    pending: AtomicUsize,
    queue_limit: usize,
}

/// The thread of one process.
struct Running<Out> {
    pid: u32,
    shared: Arc<Shared<Out>>,
    runtime: tokio::runtime::Handle,
    stop: oneshot::Sender<()>,
    lanes: Vec<Arc<Lane>>,
}

/// The background runtime and its bounds.
pub struct Engine<Out: Outcome> {
    /// `None` once closed.
    efd: Option<OwnedFd>,
    /// (max_in_flight, queue_limit) of each budget.
    budgets: Vec<(usize, usize)>,
    running: Option<Running<Out>>,
    /// Jobs submitted and not yet drained (the host's own record: what a
    /// fork loses).
    outstanding: HashSet<u64>,
    /// Jobs lost to a fork, answered by the next drain.
    lost: Vec<u64>,
    pid: fn() -> u32,
    next_id: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn process_id() -> u32 {
    std::process::id()
}

impl<Out: Outcome> Engine<Out> {
    /// An engine whose own budget runs `max_in_flight` jobs at once and
    /// keeps at most `queue_limit` pending (both at least 1). The thread
    /// starts with the first job.
    pub fn new(max_in_flight: usize, queue_limit: usize) -> io::Result<Self> {
        Self::with_pid(max_in_flight, queue_limit, process_id)
    }

    /// [`Engine::new`] with the process id read from `pid` (tests).
    pub fn with_pid(max_in_flight: usize, queue_limit: usize, pid: fn() -> u32) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Engine {
            efd: Some(efd),
            budgets: vec![(max_in_flight.max(1), queue_limit.max(1))],
            running: None,
            outstanding: HashSet::new(),
            lost: Vec::new(),
            pid,
            next_id: 1,
        })
    }

    /// A budget of its own: `max_in_flight` jobs at once, `queue_limit`
    /// pending at most (both at least 1). Call before the first submit.
    pub fn add_budget(&mut self, max_in_flight: usize, queue_limit: usize) -> Budget {
        self.budgets.push((max_in_flight.max(1), queue_limit.max(1)));
        if let Some(r) = &mut self.running {
            r.lanes.push(Arc::new(Lane {
                in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
                pending: AtomicUsize::new(0),
                queue_limit: queue_limit.max(1),
            }));
        }
        Budget(self.budgets.len() - 1)
    }

    /// A fresh id for a job or a waiter (ids start at 1 and only grow).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Leave behind the thread of another process (see the module doc).
    fn check_fork(&mut self) {
        let pid = (self.pid)();
        if self.running.as_ref().is_some_and(|r| r.pid != pid) {
            // The thread that owns these is not in this process: never
            // drop or lock them (a lock may be held forever).
            std::mem::forget(self.running.take());
            self.lost.extend(self.outstanding.drain());
            if let Some(efd) = &self.efd {
                if !self.lost.is_empty() {
                    write_eventfd(efd.as_raw_fd());
                }
            }
        }
    }

    /// The running thread of this process, started if need be.
    fn running(&mut self) -> Result<&Running<Out>, SubmitError> {
        self.check_fork();
        let Some(efd) = &self.efd else { return Err(SubmitError::Closed) };
        if self.running.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SubmitError::Start(e.to_string()))?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            thread::Builder::new()
                .name("jitsi-security-net".into())
                .spawn(move || {
                    // Runs every job until told to stop (or the engine is
                    // dropped), then drops whatever is still running.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_background();
                })
                .map_err(|e| SubmitError::Start(e.to_string()))?;
            let lanes = self
                .budgets
                .iter()
                .map(|&(max, limit)| {
                    Arc::new(Lane { in_flight: Arc::new(Semaphore::new(max)), pending: AtomicUsize::new(0), queue_limit: limit })
                })
                .collect();
            let shared = Arc::new(Shared { done: Mutex::new(Completed { results: Vec::new(), open: true }), efd: efd.as_raw_fd() });
            self.running = Some(Running { pid: (self.pid)(), shared, runtime: handle, stop, lanes });
        }
        Ok(self.running.as_ref().expect("started above"))
    }

    /// Run `job` (id from [`Engine::next_id`]) in the engine's own budget
    /// until `deadline`. Never blocks.
    pub fn submit(&mut self, id: u64, deadline: Instant, job: BoxFuture<Out>) -> Result<(), SubmitError> {
        self.submit_to(Budget::DEFAULT, id, deadline, job)
    }

    /// Run `job` in `budget` until `deadline`. Never blocks.
    pub fn submit_to(&mut self, budget: Budget, id: u64, deadline: Instant, job: BoxFuture<Out>) -> Result<(), SubmitError> {
        let running = self.running()?;
        let lane = Arc::clone(running.lanes.get(budget.0).unwrap_or(&running.lanes[0]));
        if lane
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < lane.queue_limit).then_some(n + 1))
            .is_err()
        {
            return Err(SubmitError::QueueFull { limit: lane.queue_limit });
        }
        let shared = Arc::clone(&running.shared);
        let started = Instant::now();
        running.runtime.spawn(async move {
            let in_flight = Arc::clone(&lane.in_flight);
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
            shared.complete(&lane, id, out);
        });
        self.outstanding.insert(id);
        Ok(())
    }

    /// The eventfd to watch for readability (`None` once closed). It is
    /// the same for the engine's whole life, forks included.
    pub fn fd(&self) -> Option<RawFd> {
        self.efd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Resets the eventfd and returns every finished job (never blocks).
    pub fn drain(&mut self) -> Vec<(u64, Out)> {
        self.check_fork();
        let mut out: Vec<(u64, Out)> = self.lost.drain(..).map(|id| (id, Out::lost())).collect();
        match (&self.running, &self.efd) {
            (Some(r), Some(_)) => {
                let mut done = lock(&r.shared.done);
                read_eventfd(r.shared.efd);
                out.append(&mut done.results);
            }
            (None, Some(efd)) => read_eventfd(efd.as_raw_fd()),
            _ => {}
        }
        for (id, _) in &out {
            self.outstanding.remove(id);
        }
        out
    }

    /// Jobs submitted and not yet finished, in every budget.
    pub fn pending(&self) -> usize {
        self.running.as_ref().map_or(0, |r| r.lanes.iter().map(|l| l.pending.load(Ordering::Acquire)).sum())
    }

    pub fn queue_limit(&self) -> usize {
        self.budgets[0].1
    }

    pub fn max_in_flight(&self) -> usize {
        self.budgets[0].0
    }

    /// Stop without waiting: the thread drops every job and exits on its
    /// own; the eventfd is closed now. Later submits are refused.
    pub fn close(&mut self) {
        self.check_fork();
        if let Some(r) = self.running.take() {
            {
                let mut done = lock(&r.shared.done);
                done.open = false;
                done.results.clear();
            }
            let _ = r.stop.send(());
        }
        self.efd = None;
        self.outstanding.clear();
        self.lost.clear();
    }

    /// Whether [`Engine::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.efd.is_none()
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

impl Outcome for crate::matrix::verify::Verdict {
    fn timed_out(after: Duration) -> Self {
        crate::matrix::verify::Verdict::timed_out(after)
    }

    fn panicked(message: String) -> Self {
        crate::matrix::verify::Failure::Internal(format!("task panicked: {}", crate::text::escape_line(&message))).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Val(u64),
        Late,
        Panicked(String),
    }

    impl Outcome for Out {
        fn timed_out(_: Duration) -> Self {
            Out::Late
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

    fn collect(e: &mut Engine<Out>, n: usize, within: Duration) -> Vec<(u64, Out)> {
        let end = later(Instant::now(), within);
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
        later(Instant::now(), Duration::from_secs(30))
    }

    #[test]
    fn engine_result_arrives_and_fd_is_quiet_after_drain() {
        let mut e = Engine::<Out>::new(4, 16).unwrap();
        let id = e.next_id();
        e.submit(id, far(), sleeper(10, 7)).unwrap();
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)), vec![(id, Out::Val(7))]);
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
        let got = collect(&mut e, 200, Duration::from_secs(10));
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
        assert_eq!(collect(&mut e, 4, Duration::from_secs(5)).len(), 4);
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
        assert_eq!(collect(&mut e, 2, Duration::from_secs(5)).len(), 2);
        let id = e.next_id();
        assert!(e.submit(id, far(), sleeper(1, 0)).is_ok(), "slots come back");
    }

    #[test]
    fn engine_deadline_covers_the_wait_for_a_turn() {
        let mut e = Engine::<Out>::new(1, 8).unwrap();
        let start = Instant::now();
        let deadline = later(start, Duration::from_millis(300));
        let (a, b) = (e.next_id(), e.next_id());
        e.submit(a, deadline, sleeper(10_000, 1)).unwrap();
        // Queued behind `a`: it must not wait for `a`'s 10 s.
        e.submit(b, deadline, sleeper(10, 2)).unwrap();
        let got = collect(&mut e, 2, Duration::from_secs(5));
        assert_eq!(got, vec![(a, Out::Late), (b, Out::Late)]);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn engine_panicking_job_completes_with_panic_outcome() {
        let mut e = Engine::<Out>::new(1, 8).unwrap();
        let id = e.next_id();
        e.submit(id, far(), Box::pin(async { panic!("boom") })).unwrap();
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)), vec![(id, Out::Panicked("boom".into()))]);
        let id = e.next_id();
        e.submit(id, far(), sleeper(1, 3)).unwrap();
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)), vec![(id, Out::Val(3))], "still works");
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

    #[test]
    fn later_never_overflows() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        let far = later(now, Duration::from_secs(u64::MAX));
        assert!(far > now + Duration::from_secs(100 * 365 * 86_400), "as far as an Instant goes");
        assert!(later(now, Duration::MAX) >= far - Duration::from_secs(1));
    }

    #[test]
    fn engine_starts_its_thread_with_the_first_job() {
        let mut e = Engine::<Out>::new(1, 8).unwrap();
        assert!(e.running.is_none(), "no thread before a job");
        assert!(e.fd().is_some(), "the fd exists from the start");
        assert!(e.drain().is_empty());
        let id = e.next_id();
        e.submit(id, far(), sleeper(1, 5)).unwrap();
        assert!(e.running.is_some());
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)), vec![(id, Out::Val(5))]);
    }

    #[test]
    fn engine_budgets_do_not_starve_each_other() {
        let mut e = Engine::<Out>::new(1, 2).unwrap();
        let keys = e.add_budget(1, 1);
        let (a, b) = (e.next_id(), e.next_id());
        e.submit(a, far(), sleeper(10_000, 1)).unwrap();
        e.submit(b, far(), sleeper(10_000, 2)).unwrap();
        let c = e.next_id();
        assert_eq!(e.submit(c, far(), sleeper(1, 3)), Err(SubmitError::QueueFull { limit: 2 }), "own budget full");
        // The other budget neither waits for a turn behind them nor is full.
        let k = e.next_id();
        e.submit_to(keys, k, far(), sleeper(1, 4)).unwrap();
        let k2 = e.next_id();
        assert_eq!(e.submit_to(keys, k2, far(), sleeper(1, 5)), Err(SubmitError::QueueFull { limit: 1 }));
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)), vec![(k, Out::Val(4))]);
        assert_eq!(e.pending(), 2);
    }

    static FAKE_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);
    fn fake_pid() -> u32 {
        FAKE_PID.load(Ordering::SeqCst)
    }

    #[test]
    fn engine_notices_a_new_process_id_and_starts_again() {
        let mut e = Engine::<Out>::with_pid(4, 8, fake_pid).unwrap();
        let fd = e.fd();
        let a = e.next_id();
        e.submit(a, far(), sleeper(10_000, 1)).unwrap();
        let first = e.running.as_ref().unwrap().pid;
        // As after a fork: the thread that runs `a` is in another process.
        FAKE_PID.store(first + 1, Ordering::SeqCst);
        let b = e.next_id();
        e.submit(b, far(), sleeper(1, 2)).unwrap();
        assert_eq!(e.running.as_ref().unwrap().pid, first + 1, "a new thread for the new process");
        assert_eq!(e.fd(), fd, "the same fd: whoever watches it keeps watching");
        assert_eq!(collect(&mut e, 2, Duration::from_secs(5)), vec![(a, Out::Panicked("the background thread was lost when the process forked".into())), (b, Out::Val(2))]);
        // A fork with nothing in flight loses nothing and still works.
        FAKE_PID.store(first + 2, Ordering::SeqCst);
        assert!(e.drain().is_empty());
        let c = e.next_id();
        e.submit(c, far(), sleeper(1, 3)).unwrap();
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)), vec![(c, Out::Val(3))]);
    }

    #[test]
    fn engine_works_in_a_forked_child() {
        let mut e = Engine::<Out>::new(4, 8).unwrap();
        let id = e.next_id();
        e.submit(id, far(), sleeper(1, 1)).unwrap();
        assert_eq!(collect(&mut e, 1, Duration::from_secs(5)).len(), 1, "the parent's thread runs");
        let busy = e.next_id();
        e.submit(busy, far(), sleeper(60_000, 0)).unwrap();
        // SAFETY: the child only runs this engine (its own thread, malloc,
        // poll) and leaves with _exit, without unwinding or printing.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let id = e.next_id();
            let code = match e.submit(id, far(), sleeper(1, 9)) {
                Ok(()) => {
                    let got = collect(&mut e, 2, Duration::from_secs(10));
                    let want = vec![(busy, Out::Panicked("the background thread was lost when the process forked".into())), (id, Out::Val(9))];
                    if got == want { 0 } else { 1 }
                }
                Err(_) => 2,
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        let end = later(Instant::now(), Duration::from_secs(30));
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child without blocking.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if Instant::now() > end {
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the forked child hung: its engine never answered");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
    }
}
