//! A bounded pool of worker threads for blocking jobs (UVS checks), so that
//! Prosody's single-threaded event loop never blocks.
//!
//! The host submits a job and gets an id back at once ([`Pool::submit`]
//! never blocks: a full queue is refused, fail closed). A worker runs the job;
//! when it finishes it queues `(id, outcome)` and adds 1 to a Linux eventfd.
//! The host watches [`Pool::fd`] (e.g. `server.watchfd`) and, when it is
//! readable, calls [`Pool::drain`], which resets the eventfd and returns every
//! finished job. The fd is level-trigger safe: once `drain` has returned with
//! no job pending the fd is not readable.
//!
//! The pool is generic over the job function so it can be tested without
//! HTTP; [`UvsPool`] (built by [`Pool::new`]) is the production one.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use crate::uvs::{UvsClient, UvsFailure, UvsOutcome, UvsRequest};

/// The production pool: UVS requests in, verdicts out.
pub type UvsPool = Pool<UvsRequest, UvsOutcome>;

/// Why a job was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// `limit` jobs are already pending (queued or running).
    #[error("UVS worker queue is full ({limit} jobs pending)")]
    QueueFull { limit: usize },
}

/// What a job that panicked reports instead of its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPanicked(pub String);

impl From<JobPanicked> for UvsOutcome {
    fn from(p: JobPanicked) -> Self {
        UvsOutcome::Failure(UvsFailure::Internal(format!("worker panicked: {}", p.0)))
    }
}

type Executor<Req, Out> = dyn Fn(Req) -> Out + Send + Sync;

struct State<Req> {
    queue: VecDeque<(u64, Req)>,
    /// Submitted and not yet finished (queued + running).
    pending: usize,
    next_id: u64,
    shutdown: bool,
}

struct Shared<Req, Out> {
    state: Mutex<State<Req>>,
    work: Condvar,
    /// Finished jobs not yet drained. The eventfd is written while this lock
    /// is held, and read under it in `drain`, so the two never disagree.
    done: Mutex<Vec<(u64, Out)>>,
    efd: OwnedFd,
    exec: Box<Executor<Req, Out>>,
}

