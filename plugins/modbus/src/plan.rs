//! The read plan: which requests one poll sends, computed once when the driver is built.

use crate::address::Table;

/// What one tag needs read: `len` items (bits or registers) from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub tag: usize,
    pub unit: u8,
    pub table: Table,
    pub start: u16,
    pub len: u16,
}

impl Span {
    fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.len)
    }
}

/// One read request and the tags it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub unit: u8,
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// Tag indices, in address order.
    pub tags: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Unused items allowed between two tags for them still to share a request.
    pub max_gap: u16,
    pub max_registers: u16,
    pub max_bits: u16,
}

impl Limits {
    fn max_for(&self, table: Table) -> u32 {
        u32::from(if table.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        })
    }
}

/// Groups spans by (unit, table) and merges neighbours into blocks: a tag joins the current
/// block when the gap to it is at most `max_gap` and the block stays within the per-request
/// maximum. A span longer than the maximum gets a block of its own (validation refuses such
/// tags, so this only keeps the function total).
pub fn plan(spans: &[Span], limits: Limits) -> Vec<Block> {
    let mut sorted: Vec<Span> = spans.to_vec();
    sorted.sort_by_key(|s| (s.unit, s.table, s.start, s.len, s.tag));

    let mut blocks: Vec<Block> = Vec::new();
    let mut current: Option<(Block, u32)> = None;
    for span in sorted {
        if let Some((block, end)) = current.as_mut() {
            let same_group = block.unit == span.unit && block.table == span.table;
            let gap = u32::from(span.start).saturating_sub(*end);
            let new_end = (*end).max(span.end());
            let fits = new_end - u32::from(block.start) <= limits.max_for(span.table);
            if same_group && gap <= u32::from(limits.max_gap) && fits {
                *end = new_end;
                block.tags.push(span.tag);
                continue;
            }
        }
        if let Some(done) = current.take() {
            blocks.push(finish(done));
        }
        current = Some((
            Block {
                unit: span.unit,
                table: span.table,
                start: span.start,
                count: 0,
                tags: vec![span.tag],
            },
            span.end(),
        ));
    }
    if let Some(done) = current.take() {
        blocks.push(finish(done));
    }
    blocks
}

fn finish((mut block, end): (Block, u32)) -> Block {
    // Spans are validated to end at or before 65536, so the count fits.
    block.count = u16::try_from(end - u32::from(block.start)).unwrap_or(u16::MAX);
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use Table::*;

    const LIMITS: Limits = Limits {
        max_gap: 10,
        max_registers: 125,
        max_bits: 2000,
    };

    fn span(tag: usize, unit: u8, table: Table, start: u16, len: u16) -> Span {
        Span {
            tag,
            unit,
            table,
            start,
            len,
        }
    }

    fn shape(blocks: &[Block]) -> Vec<(u8, Table, u16, u16, Vec<usize>)> {
        blocks
            .iter()
            .map(|b| (b.unit, b.table, b.start, b.count, b.tags.clone()))
            .collect()
    }

    #[test]
    fn adjacent_tags_make_one_request() {
        let spans: Vec<Span> = (0..10)
            .map(|i| span(i, 1, HoldingRegister, 100 + i as u16, 1))
            .collect();
        assert_eq!(
            shape(&plan(&spans, LIMITS)),
            vec![(1, HoldingRegister, 100, 10, (0..10).collect())]
        );
    }

    #[test]
    fn gaps_up_to_max_gap_are_bridged() {
        let spans = [
            span(0, 1, HoldingRegister, 0, 2),
            span(1, 1, HoldingRegister, 12, 2), // gap 10: joins
            span(2, 1, HoldingRegister, 25, 1), // gap 11: new block
        ];
        assert_eq!(
            shape(&plan(&spans, LIMITS)),
            vec![
                (1, HoldingRegister, 0, 14, vec![0, 1]),
                (1, HoldingRegister, 25, 1, vec![2]),
            ]
        );
        let no_gap = Limits {
            max_gap: 0,
            ..LIMITS
        };
        assert_eq!(plan(&spans[..2], no_gap).len(), 2);
    }

    #[test]
    fn overlapping_and_unsorted_tags_share_blocks() {
        let spans = [
            span(0, 1, InputRegister, 10, 4),
            span(1, 1, InputRegister, 10, 1),
            span(2, 1, InputRegister, 8, 2),
            span(3, 1, InputRegister, 11, 1),
        ];
        assert_eq!(
            shape(&plan(&spans, LIMITS)),
            vec![(1, InputRegister, 8, 6, vec![2, 1, 0, 3])]
        );
    }

    #[test]
    fn requests_never_exceed_the_maximum() {
        let spans: Vec<Span> = (0..130)
            .map(|i| span(i, 1, HoldingRegister, i as u16 * 2, 2))
            .collect();
        let blocks = plan(&spans, LIMITS);
        assert_eq!(
            shape(&blocks)
                .into_iter()
                .map(|(_, _, s, c, t)| (s, c, t.len()))
                .collect::<Vec<_>>(),
            vec![(0, 124, 62), (124, 124, 62), (248, 12, 6)]
        );
        let small = Limits {
            max_registers: 4,
            ..LIMITS
        };
        let blocks = plan(&spans[..4], small);
        assert_eq!(blocks.iter().map(|b| b.count).collect::<Vec<_>>(), [4, 4]);

        let bits: Vec<Span> = (0..2500).map(|i| span(i, 1, Coil, i as u16, 1)).collect();
        let blocks = plan(&bits, LIMITS);
        assert_eq!(
            blocks
                .iter()
                .map(|b| (b.start, b.count))
                .collect::<Vec<_>>(),
            [(0, 2000), (2000, 500)]
        );
    }

    #[test]
    fn units_and_tables_never_mix() {
        let spans = [
            span(0, 1, HoldingRegister, 0, 1),
            span(1, 2, HoldingRegister, 1, 1),
            span(2, 1, InputRegister, 1, 1),
            span(3, 1, Coil, 0, 1),
            span(4, 1, DiscreteInput, 0, 1),
            span(5, 1, HoldingRegister, 2, 1),
            span(6, 2, HoldingRegister, 0, 1),
        ];
        assert_eq!(
            shape(&plan(&spans, LIMITS)),
            vec![
                (1, Coil, 0, 1, vec![3]),
                (1, DiscreteInput, 0, 1, vec![4]),
                (1, InputRegister, 1, 1, vec![2]),
                (1, HoldingRegister, 0, 3, vec![0, 5]),
                (2, HoldingRegister, 0, 2, vec![6, 1]),
            ]
        );
    }

    #[test]
    fn the_last_register_is_reachable() {
        let spans = [span(0, 1, HoldingRegister, 65532, 4)];
        assert_eq!(
            shape(&plan(&spans, LIMITS)),
            vec![(1, HoldingRegister, 65532, 4, vec![0])]
        );
    }
}
