//! Work that may block for as long as the files say (walking a directory,
//! hashing a big file, copying or removing a generation), off the loop that
//! forwards signals. Each piece of work gets a thread of its own that ends
//! with it: a pool would keep an idle thread (and its stack) for the whole
//! run, as looks come every few seconds, while a thread costs some tens of
//! microseconds to start.

use async_channel::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

/// The answer of work running off the loop.
pub struct Pending<T>(Receiver<T>);

impl<T> Pending<T> {
    /// Waits for the answer (pending forever if the work never gave one).
    pub async fn wait(&self) -> T {
        match self.0.recv().await {
            Ok(answer) => answer,
            Err(_) => futures::future::pending().await,
        }
    }
}

/// Runs `work` off the loop; its answer comes from the `Pending`.
pub fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
    let (tx, rx) = async_channel::bounded(1);
    detach(Box::new(move || {
        // Room for the one answer: never waits.
        let _ = tx.try_send(work());
    }));
    Pending(rx)
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on a new thread, or here if no thread can be had (out of
/// threads or memory): late rather than never. Not generic, so one copy.
pub fn detach(job: Job) {
    fn take(slot: &Mutex<Option<Job>>) -> Option<Job> {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
    let slot = Arc::new(Mutex::new(Some(job)));
    let theirs = Arc::clone(&slot);
    let spawned = std::thread::Builder::new()
        .name("off-loop".into())
        .spawn(move || take(&theirs).map_or((), |job| job()));
    if let Err(e) = spawned {
        log::warn!("No thread for work off the loop ({e}): doing it on the loop");
        if let Some(job) = take(&slot) {
            job();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_comes_back_and_the_thread_is_gone() {
        let here = std::thread::current().id();
        let pending = run(move || std::thread::current().id() != here);
        assert!(smol::block_on(pending.wait()), "ran on another thread");
    }
}
