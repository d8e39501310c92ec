//! The redrawn block on a terminal (indicatif draws it), and a log writer
//! that prints log lines above the block instead of through it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::sync::{Mutex, PoisonError};

/// The block on screen, if any: the log writer must print around it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Redraws per second at most.
const REFRESH_HZ: u8 = 4;

/// Where the block goes: the stream the live view writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A block of text kept at the bottom of the terminal and redrawn in place.
pub struct Block {
    bar: ProgressBar,
}

impl Block {
    pub fn show(stream: Stream) -> Self {
        let target = match stream {
            Stream::Stdout => ProgressDrawTarget::stdout_with_hz(REFRESH_HZ),
            Stream::Stderr => ProgressDrawTarget::stderr_with_hz(REFRESH_HZ),
        };
        let bar = ProgressBar::with_draw_target(None, target);
        // The whole block is our text: indicatif only draws it.
        bar.set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| {
            // A constant template always parses.
            ProgressStyle::default_spinner()
        }));
        *SHOWN.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        Self { bar }
    }

    pub fn set(&self, text: String) {
        self.bar.set_message(text);
    }
}

impl Drop for Block {
    /// Clears the block: what follows (the result table) replaces it.
    fn drop(&mut self) {
        SHOWN.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.bar.finish_and_clear();
    }
}

/// A `tracing` writer to stderr that, while a block is shown, lifts it out
/// of the way for each log line and redraws it below.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

impl Write for LogWriter {
    /// The formatter hands over each event as one buffer.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let write = || std::io::stderr().lock().write_all(buf);
        match shown {
            Some(bar) => bar.suspend(write)?,
            None => write()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
