//! An incremental parser of server-sent events (the `text/event-stream`
//! format OpenAI-compatible servers stream completions in): bytes in, in
//! whatever pieces the socket gives them; complete events' `data` out.
//!
//! Only `data:` fields matter here; `event:`, `id:`, `retry:` and comments
//! are skipped. Buffers are reused from one response to the next.

/// Longest line accepted (an event carrying a whole long completion fits).
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct SseParser {
    /// The incomplete line so far.
    line: Vec<u8>,
    /// The `data` of the event being built (lines joined by `\n`).
    data: Vec<u8>,
    has_data: bool,
}

/// The stream broke the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event stream line longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

impl SseParser {
    pub fn reset(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
    }

    /// Feeds bytes; calls `on_event` with each complete event's data.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_event: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            if self.line.len() + nl > MAX_LINE {
                return Err(LineTooLong);
            }
            self.line.extend_from_slice(&bytes[..nl]);
            bytes = &bytes[nl + 1..];
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                // A blank line ends the event.
                if self.has_data {
                    on_event(&self.data);
                }
                self.data.clear();
                self.has_data = false;
            } else if let Some(value) = self.line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            self.line.clear();
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b": comment\r\nevent: x\r\ndata: {\"a\":1}\r\n\r\ndata: two\ndata: lines\n\ndata:[DONE]\n\n";

    fn events(pieces: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, |e| out.push(String::from_utf8_lossy(e).into_owned()))
                .expect("valid");
        }
        out
    }

    #[test]
    fn parses_events_whatever_the_pieces() {
        let expected = ["{\"a\":1}", "two\nlines", "[DONE]"];
        assert_eq!(events(&[STREAM]), expected);
        for split in 0..STREAM.len() {
            assert_eq!(
                events(&[&STREAM[..split], &STREAM[split..]]),
                expected,
                "split at {split}"
            );
        }
        let bytewise: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(events(&bytewise), expected);
    }

    #[test]
    fn refuses_endless_lines() {
        let mut p = SseParser::default();
        let big = vec![b'x'; MAX_LINE + 1];
        assert_eq!(p.feed(&big, |_| {}), Err(LineTooLong));
    }
}
