//! When an agent sends a heartbeat: only after a silence.
//!
//! The coordinator counts any message as a sign of life (`agent_loss_timeout`),
//! so an agent reporting every second needs no heartbeat besides: at a thousand
//! agents that is 500 messages a second the coordinator would read, decode and
//! hand to its run actor for nothing.

use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior, interval};

pub struct Heartbeat {
    timer: Interval,
}

impl Heartbeat {
    /// The first beat is due at once (a session announces itself), then after
    /// every `every` of silence.
    pub fn new(every: Duration) -> Self {
        let mut timer = interval(every);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat { timer }
    }

    /// Waits until a heartbeat is due.
    pub async fn due(&mut self) {
        self.timer.tick().await;
    }

    /// The agent sent the coordinator something else: no beat is due until
    /// `every` from now.
    pub fn spoke(&mut self) {
        self.timer.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Instant, timeout};

    #[tokio::test(start_paused = true)]
    async fn reports_every_second_leave_no_heartbeat_due_and_silence_brings_one() {
        let every = Duration::from_secs(2);
        let mut beat = Heartbeat::new(every);
        let start = Instant::now();
        beat.due().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "the first beat at once");
        for second in 0..10 {
            let early = timeout(Duration::from_secs(1), beat.due()).await;
            assert!(early.is_err(), "a beat came {second} s into the reports");
            beat.spoke();
        }
        let silent = Instant::now();
        beat.due().await;
        assert_eq!(silent.elapsed(), every, "a beat after a silence of `every`");
        beat.due().await;
        assert_eq!(silent.elapsed(), 2 * every, "and every `every` after");
    }
}
