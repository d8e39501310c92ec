//! A streaming decoder for `Transfer-Encoding: chunked` bodies: finds where
//! the body ends, and hands out the data to a client that wants it.

/// Longest chunk-size or trailer line accepted before calling it garbage.
const MAX_LINE: usize = 4096;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a `size[;ext]\r\n` line.
    #[default]
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the `\r\n` after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    Done,
}

#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
}

impl ChunkedDecoder {
    pub fn reset(&mut self) {
        self.state = State::Size;
    }

    /// Consumes what it can of `input`. Returns how many bytes were used and
    /// whether the body is complete. Unused bytes (an incomplete line) must
    /// be offered again with more data appended.
    #[cfg(test)]
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), &'static str> {
        self.feed_with(input, |_| {})
    }

    /// [`ChunkedDecoder::feed`], handing each piece of chunk data to
    /// `on_data` (for clients that read the body, such as event streams).
    pub fn feed_with(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), &'static str> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok((pos, true)),
                State::Data(left) => {
                    let take = ((input.len() - pos) as u64).min(left);
                    if take > 0 {
                        on_data(&input[pos..pos + take as usize]);
                    }
                    pos += take as usize;
                    if take == left {
                        self.state = State::DataEnd;
                    } else {
                        self.state = State::Data(left - take);
                        return Ok((pos, false));
                    }
                }
                State::Size | State::DataEnd | State::Trailer => {
                    let Some(line_len) = find_crlf(&input[pos..]) else {
                        if input.len() - pos > MAX_LINE {
                            return Err("chunk line too long");
                        }
                        return Ok((pos, false));
                    };
                    let line = &input[pos..pos + line_len];
                    pos += line_len + 2;
                    self.state = match self.state {
                        State::Size => match parse_size(line)? {
                            0 => State::Trailer,
                            n => State::Data(n),
                        },
                        State::DataEnd if line.is_empty() => State::Size,
                        State::DataEnd => return Err("chunk data longer than its size"),
                        _ if line.is_empty() => State::Done,
                        _ => State::Trailer,
                    };
                }
            }
        }
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

fn parse_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err("invalid chunk size");
    }
    let mut size = 0u64;
    for &b in digits {
        let d = (b as char).to_digit(16).ok_or("invalid chunk size")?;
        size = size * 16 + u64::from(d);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"4\r\nwiki\r\n5;name=v\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";

    #[test]
    fn decodes_in_one_piece() {
        let mut d = ChunkedDecoder::default();
        assert_eq!(d.feed(BODY), Ok((BODY.len(), true)));
    }

    #[test]
    fn decodes_split_at_every_point() {
        for split in 0..BODY.len() {
            let mut d = ChunkedDecoder::default();
            let (used, done) = d.feed(&BODY[..split]).expect("valid prefix");
            assert!(!done);
            // The caller keeps unused bytes and appends the rest.
            let rest: Vec<u8> = BODY[used..].to_vec();
            assert_eq!(d.feed(&rest), Ok((rest.len(), true)), "split at {split}");
        }
    }

    #[test]
    fn hands_out_the_data_whatever_the_split() {
        for split in 0..BODY.len() {
            let mut d = ChunkedDecoder::default();
            let mut data = Vec::new();
            let (used, _) = d
                .feed_with(&BODY[..split], |b| data.extend_from_slice(b))
                .expect("valid prefix");
            let rest: Vec<u8> = BODY[used..].to_vec();
            d.feed_with(&rest, |b| data.extend_from_slice(b))
                .expect("valid rest");
            assert_eq!(data, b"wikipedia in\r\n\r\nchunks.", "split at {split}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(ChunkedDecoder::default().feed(b"zz\r\n").is_err());
        assert!(ChunkedDecoder::default().feed(b"2\r\nabc\r\n").is_err());
        assert!(
            ChunkedDecoder::default()
                .feed(&[b'1'; MAX_LINE + 10])
                .is_err()
        );
    }
}
