//! Every deadline the supervisor waits on, as armed instants: the machine's
//! waits (`Op::Wait`, each with its token), the debounce (with its maximum
//! wait), the polling tick, the readiness interval and the group check. Pure: the caller passes `now`, so each
//! rule is unit-tested without processes or clocks. All arithmetic is
//! checked: no flag value, file timestamp or clock can overflow a deadline
//! (one too far to represent saturates a century ahead).

use std::time::{Duration, Instant};

/// What came due, in the order the supervisor handles them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The machine's wait with this token.
    Elapsed(u64),
    /// A polling tick: look at the files (cheaply).
    Poll,
    /// The debounce ran out: take the decisive look.
    Settle,
    /// Time for a readiness probe.
    Ready,
    /// Time to look whether an exited child's group is empty.
    GroupCheck,
}

#[derive(Debug, Default)]
pub struct Timers {
    debounce: Duration,
    debounce_max: Duration,
    /// The machine's waits, by token.
    waits: Vec<(Instant, u64)>,
    settle: Option<Instant>,
    /// When the current burst of changes began.
    burst_since: Option<Instant>,
    poll: Option<Instant>,
    /// The polling interval; None: no polling.
    every: Option<Duration>,
    /// Checking an exited child's group, this often.
    group_check: Option<Instant>,
    /// The next readiness probe, and their interval while a child runs.
    ready: Option<Instant>,
    ready_every: Option<Duration>,
    /// `--splay`: each burst settles a random part of this later.
    splay: Duration,
    /// This burst's random part of `splay`.
    burst_splay: Duration,
    /// `--min-interval`, and when a change was last acted on.
    min_interval: Duration,
    acted: Option<Instant>,
    /// xorshift state for the splay (no crate needed for spreading).
    rng: u64,
}

/// `at + d`, saturating a century ahead instead of overflowing.
pub fn after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
}

impl Timers {
    pub fn new(debounce: Duration, debounce_max: Duration) -> Timers {
        Timers {
            debounce,
            debounce_max,
            ..Timers::default()
        }
    }

    /// Arms the machine's wait `token`, `d` from `now`.
    pub fn wait(&mut self, now: Instant, d: Duration, token: u64) {
        self.waits.push((after(now, d), token));
    }

    /// Disarms the wait `token`; false if none was armed.
    pub fn cancel(&mut self, token: u64) -> bool {
        let before = self.waits.len();
        self.waits.retain(|(_, t)| *t != token);
        self.waits.len() != before
    }

    /// `--splay` and `--min-interval`; `seed` makes the splay differ from
    /// one manager to the next (replicas start at the same moment).
    pub fn rate(mut self, splay: Duration, min_interval: Duration, seed: u64) -> Timers {
        self.splay = splay;
        self.min_interval = min_interval;
        self.rng = seed | 1;
        self
    }

    /// A settled change was acted on at `now` (`--min-interval` counts from it).
    pub fn acted(&mut self, now: Instant) {
        self.acted = Some(now);
    }

    /// Probes readiness every `every` from `now` on (None: not now). Unchanged
    /// if the interval is the same: a probe is not pushed back.
    pub fn ready_every(&mut self, now: Instant, every: Option<Duration>) {
        if every != self.ready_every || (every.is_some() && self.ready.is_none()) {
            self.ready_every = every;
            self.ready = every.map(|e| after(now, e));
        }
    }

    /// A random duration in [0, splay).
    fn random_splay(&mut self) -> Duration {
        if self.splay.is_zero() {
            return Duration::ZERO;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let nanos = u64::try_from(self.splay.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng % nanos)
    }

    /// Polls every `every` from `now` on (None: no polling). Unchanged if
    /// the interval is the same: a tick is not pushed back.
    pub fn poll_every(&mut self, now: Instant, every: Option<Duration>) {
        if every != self.every || self.poll.is_none() {
            self.every = every;
            self.poll = every.map(|e| after(now, e));
        }
    }

    /// Arms (from now) or clears the next look at an exited child's group.
    pub fn check_group_in(&mut self, now: Instant, d: Option<Duration>) {
        self.group_check = d.map(|d| after(now, d));
    }

    /// A change was seen at `now`: settle after `debounce` of quiet, but no
    /// later than `debounce_max` after the first change of the burst (a
    /// steady writer must not postpone a change forever).
    /// Then `--min-interval` after the last action at the earliest, and a
    /// random part of `--splay` later (chosen once per burst).
    pub fn changed(&mut self, now: Instant) {
        if self.burst_since.is_none() {
            self.burst_splay = self.random_splay();
        }
        let since = *self.burst_since.get_or_insert(now);
        let quiet = after(now, self.debounce);
        // Not moved by later events (a deadline already past fires at
        // once): with --splay, each event of a busy directory would
        // otherwise push the settle a whole splay further, without end.
        let cap = after(since, self.debounce_max);
        let mut at = quiet.min(cap);
        if let Some(acted) = self.acted {
            at = at.max(after(acted, self.min_interval));
        }
        self.settle = Some(after(at, self.burst_splay));
    }

    /// Look at once (a catch-up check when the watcher starts).
    pub fn settle_now(&mut self, now: Instant) {
        self.settle = Some(now);
    }

    /// Is a settle pending (a change seen, the decisive look not yet taken)?
    pub fn settling(&self) -> bool {
        self.settle.is_some()
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        let wait = self.waits.iter().map(|(at, _)| *at).min();
        [wait, self.settle, self.poll, self.group_check, self.ready]
            .into_iter()
            .flatten()
            .min()
    }

    /// Disarms and returns what is due at `now`; the polling tick re-arms.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let take = |at: &mut Option<Instant>| at.take_if(|t| *t <= now).is_some();
        let mut due = vec![];
        // In the order they were armed.
        self.waits.retain(|&(at, token)| {
            if at <= now {
                due.push(Due::Elapsed(token));
            }
            at > now
        });
        if take(&mut self.poll) {
            self.poll = self.every.map(|e| after(now, e));
            due.push(Due::Poll);
        }
        if take(&mut self.settle) {
            self.burst_since = None;
            due.push(Due::Settle);
        }
        if take(&mut self.ready) {
            self.ready = self.ready_every.map(|e| after(now, e));
            due.push(Due::Ready);
        }
        if take(&mut self.group_check) {
            due.push(Due::GroupCheck);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const ZERO: Duration = Duration::ZERO;

    #[test]
    fn a_burst_settles_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 5000 * MS);
        t.changed(t0);
        t.changed(t0 + 100 * MS);
        assert_eq!(t.next(), Some(t0 + 600 * MS));
        assert_eq!(t.due(t0 + 599 * MS), []);
        assert_eq!(t.due(t0 + 600 * MS), [Due::Settle]);
        assert!(!t.settling());
        assert_eq!(t.next(), None);
    }