/// A fixed number of worker threads with a bounded number of pending jobs.
pub struct Pool<Req: Send + 'static = UvsRequest, Out: Send + 'static = UvsOutcome> {
    shared: Arc<Shared<Req, Out>>,
    threads: Vec<JoinHandle<()>>,
    queue_limit: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic never happens while these locks are held (jobs run outside
    // them), but do not turn a poisoned lock into a second panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool<UvsRequest, UvsOutcome> {
    /// `threads` workers running `client.verify`, at most `queue_limit` pending jobs.
    pub fn new(threads: usize, queue_limit: usize, client: Arc<UvsClient>) -> io::Result<UvsPool> {
        Pool::with_executor(threads, queue_limit, move |req: UvsRequest| client.verify(&req))
    }
}

impl<Req: Send + 'static, Out: Send + 'static> Pool<Req, Out> {
    /// A pool running `exec` for each job. A job whose `exec` panics
    /// completes with `Out::from(JobPanicked(message))`.
    pub fn with_executor<F>(threads: usize, queue_limit: usize, exec: F) -> io::Result<Self>
    where
        F: Fn(Req) -> Out + Send + Sync + 'static,
        Out: From<JobPanicked>,
    {
        if threads == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "worker pool needs at least one thread"));
        }
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { queue: VecDeque::new(), pending: 0, next_id: 1, shutdown: false }),
            work: Condvar::new(),
            done: Mutex::new(Vec::new()),
            efd,
            exec: Box::new(exec),
        });
        let mut pool = Pool { shared, threads: Vec::with_capacity(threads), queue_limit };
        for n in 0..threads {
            let shared = Arc::clone(&pool.shared);
            // On error `pool` is dropped, which stops the threads already started.
            let handle = thread::Builder::new()
                .name(format!("uvs-worker-{n}"))
                .spawn(move || worker_loop(&shared))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Queues a job and returns its id (ids start at 1 and only grow).
    /// Never blocks; refuses when `queue_limit` jobs are already pending.
    pub fn submit(&self, req: Req) -> Result<u64, SubmitError> {
        let mut st = lock(&self.shared.state);
        if st.pending >= self.queue_limit {
            return Err(SubmitError::QueueFull { limit: self.queue_limit });
        }
        let id = st.next_id;
        st.next_id += 1;
        st.pending += 1;
        st.queue.push_back((id, req));
        drop(st);
        self.shared.work.notify_one();
        Ok(id)
    }

    /// The eventfd to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.shared.efd.as_raw_fd()
    }

    /// Resets the eventfd and returns every finished job (never blocks).
    pub fn drain(&self) -> Vec<(u64, Out)> {
        let mut done = lock(&self.shared.done);
        read_eventfd(self.fd());
        std::mem::take(&mut *done)
    }

    /// Jobs submitted and not yet finished.
    pub fn pending(&self) -> usize {
        lock(&self.shared.state).pending
    }

    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl<Req: Send + 'static, Out: Send + 'static> Drop for Pool<Req, Out> {
    /// Stops the workers (jobs still queued are dropped, running ones finish)
    /// and joins them; the eventfd is closed with the last reference.
    fn drop(&mut self) {
        {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            st.queue.clear();
        }
        self.shared.work.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

fn worker_loop<Req, Out>(shared: &Shared<Req, Out>)
where
    Out: From<JobPanicked>,
{
    loop {
        let (id, req) = {
            let mut st = lock(&shared.state);
            loop {
                if st.shutdown {
                    return;
                }
                if let Some(job) = st.queue.pop_front() {
                    break job;
                }
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let out = match catch_unwind(AssertUnwindSafe(|| (shared.exec)(req))) {
            Ok(out) => out,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Out::from(JobPanicked(msg))
            }
        };
        // Free the slot first, so a host that sees the result can submit again.
        lock(&shared.state).pending -= 1;
        let mut done = lock(&shared.done);
        done.push((id, out));
        write_eventfd(shared.efd.as_raw_fd());
    }
}

fn write_eventfd(fd: RawFd) {
    let one: u64 = 1;
    loop {
        // SAFETY: writes 8 bytes from a live u64 to an fd we own.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uvs::UvsConfig;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Val(u64),
        Panicked(String),
    }

    impl From<JobPanicked> for Out {
        fn from(p: JobPanicked) -> Self {
            Out::Panicked(p.0)
        }
    }

    /// A gate jobs wait on (at most 20 s, so a broken test cannot hang).
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl Gate {
        fn wait(&self) {
            let st = lock(&self.open);
            let _ = self.cv.wait_timeout_while(st, Duration::from_secs(20), |open| !*open);
        }
        fn open(&self) {
            *lock(&self.open) = true;
            self.cv.notify_all();
        }
    }

    fn readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    /// Polls and drains until `n` results arrived (at most 30 s).
    fn collect<O: Send + 'static>(pool: &Pool<u64, O>, n: usize) -> Vec<(u64, O)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < n {
            assert!(Instant::now() < deadline, "only {} of {n} results arrived", got.len());
            if readable(pool.fd(), 1000) {
                got.extend(pool.drain());
            }
        }
        got
    }

    fn doubling_pool(threads: usize, limit: usize) -> Pool<u64, Out> {
        Pool::with_executor(threads, limit, |x: u64| Out::Val(x * 2)).unwrap()
    }

    #[test]
    fn pool_result_arrives_and_fd_becomes_readable() {
        let pool = doubling_pool(2, 8);
        assert!(!readable(pool.fd(), 0), "fresh pool fd must not be readable");
        let id = pool.submit(21).unwrap();
        assert!(readable(pool.fd(), 20_000), "fd never became readable");
        let got = collect(&pool, 1);
        assert_eq!(got, vec![(id, Out::Val(42))]);
    }

    #[test]
    fn pool_fd_not_readable_after_drain() {
        let pool = doubling_pool(2, 8);
        let ids: Vec<u64> = (0..3).map(|i| pool.submit(i).unwrap()).collect();
        let got = collect(&pool, ids.len());
        assert_eq!(got.len(), 3);
        // Everything finished: one more drain (for results pushed between
        // polls) leaves the fd idle, and draining an idle fd is harmless.
        assert!(pool.drain().is_empty());
        assert!(!readable(pool.fd(), 0), "fd readable with nothing pending");
        assert!(pool.drain().is_empty());
        assert!(!readable(pool.fd(), 0));
        assert_eq!(pool.pending(), 0);
    }

    #[test]
    fn pool_drain_with_nothing_done_is_empty() {
        let pool = doubling_pool(1, 1);
        assert!(pool.drain().is_empty());
        assert!(!readable(pool.fd(), 0));
    }

    #[test]
    fn pool_queue_limit_refuses_without_blocking() {
        let gate = Arc::new(Gate::default());
        let g = Arc::clone(&gate);
        let pool: Pool<u64, Out> = Pool::with_executor(2, 3, move |x: u64| {
            g.wait();
            Out::Val(x)
        })
        .unwrap();
        // 3 pending (2 running + 1 queued, or any split): the 4th is refused.
        let ids: Vec<u64> = (0..3).map(|i| pool.submit(i).unwrap()).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        let start = Instant::now();
        assert_eq!(pool.submit(99), Err(SubmitError::QueueFull { limit: 3 }));
        assert_eq!(pool.submit(99), Err(SubmitError::QueueFull { limit: 3 }));
        assert!(start.elapsed() < Duration::from_secs(1), "submit blocked");
        assert_eq!(pool.pending(), 3);
        gate.open();
        let mut got = collect(&pool, 3);
        got.sort_by_key(|(id, _)| *id);
        assert_eq!(got, vec![(1, Out::Val(0)), (2, Out::Val(1)), (3, Out::Val(2))]);
        // Slots are free again once results are visible.
        assert_eq!(pool.pending(), 0);
        assert_eq!(pool.submit(7), Ok(4));
        assert_eq!(collect(&pool, 1), vec![(4, Out::Val(7))]);
    }

    #[test]
    fn pool_zero_queue_limit_refuses_everything() {
        let pool = doubling_pool(1, 0);
        assert_eq!(pool.submit(1), Err(SubmitError::QueueFull { limit: 0 }));
    }

    #[test]
    fn pool_zero_threads_is_an_error() {
        let err = Pool::<u64, Out>::with_executor(0, 4, |x: u64| Out::Val(x)).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn pool_many_jobs_complete_with_correct_ids() {
        const JOBS: u64 = 500;
        let pool = doubling_pool(4, JOBS as usize);
        let mut want = HashMap::new();
        for x in 0..JOBS {
            let input = x * 7 + 3;
            let id = pool.submit(input).unwrap();
            want.insert(id, input * 2);
        }
        assert_eq!(want.len(), JOBS as usize, "ids must be unique");
        let got = collect(&pool, JOBS as usize);
        assert_eq!(got.len(), JOBS as usize);
        for (id, out) in got {
            let expected = want.remove(&id).expect("unknown or duplicate id");
            assert_eq!(out, Out::Val(expected), "job {id}");
        }
        assert!(want.is_empty());
    }

    #[test]
    fn pool_panicking_job_completes_with_panic_outcome() {
        let pool: Pool<u64, Out> = Pool::with_executor(1, 4, |x: u64| {
            if x == 13 {
                panic!("unlucky");
            }
            Out::Val(x)
        })
        .unwrap();
        let bad = pool.submit(13).unwrap();
        let good = pool.submit(1).unwrap();
        let mut got = collect(&pool, 2);
        got.sort_by_key(|(id, _)| *id);
        assert_eq!(got, vec![(bad, Out::Panicked("unlucky".into())), (good, Out::Val(1))]);
        assert_eq!(pool.pending(), 0);
    }

    #[test]
    fn pool_drop_joins_threads_and_finishes_running_job() {
        let marker = Arc::new(());
        let finished = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(Gate::default());
        let (m, f, s) = (Arc::clone(&marker), Arc::clone(&finished), Arc::clone(&started));
        let pool: Pool<u64, Out> = Pool::with_executor(3, 16, move |x: u64| {
            let _keep = &m;
            s.open();
            thread::sleep(Duration::from_millis(100));
            f.fetch_add(1, Ordering::SeqCst);
            Out::Val(x)
        })
        .unwrap();
        assert_eq!(pool.threads(), 3);
        pool.submit(1).unwrap();
        started.wait();
        drop(pool);
        // The running job finished before drop returned, and every worker
        // released the executor (the only other owner of `marker`).
        assert!(finished.load(Ordering::SeqCst) >= 1);
        assert_eq!(Arc::strong_count(&marker), 1, "a worker thread outlived the pool");
    }

    #[test]
    fn pool_drop_with_queued_jobs_does_not_run_them_all() {
        let gate = Arc::new(Gate::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let (g, r) = (Arc::clone(&gate), Arc::clone(&ran));
        let pool: Pool<u64, Out> = Pool::with_executor(1, 50, move |x: u64| {
            g.wait();
            r.fetch_add(1, Ordering::SeqCst);
            Out::Val(x)
        })
        .unwrap();
        for i in 0..50 {
            pool.submit(i).unwrap();
        }
        let opener = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                gate.open();
            })
        };
        drop(pool);
        opener.join().unwrap();
        // Queued jobs were discarded at drop; only the running one finished.
        assert!(ran.load(Ordering::SeqCst) <= 1, "ran {}", ran.load(Ordering::SeqCst));
    }

    #[test]
    fn uvs_pool_fails_closed_on_unreachable_uvs() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cfg = UvsConfig::new(format!("http://127.0.0.1:{port}"));
        cfg.timeout = Duration::from_secs(5);
        let pool = Pool::new(2, 4, Arc::new(UvsClient::new(cfg))).unwrap();
        let req = UvsRequest { token: "t".into(), room_id: "!r:x".into(), server_name: None };
        let id = pool.submit(req).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.is_empty() {
            assert!(Instant::now() < deadline);
            if readable(pool.fd(), 1000) {
                got = pool.drain();
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, id);
        assert_eq!(got[0].1.code(), "invalid_response");
        assert!(!got[0].1.is_verified());
    }

    #[test]
    fn job_panic_maps_to_internal_uvs_failure() {
        let out: UvsOutcome = JobPanicked("boom".into()).into();
        assert_eq!(out.code(), "invalid_response");
        assert_eq!(out.detail(), "UVS check failed internally: worker panicked: boom");
    }
}
