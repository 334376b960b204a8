//! Lines from a driver's standard output, each at most `max` bytes, so that a program
//! printing a 100 MB line (or no newline at all) costs uaedge no more than the bound.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Why no line came.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("a line longer than {limit} bytes (max_line)")]
    TooLong { limit: usize },
    #[error("the output ended in the middle of a line ({0} bytes without a newline)")]
    Cut(usize),
    #[error("reading the driver's output: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Lines<R> {
    inner: R,
    max: usize,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    pub fn new(inner: R, max: usize) -> Lines<R> {
        Lines {
            inner,
            max,
            line: Vec::new(),
        }
    }

    /// The next line without its `\n`; `None` at the end of a clean output.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, LineError> {
        self.line.clear();
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return match self.line.len() {
                    0 => Ok(None),
                    n => Err(LineError::Cut(n)),
                };
            }
            let (take, end) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > self.max {
                return Err(LineError::TooLong { limit: self.max });
            }
            self.line.extend_from_slice(&available[..take]);
            self.inner.consume(take + usize::from(end));
            if end {
                return Ok(Some(&self.line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<String>) {
        // A tiny buffer, so lines span many reads.
        let mut lines = Lines::new(tokio::io::BufReader::with_capacity(3, input), max);
        let mut out = Vec::new();
        loop {
            match lines.next().await {
                Ok(Some(l)) => out.push(l.to_vec()),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_at_newlines_and_bounded() {
        let (l, e) = all(b"{\"a\":1}\n\nxyz\n", 8).await;
        assert_eq!(l, [b"{\"a\":1}".to_vec(), vec![], b"xyz".to_vec()]);
        assert_eq!(e, None);
        let (l, e) = all(b"ok\n123456789\nnever", 8).await;
        assert_eq!(l, [b"ok".to_vec()]);
        assert_eq!(e.as_deref(), Some("a line longer than 8 bytes (max_line)"));
        let (l, e) = all(b"ok\npartial", 64).await;
        assert_eq!(l, [b"ok".to_vec()]);
        assert!(e.is_some_and(|e| e.contains("7 bytes without a newline")));
        // Exactly the bound is fine.
        let (l, e) = all(b"12345678\n", 8).await;
        assert_eq!((l.len(), e), (1, None));
    }
}
