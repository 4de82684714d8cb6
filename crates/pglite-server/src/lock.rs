//! The FIFO lock around the one backend session.
//!
//! Whoever holds an [`EngineGuard`] owns the engine and runs it on its own thread.
//! Taking a free engine nobody queues for is a mutex lock, no system call. Otherwise
//! the connection queues; releasing hands the session to the first in the queue
//! directly and wakes that connection's thread (one wake-up per hand-over). A
//! connection that queues also wakes the holder, so an idle holder can apply the
//! holder timeout. A queued connection may first spin for a moment (see `spin.rs`)
//! watching for the hand-over, so that a short turn of the holder does not cost it a
//! wake-up from sleep.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Waker;

use crate::core::EngineState;
use crate::spin::Spinning;

/// The session and its queue.
pub(crate) struct EngineLock {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The session while nobody holds it.
    free: Option<EngineState>,
    /// Wakes the holder's thread.
    holder: Option<Arc<Waker>>,
    /// Connections waiting, in arrival order.
    queue: VecDeque<Arc<Ticket>>,
}

/// A place in the queue.
struct Ticket {
    waker: Arc<Waker>,
    /// The session, once it was handed over.
    granted: Mutex<Option<EngineState>>,
    /// Set once `granted` holds the session (what a spinning waiter watches).
    handed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EngineLock {
    /// A lock around `state`, free.
    pub fn new(state: EngineState) -> EngineLock {
        EngineLock {
            inner: Mutex::new(Inner {
                free: Some(state),
                holder: None,
                queue: VecDeque::new(),
            }),
        }
    }

    /// Whether a connection is waiting for the session.
    pub fn has_waiters(&self) -> bool {
        !lock(&self.inner).queue.is_empty()
    }

    /// Take the session in arrival order. While queued, `wait` is called again and
    /// again (after every wake-up of `waker`); it blocks until something happens and
    /// returns `Err` to give up (queue timeout, cancel, shutdown). A session handed
    /// over at the moment of giving up is taken rather than refused. A caller that has
    /// to queue first watches for the hand-over without sleeping, if `spinning` (taken
    /// only then) gives it a slot, until the slot's budget is used up.
    pub fn acquire<E>(
        self: &Arc<Self>,
        waker: &Arc<Waker>,
        spinning: Option<&Spinning>,
        mut wait: impl FnMut() -> Result<(), E>,
    ) -> Result<EngineGuard, E> {
        let ticket = {
            let mut inner = lock(&self.inner);
            if inner.queue.is_empty()
                && let Some(state) = inner.free.take()
            {
                inner.holder = Some(waker.clone());
                return Ok(self.guard(state));
            }
            let ticket = Arc::new(Ticket {
                waker: waker.clone(),
                granted: Mutex::new(None),
                handed: AtomicBool::new(false),
            });
            inner.queue.push_back(ticket.clone());
            if let Some(holder) = &inner.holder {
                let _ = holder.wake();
            }
            ticket
        };
        if let Some(slot) = spinning.and_then(Spinning::start) {
            // `expired` pauses the CPU between the checks.
            while !ticket.handed.load(Ordering::Acquire) {
                if slot.expired() {
                    break;
                }
            }
        }
        loop {
            if let Some(state) = lock(&ticket.granted).take() {
                return Ok(self.guard(state));
            }
            if let Err(reason) = wait() {
                let mut inner = lock(&self.inner);
                if let Some(i) = inner.queue.iter().position(|t| Arc::ptr_eq(t, &ticket)) {
                    inner.queue.remove(i);
                    return Err(reason);
                }
                drop(inner);
                // Handed over meanwhile: it is ours.
                let state = lock(&ticket.granted).take().expect("a granted ticket");
                return Ok(self.guard(state));
            }
        }
    }

    fn guard(self: &Arc<Self>, state: EngineState) -> EngineGuard {
        EngineGuard {
            state: Some(state),
            lock: self.clone(),
        }
    }

    /// Give the session to the first in the queue, or leave it free.
    fn release(&self, state: EngineState) {
        let mut inner = lock(&self.inner);
        match inner.queue.pop_front() {
            Some(next) => {
                *lock(&next.granted) = Some(state);
                next.handed.store(true, Ordering::Release);
                let _ = next.waker.wake();
                inner.holder = Some(next.waker.clone());
            }
            None => {
                inner.free = Some(state);
                inner.holder = None;
            }
        }
    }
}

/// Ownership of the session; dropping it (also while unwinding) hands it on.
pub(crate) struct EngineGuard {
    state: Option<EngineState>,
    lock: Arc<EngineLock>,
}

impl Deref for EngineGuard {
    type Target = EngineState;
    fn deref(&self) -> &EngineState {
        self.state.as_ref().expect("held until dropped")
    }
}

impl DerefMut for EngineGuard {
    fn deref_mut(&mut self) -> &mut EngineState {
        self.state.as_mut().expect("held until dropped")
    }
}

impl Drop for EngineGuard {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.lock.release(state);
        }
    }
}
