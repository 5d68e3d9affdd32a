//! Bounded log handling: line splitting with a length cap, a rate limit, progress parsing.

use std::io::Read;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use super::{LogStream, LOG_LINES_PER_SECOND_MAX, LOG_LINE_BYTES_MAX};

/// Bytes read from a pipe at once.
const READ_CHUNK_BYTES: usize = 8192;
/// Bytes of the progress file that are read; a fraction needs far fewer.
pub(crate) const PROGRESS_FILE_BYTES_MAX: usize = 64;
/// Appended to a line that was cut at `LOG_LINE_BYTES_MAX`.
pub(crate) const TRUNCATION_MARK: &str = " [aicpw: line truncated]";

/// One line read from a task's pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub stream: LogStream,
    pub text: String,
}

/// Reads `reader` to its end, sending each line (cut to `LOG_LINE_BYTES_MAX` bytes) to
/// `sender`. Keeps reading after the receiver is gone so that the task never blocks on a
/// full pipe; returns at end of file or on a read error.
pub(crate) fn pump_lines(mut reader: impl Read, stream: LogStream, sender: SyncSender<LogLine>) {
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut splitter = LineSplitter::default();
    let mut receiver_alive = true;
    loop {
        let count = match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(count) => count,
        };
        for text in splitter.push(&chunk[..count]) {
            if receiver_alive {
                receiver_alive = sender.send(LogLine { stream, text }).is_ok();
            }
        }
    }
    if let (Some(text), true) = (splitter.finish(), receiver_alive) {
        let _ = sender.send(LogLine { stream, text });
    }
}

/// Splits a byte stream into lines of at most `LOG_LINE_BYTES_MAX` bytes, dropping the
/// excess of longer lines; memory use stays bounded whatever the stream contains.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    current: Vec<u8>,
    truncated: bool,
}

impl LineSplitter {
    /// Feeds bytes; returns the lines they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for piece in bytes.split_inclusive(|byte| *byte == b'\n') {
            let (content, ends_line) = match piece.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (piece, false),
            };
            let room = LOG_LINE_BYTES_MAX.saturating_sub(self.current.len());
            if content.len() > room {
                self.truncated = true;
            }
            self.current.extend_from_slice(&content[..content.len().min(room)]);
            if ends_line {
                lines.push(self.take());
            }
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.current.is_empty() || self.truncated).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.current);
        let mut text = String::from_utf8_lossy(&bytes).trim_end_matches('\r').to_string();
        if std::mem::take(&mut self.truncated) {
            text.push_str(TRUNCATION_MARK);
        }
        text
    }
}

/// Token bucket: `LOG_LINES_PER_SECOND_MAX` lines per second with a burst of the same size.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    pub fn new(now: Instant) -> Self {
        RateLimiter { tokens: f64::from(LOG_LINES_PER_SECOND_MAX), refilled_at: now }
    }

    /// Whether one more line may pass at `now`.
    pub fn admit(&mut self, now: Instant) -> bool {
        let rate = f64::from(LOG_LINES_PER_SECOND_MAX);
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * rate).min(rate);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Progress from a stdout line of the form `progress: 0.42` (surrounding spaces allowed).
pub(crate) fn parse_progress_line(line: &str) -> Option<u16> {
    let value = line.trim().strip_prefix("progress:")?;
    fraction_to_permille(value.trim())
}

/// Progress from the contents of the progress file: one fraction, optionally with spaces.
pub(crate) fn parse_progress_file(bytes: &[u8]) -> Option<u16> {
    fraction_to_permille(std::str::from_utf8(bytes).ok()?.trim())
}

/// A fraction `0..=1` in thousandths; values outside are clamped, non-numbers rejected.
fn fraction_to_permille(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > PROGRESS_FILE_BYTES_MAX {
        return None;
    }
    let fraction: f64 = text.parse().ok()?;
    if !fraction.is_finite() {
        return None;
    }
    // In range 0..=1000 after clamping, so the conversion cannot truncate.
    let permille = (fraction.clamp(0.0, 1.0) * 1000.0).round();
    Some(permille as u16)
}

/// Phrases that runtimes print when an allocation fails (Python, C, C++, Rust, Go, Java).
/// With the address-space rlimit as the hard memory bound, a failed allocation usually ends
/// the task with one of these on stderr rather than with a signal.
const OUT_OF_MEMORY_MARKERS: [&str; 6] = [
    "MemoryError",
    "Cannot allocate memory",
    "std::bad_alloc",
    "memory allocation of",
    "out of memory",
    "OutOfMemoryError",
];

/// Whether a stderr line reports a failed memory allocation.
pub(crate) fn reports_out_of_memory(line: &str) -> bool {
    OUT_OF_MEMORY_MARKERS.iter().any(|marker| line.contains(marker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_are_split_across_chunks_and_carriage_returns_dropped() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"hel"), Vec::<String>::new());
        assert_eq!(splitter.push(b"lo\r\nworld\n\npart"), vec!["hello", "world", ""]);
        assert_eq!(splitter.finish(), Some("part".to_string()));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn long_lines_are_cut_and_marked() {
        let mut splitter = LineSplitter::default();
        let long = vec![b'x'; LOG_LINE_BYTES_MAX * 3];
        assert!(splitter.push(&long).is_empty());
        let lines = splitter.push(b"yyy\nnext\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), LOG_LINE_BYTES_MAX + TRUNCATION_MARK.len());
        assert!(lines[0].ends_with(TRUNCATION_MARK));
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"a\xffb\n"), vec!["a\u{fffd}b"]);
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_the_steady_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(start);
        let burst = (0..LOG_LINES_PER_SECOND_MAX * 2).filter(|_| limiter.admit(start)).count();
        assert_eq!(burst, LOG_LINES_PER_SECOND_MAX as usize);
        let later = start + Duration::from_millis(100);
        let admitted = (0..LOG_LINES_PER_SECOND_MAX).filter(|_| limiter.admit(later)).count();
        assert_eq!(admitted, LOG_LINES_PER_SECOND_MAX as usize / 10);
    }

    #[test]
    fn progress_lines_and_files_are_parsed_and_clamped() {
        assert_eq!(parse_progress_line("progress: 0.42"), Some(420));
        assert_eq!(parse_progress_line("  progress:1"), Some(1000));
        assert_eq!(parse_progress_line("progress: 7"), Some(1000));
        assert_eq!(parse_progress_line("progress: -3"), Some(0));
        assert_eq!(parse_progress_line("progress: 0.0005"), Some(1));
        assert_eq!(parse_progress_line("progress: NaN"), None);
        assert_eq!(parse_progress_line("progress: inf"), None);
        assert_eq!(parse_progress_line("progress: half"), None);
        assert_eq!(parse_progress_line("loss: 0.4"), None);
        assert_eq!(parse_progress_file(b"0.25\n"), Some(250));
        assert_eq!(parse_progress_file(b""), None);
        assert_eq!(parse_progress_file(b"\xff"), None);
    }

    #[test]
    fn out_of_memory_reports_are_recognised() {
        assert!(reports_out_of_memory("MemoryError"));
        assert!(reports_out_of_memory("terminate called after throwing 'std::bad_alloc'"));
        assert!(reports_out_of_memory("memory allocation of 1048576 bytes failed"));
        assert!(!reports_out_of_memory("loss: 0.1"));
    }
}
