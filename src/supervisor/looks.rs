//! Looks at the files, off the loop. Walking a directory, stat-ing many
//! files or hashing a big one takes as long as the files say; the loop
//! forwards signals meanwhile. The watch (its stat cache, its inotify
//! handle) goes to a blocking thread with each look and comes back with the
//! answer; notify events that arrive while it is away wait for it. Looks run
//! one at a time, in the order asked, so every answer reflects the events
//! noted before it. Starting the watcher goes off the loop the same way: an
//! inotify watch per directory, each a round trip to notify's thread, is
//! about a second for thousands of directories.

use super::{Look, Wake};
use crate::off_loop::{self, Pending};
use crate::route::Routes;
use crate::state::{LookFor, Outcome};
use crate::watch::fingerprint::Snapshot;
use crate::watch::{NotifyEvent, Watch};
use async_channel::Receiver;
use std::collections::VecDeque;
use std::time::Duration;

/// What a look found.
enum Found {
    /// A polling tick: may the files have changed?
    Moved(bool),
    Bytes(Snapshot),
    /// The watcher is up: its events.
    Started(Receiver<NotifyEvent>),
}

/// The watch gone off the loop, and what it comes back with.
type Away = Pending<(Watch, Found)>;

pub struct Looks {
    /// The watch, when no look has it.
    home: Option<Watch>,
    /// The running look (None: the watcher's start).
    away: Option<(Option<Look>, Away)>,
    /// Looks asked for and not started yet (a polling tick once; the
    /// machine asks for at most one more of a kind while one is out).
    queue: VecDeque<Look>,
    /// Events that arrived while the watch was away.
    while_away: Vec<NotifyEvent>,
    /// The watcher's start, asked and not begun (before any look queued).
    start: Option<bool>,
    poll_every: Option<Duration>,
    active: bool,
    notify: Option<Receiver<NotifyEvent>>,
    /// Answers known without looking (nothing is watched), and the wake-up
    /// owed for events a look took early.
    ready: VecDeque<Wake>,
    /// `--on-change`: each look works out its files' rules off the loop.
    routes: Routes,
}

impl Looks {
    pub fn new(watch: Watch) -> Looks {
        Looks {
            active: watch.is_active(),
            poll_every: None,
            home: Some(watch),
            away: None,
            queue: VecDeque::new(),
            while_away: vec![],
            start: None,
            notify: None,
            ready: VecDeque::new(),
            routes: Routes::default(),
        }
    }

    /// Starts the watcher, off the loop (once the watch is home, before
    /// the looks queued); true when anything is watched.
    pub fn start(&mut self, poll_only: bool) -> bool {
        match self.home.as_mut() {
            // Nothing to watch: nothing to wait for either.
            Some(w) if !self.active => self.notify = Some(w.start(poll_only)),
            _ => {
                self.start = Some(poll_only);
                self.go();
            }
        }
        self.active
    }

    /// The rules whose answers the looks work out (shared with the
    /// machine's copy).
    pub fn route_with(&mut self, routes: Routes) {
        self.routes = routes;
    }

    pub fn poll_interval(&self) -> Option<Duration> {
        self.poll_every
    }

    /// Notify's events, for the loop's select (a clone: it is shared).
    pub fn events(&self) -> Option<Receiver<NotifyEvent>> {
        self.notify.clone()
    }

    /// An event from the watcher: which files the next look must read.
    pub fn note(&mut self, event: NotifyEvent) {
        match self.home.as_mut() {
            Some(w) => w.note(&event),
            None => self.while_away.push(event),
        }
    }

    /// Asks for a look; its answer comes from `answer` (or at once from
    /// `ready` when nothing is watched).
    pub fn ask(&mut self, look: Look) {
        if !self.active {
            self.ready.push_back(match look {
                Look::Poll => Wake::Polled(false),
                Look::Asked(token, _) => Wake::Done {
                    token,
                    outcome: Outcome::Looked(Snapshot::new()),
                },
            });
            return;
        }
        if !self.queue.contains(&look) {
            self.queue.push_back(look);
        }
        self.go();
    }

    /// A wake-up owed without waiting.
    pub fn ready(&mut self) -> Option<Wake> {
        self.ready.pop_front()
    }

    /// The running look's answer, once the watch is back (pending while no
    /// look runs). The watcher's start answers `Polled(false)`.
    pub async fn answer(&mut self) -> Wake {
        loop {
            let (look, watch, found) = match self.away.as_mut() {
                Some((look, task)) => {
                    let look = *look;
                    let (watch, found) = task.wait().await;
                    (look, watch, found)
                }
                None => futures::future::pending().await,
            };
            if let Some(wake) = self.returned(look, watch, found) {
                return wake;
            }
        }
    }

    /// The watch is back with `found`: what the loop hears of it.
    fn returned(&mut self, look: Option<Look>, mut watch: Watch, found: Found) -> Option<Wake> {
        self.away = None;
        for event in self.while_away.drain(..) {
            watch.note(&event);
        }
        self.poll_every = watch.poll_interval();
        self.home = Some(watch);
        let wake = match (found, look) {
            (Found::Moved(moved), _) => Some(Wake::Polled(moved)),
            (Found::Bytes(now), Some(Look::Asked(token, _))) => Some(Wake::Done {
                token,
                outcome: Outcome::Looked(now),
            }),
            (Found::Bytes(_), _) => None,
            // A wake that changes nothing, so that the loop's next wait
            // listens to the watcher's events (this one was set up before
            // they existed).
            (Found::Started(events), _) => {
                self.notify = Some(events);
                Some(Wake::Polled(false))
            }
        };
        self.go();
        wake
    }

    /// Sends the watch on the next look, if it is home.
    fn go(&mut self) {
        if self.away.is_some() || (self.queue.is_empty() && self.start.is_none()) {
            return;
        }
        let Some(mut watch) = self.home.take() else {
            return;
        };
        if let Some(poll_only) = self.start.take() {
            let task = off_loop::run(move || {
                let events = watch.start(poll_only);
                (watch, Found::Started(events))
            });
            self.away = Some((None, task));
            return;
        }
        let Some(look) = self.queue.pop_front() else {
            self.home = Some(watch);
            return;
        };
        // Events already queued name files this look must read. A look
        // before a decision takes them early: the loop still hears of them
        // (a change seen by a start's look is settled and decided on too).
        let settle = matches!(look, Look::Asked(_, LookFor::Settle));
        if look != Look::Poll && self.take_events(&mut watch) && !settle {
            self.ready.push_back(Wake::Notify);
        }
        let routes = self.routes.clone();
        let task = off_loop::run(move || {
            let found = match look {
                Look::Poll => Found::Moved(watch.poll()),
                Look::Asked(_, LookFor::Settle) => {
                    // The watches may need to move (a directory appeared or
                    // was replaced) before the decisive look.
                    watch.refresh();
                    Found::Bytes(watch.snapshot())
                }
                Look::Asked(..) => Found::Bytes(watch.snapshot()),
            };
            if let Found::Bytes(now) = &found {
                routes.warm(now.keys());
            }
            (watch, found)
        });
        self.away = Some((Some(look), task));
    }

    /// Notes on `watch` every notify event already queued; true when there
    /// was any.
    fn take_events(&self, watch: &mut Watch) -> bool {
        let Some(rx) = &self.notify else {
            return false;
        };
        let mut any = false;
        while let Ok(event) = rx.try_recv() {
            watch.note(&event);
            any = true;
        }
        any
    }
}
