//! Busy-polling for the next request right after a reply.
//!
//! A connection's thread that blocks in `epoll_wait` as soon as it has answered lets its
//! CPU go idle; on a virtual machine an idle vCPU halts, and waking the thread again
//! for the client's next request costs a wake-up of a halted vCPU (tens of
//! microseconds here, see `docs/PERFORMANCE.md`). A thread that keeps polling its socket
//! for a short, bounded time after a reply finds a quick client's next request without
//! sleeping. The budget is per reply (an idle connection spins once, then sleeps), and
//! only a few threads spin at a time, so spinning never takes more than that many CPUs.
//!
//! Spinning only pays while the spinning thread has a CPU to itself. When a spin ends
//! far later than its budget, the thread was preempted: other work wants the CPUs, and
//! every thread stops spinning for a while ([`BACKOFF`]) rather than compete with it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Environment variable that sets the default spin budget, in microseconds.
pub(crate) const SPIN_ENV: &str = "PGLITE_SERVER_SPIN_US";

/// The spin budget when neither the builder nor the environment sets one.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// A spin that ends this much later than its budget was preempted.
const PREEMPTED: Duration = Duration::from_micros(500);

/// How long nobody spins after a spin was preempted.
pub(crate) const BACKOFF: Duration = Duration::from_millis(100);

/// The spin budget and the slots that bound how many threads spin at once.
#[derive(Debug)]
pub(crate) struct Spinning {
    budget: Duration,
    limit: usize,
    busy: AtomicUsize,
    /// When this was created; `paused_until` counts from here.
    epoch: Instant,
    /// Microseconds after `epoch` before which nobody spins (after a preempted spin).
    paused_until: AtomicU64,
}

impl Spinning {
    /// Spin for up to `budget` after a reply (zero: never), at most `limit` threads at
    /// once.
    pub fn new(budget: Duration, limit: usize) -> Spinning {
        Spinning {
            budget,
            limit,
            busy: AtomicUsize::new(0),
            epoch: Instant::now(),
            paused_until: AtomicU64::new(0),
        }
    }

    /// At most one thread fewer than the machine has CPUs (at least one), so that a
    /// spinning connection leaves a CPU to the one that runs the engine.
    pub fn default_limit() -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    }

    fn micros_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether spinning is paused because a recent spin was preempted.
    pub fn paused(&self) -> bool {
        self.micros_since_epoch(Instant::now()) < self.paused_until.load(Ordering::Relaxed)
    }

    /// A slot to spin in until the budget is used up, or `None` when spinning is off,
    /// paused, or every slot is taken (then the caller sleeps at once).
    pub fn start(&self) -> Option<SpinSlot<'_>> {
        if self.budget.is_zero() || self.paused() {
            return None;
        }
        let mut busy = self.busy.load(Ordering::Relaxed);
        loop {
            if busy >= self.limit {
                return None;
            }
            match self.busy.compare_exchange_weak(
                busy,
                busy + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => busy = now,
            }
        }
        Some(SpinSlot {
            owner: self,
            until: Instant::now() + self.budget,
        })
    }
}

/// One thread's turn at spinning; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct SpinSlot<'a> {
    owner: &'a Spinning,
    until: Instant,
}

impl SpinSlot<'_> {
    /// Whether the budget is used up; pauses the CPU briefly when it is not.
    pub fn expired(&self) -> bool {
        if Instant::now() >= self.until {
            return true;
        }
        std::hint::spin_loop();
        false
    }
}

impl Drop for SpinSlot<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        if now > self.until + PREEMPTED {
            let until = self.owner.micros_since_epoch(now + BACKOFF);
            self.owner.paused_until.fetch_max(until, Ordering::Relaxed);
        }
        self.owner.busy.fetch_sub(1, Ordering::Release);
    }
}

/// The budget `PGLITE_SERVER_SPIN_US` asks for: `Ok(None)` when it is not set.
pub(crate) fn budget_from_env() -> Result<Option<Duration>, String> {
    match std::env::var(SPIN_ENV) {
        Ok(text) => parse_micros(&text)
            .map(Some)
            .ok_or_else(|| format!("{SPIN_ENV}={text:?}: expected a whole number of microseconds (0 turns spinning off)")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{SPIN_ENV}: expected a whole number of microseconds"))
        }
    }
}

fn parse_micros(text: &str) -> Option<Duration> {
    let micros: u64 = text.trim().parse().ok()?;
    // More than a second of spinning per reply is a mistake, not a setting.
    (micros <= 1_000_000).then(|| Duration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_budget_never_spins() {
        let spinning = Spinning::new(Duration::ZERO, 4);
        assert!(spinning.start().is_none());
    }

    #[test]
    fn slots_bound_the_spinning_threads() {
        let spinning = Spinning::new(Duration::from_secs(60), 2);
        let a = spinning.start().expect("first slot");
        let b = spinning.start().expect("second slot");
        assert!(spinning.start().is_none(), "a third thread must not spin");
        assert!(!a.expired(), "a minute's budget is not used up at once");
        drop(b);
        let c = spinning.start().expect("a freed slot is reused");
        drop((a, c));
        assert_eq!(spinning.busy.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_used_up_budget_expires() {
        let spinning = Spinning::new(Duration::from_nanos(1), 1);
        let slot = spinning.start().expect("a slot");
        // Ends once the budget is used up (the test would hang otherwise).
        loop {
            if slot.expired() {
                break;
            }
        }
    }

    #[test]
    fn a_preempted_spin_pauses_spinning() {
        let spinning = Spinning::new(Duration::from_nanos(1), 2);
        let slot = spinning.start().expect("a slot");
        // Held well past its budget, as a preempted spin is.
        std::thread::sleep(PREEMPTED * 4);
        let dropped_at = spinning.micros_since_epoch(Instant::now());
        drop(slot);
        let until = spinning.paused_until.load(Ordering::Relaxed);
        assert!(
            until >= dropped_at + BACKOFF.as_micros() as u64,
            "{until} {dropped_at}"
        );
    }

    #[test]
    fn parses_the_environment_value() {
        assert_eq!(parse_micros("0"), Some(Duration::ZERO));
        assert_eq!(parse_micros(" 75 "), Some(Duration::from_micros(75)));
        assert_eq!(parse_micros("1000000"), Some(Duration::from_secs(1)));
        assert_eq!(parse_micros("1000001"), None);
        assert_eq!(parse_micros("-5"), None);
        assert_eq!(parse_micros("50us"), None);
        assert_eq!(parse_micros(""), None);
    }
}
