//! A subscription's NotificationMessage sequence numbers (Part 4, 5.13.1.1): which messages
//! a Publish response shows were sent but never arrived, so that they can be asked for
//! again with Republish, and which ones arrive twice.
//!
//! Numbers run 1..=u32::MAX and wrap to 1 (0 is never used). A data message carries its own
//! number; a keep-alive carries the number the next data message will have.

/// At most this many messages are asked for again after one gap; a wider gap means the
/// numbering started over (a server that lost our subscription state), not lost messages.
pub(crate) const MAX_GAP: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The expected message: deliver it.
    InOrder,
    /// These many messages before it never arrived, starting at `from`: ask for them, then
    /// deliver this one.
    Gap { from: u32, count: u32 },
    /// Delivered before (a republished message arriving again): skip it.
    Seen,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Sequence {
    /// The number the next data message should carry; `None` before the first one.
    next: Option<u32>,
}

pub(crate) fn after(n: u32) -> u32 {
    if n == u32::MAX {
        1
    } else {
        n + 1
    }
}

/// How far `to` is ahead of `from`, counting only valid numbers (0 is skipped on wrap).
fn ahead(from: u32, to: u32) -> u32 {
    let d = to.wrapping_sub(from);
    if to < from {
        d.wrapping_sub(1)
    } else {
        d
    }
}

impl Sequence {
    /// Expects `seq` next again: the messages from it on are to be asked for once more.
    pub(crate) fn rewind(&mut self, seq: u32) {
        self.next = Some(seq);
    }

    /// A data message numbered `seq` arrived.
    pub(crate) fn data(&mut self, seq: u32) -> Step {
        let Some(next) = self.next else {
            self.next = Some(after(seq));
            return Step::InOrder;
        };
        if seq == next {
            self.next = Some(after(seq));
            return Step::InOrder;
        }
        let gap = ahead(next, seq);
        if gap <= MAX_GAP {
            self.next = Some(after(seq));
            Step::Gap {
                from: next,
                count: gap,
            }
        } else if ahead(seq, next) <= MAX_GAP {
            Step::Seen
        } else {
            // Numbering started over: take it from here.
            self.next = Some(after(seq));
            Step::InOrder
        }
    }

    /// A keep-alive announcing `next` as the number of the next data message: a gap when
    /// messages before it never arrived.
    pub(crate) fn keep_alive(&mut self, next_seq: u32) -> Option<(u32, u32)> {
        let expected = self.next?;
        let gap = ahead(expected, next_seq);
        if gap == 0 || gap > MAX_GAP {
            if gap > MAX_GAP && ahead(next_seq, expected) > MAX_GAP {
                self.next = Some(next_seq);
            }
            return None;
        }
        self.next = Some(next_seq);
        Some((expected, gap))
    }
}

/// The `count` numbers from `from` on, wrapping past u32::MAX to 1.
pub(crate) fn numbers(from: u32, count: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(Some(from), |&n| Some(after(n))).take(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_gaps_and_duplicates() {
        let mut s = Sequence::default();
        assert_eq!(s.data(5), Step::InOrder, "the first one sets the start");
        assert_eq!(s.data(6), Step::InOrder);
        assert_eq!(s.data(9), Step::Gap { from: 7, count: 2 });
        assert_eq!(s.data(10), Step::InOrder);
        assert_eq!(s.data(8), Step::Seen, "a republished one arriving again");
        assert_eq!(
            s.keep_alive(11),
            None,
            "a keep-alive naming the expected one"
        );
        assert_eq!(
            s.keep_alive(13),
            Some((11, 2)),
            "two messages lost before it"
        );
        assert_eq!(s.data(13), Step::InOrder);
        s.rewind(12);
        assert_eq!(
            s.data(14),
            Step::Gap { from: 12, count: 2 },
            "asked for again"
        );
    }

    #[test]
    fn numbers_wrap_past_the_largest_to_one() {
        let mut s = Sequence::default();
        assert_eq!(s.data(u32::MAX - 1), Step::InOrder);
        assert_eq!(s.data(u32::MAX), Step::InOrder);
        assert_eq!(s.data(1), Step::InOrder, "0 is never used");
        assert_eq!(s.data(3), Step::Gap { from: 2, count: 1 });
        let mut s = Sequence::default();
        s.data(u32::MAX - 1);
        assert_eq!(
            s.data(2),
            Step::Gap {
                from: u32::MAX,
                count: 2
            }
        );
        assert_eq!(
            numbers(u32::MAX, 3).collect::<Vec<_>>(),
            vec![u32::MAX, 1, 2]
        );
    }

    #[test]
    fn a_numbering_that_starts_over_is_taken_as_it_is() {
        let mut s = Sequence::default();
        s.data(1_000_000);
        assert_eq!(s.data(1), Step::InOrder);
        assert_eq!(s.data(2), Step::InOrder);
    }
}
