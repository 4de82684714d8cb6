//! Busy-polling for the next request right after a reply.
//!
//! A connection's thread that blocks in `epoll_wait` as soon as it has answered lets its
//! CPU go idle; on a virtual machine an idle vCPU halts, and waking the thread again
//! for the client's next request costs a wake-up of a halted vCPU (tens of
//! microseconds here, see `docs/PERFORMANCE.md`). A thread that keeps polling its socket
//! for a short, bounded time after a reply finds a quick client's next request without
//! sleeping. The budget is per reply (an idle connection spins once, then sleeps), and
//! only a few threads spin at a time, so spinning never takes more than that many CPUs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Environment variable that sets the default spin budget, in microseconds.
pub(crate) const SPIN_ENV: &str = "PGLITE_SERVER_SPIN_US";

/// The spin budget when neither the builder nor the environment sets one.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The spin budget and the slots that bound how many threads spin at once.
#[derive(Debug)]
pub(crate) struct Spinning {
    budget: Duration,
    limit: usize,
    busy: AtomicUsize,
}

impl Spinning {
    /// Spin for up to `budget` after a reply (zero: never), at most `limit` threads at
    /// once.
    pub fn new(budget: Duration, limit: usize) -> Spinning {
        Spinning {
            budget,
            limit,
            busy: AtomicUsize::new(0),
        }
    }

    /// At most one thread fewer than the machine has CPUs (at least one), so that a
    /// spinning connection leaves a CPU to the one that runs the engine.
    pub fn default_limit() -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    }

    /// A slot to spin in until the budget is used up, or `None` when spinning is off or
    /// every slot is taken (then the caller sleeps at once).
    pub fn start(&self) -> Option<SpinSlot<'_>> {
        if self.budget.is_zero() {
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
        if *YIELD {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        false
    }
}

impl Drop for SpinSlot<'_> {
    fn drop(&mut self) {
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
        while !slot.expired() {}
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

static YIELD: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| std::env::var_os("PGLITE_SPIN_YIELD").is_some());
