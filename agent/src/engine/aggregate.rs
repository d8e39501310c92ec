//! Adds the workers' recorders of each interval into one, and releases an
//! interval once every worker that can still report it has.

use super::worker::WorkerInterval;
use crate::recorder::IntervalRecorder;
use std::collections::BTreeMap;
use tokio::time::Instant;

struct Pending {
    data: IntervalRecorder,
    reporters: usize,
    closed_at: Instant,
}

pub(super) struct Aggregator {
    pending: BTreeMap<u32, Pending>,
    /// Per worker: the index of its last interval, once it has sent it.
    finished: Vec<Option<u32>>,
}

impl Aggregator {
    pub(super) fn new(workers: usize) -> Self {
        Self {
            pending: BTreeMap::new(),
            finished: vec![None; workers],
        }
    }

    /// Takes one worker's interval; returns the intervals now complete, in
    /// order, as `(index, data, last, closed_at)`.
    pub(super) fn add(
        &mut self,
        piece: WorkerInterval,
    ) -> Vec<(u32, IntervalRecorder, bool, Instant)> {
        let entry = self.pending.entry(piece.index).or_insert_with(|| Pending {
            data: IntervalRecorder::new(),
            reporters: 0,
            closed_at: piece.closed_at,
        });
        entry.data.merge(&piece.recorder);
        entry.reporters += 1;
        entry.closed_at = entry.closed_at.max(piece.closed_at);
        if piece.last {
            if let Some(slot) = self.finished.get_mut(piece.worker) {
                *slot = Some(piece.index);
            }
        }

        let mut ready = Vec::new();
        while let Some((&index, pending)) = self.pending.first_key_value() {
            // Workers that finished before `index` will never report it.
            let expected = self
                .finished
                .iter()
                .filter(|f| f.is_none_or(|last| last >= index))
                .count();
            if pending.reporters < expected {
                break;
            }
            let all_done = self.finished.iter().all(Option::is_some);
            let Some((index, pending)) = self.pending.pop_first() else {
                break;
            };
            let last = all_done && self.pending.is_empty();
            ready.push((index, pending.data, last, pending.closed_at));
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn piece(worker: usize, index: u32, successes: u64, last: bool) -> WorkerInterval {
        let mut recorder = IntervalRecorder::new();
        for _ in 0..successes {
            recorder.record_success(Duration::from_millis(1), 200, 0);
        }
        WorkerInterval {
            worker,
            index,
            recorder,
            last,
            closed_at: Instant::now(),
        }
    }

    #[test]
    fn releases_an_interval_when_every_worker_reported_it() {
        let mut agg = Aggregator::new(2);
        assert!(agg.add(piece(0, 0, 1, false)).is_empty());
        let ready = agg.add(piece(1, 0, 2, false));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].1.outcomes.success, 3);
        assert!(!ready[0].2);
        // Worker 0 ends early at 1; worker 1 goes on to 2.
        assert!(agg.add(piece(0, 1, 1, true)).is_empty());
        let ready = agg.add(piece(1, 1, 1, false));
        assert_eq!(ready.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1]);
        let ready = agg.add(piece(1, 2, 5, true));
        assert_eq!(ready.len(), 1);
        assert_eq!(
            (ready[0].0, ready[0].1.outcomes.success, ready[0].2),
            (2, 5, true)
        );
    }
}
