//! Every deadline the supervisor waits on, as armed instants: the stop
//! deadline, the restart backoff, the debounce (with its maximum wait), the
//! polling tick and the group probe. Pure: the caller passes `now`, so each
//! rule is unit-tested without processes or clocks. All arithmetic is
//! checked: no flag value, file timestamp or clock can overflow a deadline
//! (one too far to represent saturates a century ahead).

use std::time::{Duration, Instant};

/// What came due, in the order the supervisor handles them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Stop,
    Backoff,
    /// A polling tick: look at the files (cheaply).
    Poll,
    /// The debounce ran out: take the decisive look.
    Settle,
}

#[derive(Debug, Default)]
pub struct Timers {
    debounce: Duration,
    debounce_max: Duration,
    stop: Option<Instant>,
    backoff: Option<Instant>,
    settle: Option<Instant>,
    /// When the current burst of changes began.
    burst_since: Option<Instant>,
    poll: Option<Instant>,
    /// The polling interval; None: no polling.
    every: Option<Duration>,
    /// Probing an exited child's group, this often.
    probe: Option<Duration>,
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

    /// Arms (or clears) the stop deadline `d` from `now`.
    pub fn stop_in(&mut self, now: Instant, d: Option<Duration>) {
        self.stop = d.map(|d| after(now, d));
    }

    pub fn backoff_in(&mut self, now: Instant, d: Duration) {
        self.backoff = Some(after(now, d));
    }

    pub fn cancel_backoff(&mut self) {
        self.backoff = None;
    }

    /// Polls every `every` from `now` on (None: no polling). Unchanged if
    /// the interval is the same: a tick is not pushed back.
    pub fn poll_every(&mut self, now: Instant, every: Option<Duration>) {
        if every != self.every || self.poll.is_none() {
            self.every = every;
            self.poll = every.map(|e| after(now, e));
        }
    }

    /// While `Some`, wake this often to probe an exited child's group.
    pub fn probe_every(&mut self, every: Option<Duration>) {
        self.probe = every;
    }

    /// A change was seen at `now`: settle after `debounce` of quiet, but no
    /// later than `debounce_max` after the first change of the burst (a
    /// steady writer must not postpone a change forever).
    pub fn changed(&mut self, now: Instant) {
        let since = *self.burst_since.get_or_insert(now);
        let quiet = after(now, self.debounce);
        let cap = after(since, self.debounce_max).max(now);
        self.settle = Some(quiet.min(cap));
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
    pub fn next(&self, now: Instant) -> Option<Instant> {
        let probe = self.probe.map(|p| after(now, p));
        [self.stop, self.backoff, self.settle, self.poll, probe]
            .into_iter()
            .flatten()
            .min()
    }

    /// Disarms and returns what is due at `now`; the polling tick re-arms.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let take = |at: &mut Option<Instant>| at.take_if(|t| *t <= now).is_some();
        let mut due = vec![];
        if take(&mut self.stop) {
            due.push(Due::Stop);
        }
        if take(&mut self.backoff) {
            due.push(Due::Backoff);
        }
        if take(&mut self.poll) {
            self.poll = self.every.map(|e| after(now, e));
            due.push(Due::Poll);
        }
        if take(&mut self.settle) {
            self.burst_since = None;
            due.push(Due::Settle);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_settles_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 5000 * MS);
        t.changed(t0);
        t.changed(t0 + 100 * MS);
        assert_eq!(t.next(t0), Some(t0 + 600 * MS));
        assert_eq!(t.due(t0 + 599 * MS), []);
        assert_eq!(t.due(t0 + 600 * MS), [Due::Settle]);
        assert!(!t.settling());
        assert_eq!(t.next(t0), None);
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
        assert_eq!(t.next(now), Some(now + 500 * MS));
    }

    #[test]
    fn polling_rearms_itself_and_is_not_pushed_back() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 5000 * MS);
        t.poll_every(t0, Some(5000 * MS));
        t.poll_every(t0 + 3000 * MS, Some(5000 * MS));
        assert_eq!(t.next(t0), Some(t0 + 5000 * MS));
        assert_eq!(t.due(t0 + 5000 * MS), [Due::Poll]);
        assert_eq!(t.next(t0), Some(t0 + 10_000 * MS));
        t.poll_every(t0 + 5000 * MS, None);
        assert_eq!(t.next(t0), None);
    }

    #[test]
    fn stop_backoff_and_probe() {
        let t0 = Instant::now();
        let mut t = Timers::new(500 * MS, 5000 * MS);
        t.stop_in(t0, Some(10_000 * MS));
        t.backoff_in(t0, 1000 * MS);
        t.probe_every(Some(20 * MS));
        assert_eq!(t.next(t0), Some(t0 + 20 * MS));
        t.probe_every(None);
        assert_eq!(t.due(t0 + 1000 * MS), [Due::Backoff]);
        assert_eq!(t.due(t0 + 10_000 * MS), [Due::Stop]);
        t.stop_in(t0, Some(MS));
        t.stop_in(t0, None);
        assert_eq!(t.next(t0), None);
    }

    #[test]
    fn no_duration_overflows_a_deadline() {
        let t0 = Instant::now();
        let huge = Duration::MAX;
        let mut t = Timers::new(huge, huge);
        t.changed(t0);
        t.stop_in(t0, Some(huge));
        t.backoff_in(t0, huge);
        t.poll_every(t0, Some(huge));
        let next = t.next(t0).expect("armed");
        assert!(next > t0 + Duration::from_secs(50 * 365 * 86_400));
        assert_eq!(t.due(t0), []);
    }
}