    #[test]
    fn a_steady_writer_cannot_postpone_past_the_maximum() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 2000 * MS);
        // A change every 200 ms, forever.
        let mut now = t0;
        let mut settled_at = None;
        while settled_at.is_none() && now < t0 + 10_000 * MS {
            t.changed(now);
            now += 200 * MS;
            if t.due(now).contains(&Due::Settle) {
                settled_at = Some(now);
            }
        }
        assert_eq!(settled_at, Some(t0 + 2000 * MS));
        // The next burst has its own maximum.
        t.changed(now);
        assert_eq!(t.next(), Some(now + 500 * MS));
    }

    #[test]
    fn polling_rearms_itself_and_is_not_pushed_back() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 5000 * MS);
        t.poll_every(t0, Some(5000 * MS));
        t.poll_every(t0 + 3000 * MS, Some(5000 * MS));
        assert_eq!(t.next(), Some(t0 + 5000 * MS));
        assert_eq!(t.due(t0 + 5000 * MS), [Due::Poll]);
        assert_eq!(t.next(), Some(t0 + 10_000 * MS));
        t.poll_every(t0 + 5000 * MS, None);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn waits_and_the_group_probe() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 5000 * MS);
        t.wait(t0, 10_000 * MS, 1);
        t.wait(t0, 1000 * MS, 2);
        t.check_group_in(t0, Some(20 * MS));
        assert_eq!(t.next(), Some(t0 + 20 * MS));
        assert_eq!(t.due(t0 + 20 * MS), [Due::GroupCheck]);
        t.check_group_in(t0, Some(20 * MS));
        t.check_group_in(t0, None);
        assert_eq!(t.due(t0 + 1000 * MS), [Due::Elapsed(2)]);
        assert_eq!(t.due(t0 + 10_000 * MS), [Due::Elapsed(1)]);
        t.wait(t0, MS, 3);
        assert!(t.cancel(3));
        assert!(!t.cancel(3), "cancelled once");
        assert_eq!(t.next(), None);
    }

    #[test]
    fn splay_spreads_within_its_window_and_min_interval_folds() {
        let t0 = Instant::now();
        let mut seen = vec![];
        for seed in 1..=50u64 {
            let mut t = Timers::new(ZERO, 5000 * MS).rate(1000 * MS, ZERO, seed * 7919);
            t.changed(t0);
            let at = t.next().unwrap() - t0;
            assert!(at < 1000 * MS, "{at:?}");
            seen.push(at.as_millis() / 100);
        }
        seen.sort();
        seen.dedup();
        assert!(seen.len() >= 5, "not spread: {seen:?}");

        let mut t = Timers::new(100 * MS, 5000 * MS).rate(ZERO, 10_000 * MS, 1);
        t.acted(t0);
        t.changed(t0 + 1000 * MS);
        assert_eq!(t.next(), Some(t0 + 10_000 * MS), "one action per interval");
    }

    #[test]
    fn a_steady_writer_cannot_postpone_past_the_maximum_plus_the_splay() {
        let t0 = Instant::now();
        let splay = 2000 * MS;
        let mut t = Timers::new(100 * MS, 1000 * MS).rate(splay, ZERO, 3);
        // A change every 700 ms (a heartbeat key), forever.
        let mut now = t0;
        let mut settled_at = None;
        while settled_at.is_none() && now < t0 + 30_000 * MS {
            t.changed(now);
            now += 700 * MS;
            if t.due(now).contains(&Due::Settle) {
                settled_at = Some(now);
            }
        }
        let settled_at = settled_at.expect("never settled");
        assert!(
            settled_at <= t0 + 1000 * MS + splay + 700 * MS,
            "{:?}",
            settled_at - t0
        );
    }

    #[test]
    fn waits_due_together_come_in_the_order_armed() {
        let t0 = Instant::now();
        let mut t = Timers::new(ZERO, ZERO);
        t.wait(t0, 2000 * MS, 8);
        t.wait(t0, 1000 * MS, 7);
        assert_eq!(t.next(), Some(t0 + 1000 * MS));
        assert_eq!(t.due(t0 + 5000 * MS), [Due::Elapsed(8), Due::Elapsed(7)]);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn no_duration_overflows_a_deadline() {
        let t0 = Instant::now();
        let huge = Duration::MAX;
        let mut t = Timers::new(huge, huge);
        t.changed(t0);
        t.wait(t0, huge, 1);
        t.poll_every(t0, Some(huge));
        let next = t.next().expect("armed");
        assert!(next > t0 + Duration::from_secs(50 * 365 * 86_400));
        assert_eq!(t.due(t0), []);
    }
}
