//! The live view of a run: per region and for all regions, the last
//! interval's throughput, errors and p50/p99, the stage and the time left,
//! and the agents connected.
//!
//! On a terminal it is a block redrawn in place ([`terminal`]); anywhere
//! else (a pipe, a file, a Kubernetes Job's log) it is one plain line per
//! closed interval. [`view`] holds the state and the text of both.

mod terminal;
mod view;

pub use terminal::{LogWriter, Stream};
pub use view::LiveView;

use crate::events::{EventReceiver, RunEvent};
use crate::report::build::unix_nanos_now;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use terminal::Block;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// How often the terminal block is redrawn between events (the time left
/// moves on even when nothing closes).
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// Shows the run `events` describe on `stream` until the run's sender is
/// gone; await the handle before printing what follows the run.
pub fn spawn(events: EventReceiver, stream: Stream) -> JoinHandle<()> {
    let terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    if terminal {
        tokio::spawn(redraw(events, stream))
    } else {
        tokio::spawn(lines(events, stream))
    }
}

async fn redraw(mut events: EventReceiver, stream: Stream) {
    let mut view = LiveView::default();
    let mut block: Option<Block> = None;
    let mut tick = tokio::time::interval(REDRAW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = events.recv() => match event {
                Ok(event) => {
                    view.apply(&event);
                    match event {
                        // The result table follows: it replaces the block.
                        RunEvent::Finished(_) => block = None,
                        RunEvent::Waiting(_) | RunEvent::Starting(_) if block.is_none() => {
                            block = Some(Block::show(stream));
                        }
                        _ => {}
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
        if let Some(block) = &block {
            block.set(view.block(unix_nanos_now()));
        }
    }
}

async fn lines(mut events: EventReceiver, stream: Stream) {
    let mut view = LiveView::default();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                print(stream, &format!("live view: {skipped} events skipped"));
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        view.apply(&event);
        if let RunEvent::IntervalClosed(snapshot) = &event {
            print(stream, &view.interval_line(snapshot));
        }
    }
}

fn print(stream: Stream, line: &str) {
    let result = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|()| out.flush())
        }
        Stream::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
    };
    // A closed stdout (`| head`) must not stop the run.
    let _ = result;
}
