//! One historized tag in memory: its open chunk, the chunks on their way to the file, and
//! the rules that close a chunk. The intake (and a restart's replay) is the only writer;
//! readers lock the series table ([`Mems`]) briefly to copy what the file does not hold yet.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use uaedge_driver::{DataType, Quality, Value};

use super::chunk::ChunkEncoder;
use super::store::{ChunkKey, ChunkWrite, MAX_SPAN_US};

/// A chunk closes once it holds this many bytes: large enough that the 23-byte header
/// costs little; 100,000 open chunks then take up to about 100 MiB (80 MB measured with
/// `loadgen --scenario sim-100k --history`).
pub const CHUNK_BYTES: usize = 1024;

/// A chunk that is still growing.
#[derive(Debug, Clone)]
pub struct OpenChunk {
    pub key: ChunkKey,
    pub enc: ChunkEncoder,
    /// Bytes of its last checkpoint (0: none), which the file's count holds.
    pub stored_len: usize,
}

/// What a series holds in memory.
#[derive(Debug, Default)]
pub struct SeriesMem {
    pub open: Option<OpenChunk>,
    /// Chunks handed to the committer and not durable yet, with the commit carrying them.
    pub unsaved: Vec<(u64, ChunkWrite)>,
    /// Seq of the next chunk.
    pub next_seq: u32,
    /// The commit of the oldest sample that no stored chunk holds: the log must keep that
    /// record and every later one.
    pub dirty_since: Option<u64>,
    /// Where the last sample appended stands in the log: its commit, and how many samples
    /// of this series that commit's record holds up to and including it.
    pub pos: (u64, u32),
}

/// Every series' memory, indexed by series id (ids are dense). One lock for them all: the
/// intake takes it once per batch of samples. A lock per series cost two locked
/// instructions and a cache miss on its own allocation per sample, which at 100,000 tags
/// was most of the historian's CPU; side by side in one array the series of a device's
/// batch sit in order, where the prefetcher finds them. Readers take the lock to copy one
/// series, the committer to clear what became durable.
pub type Mems = Arc<Mutex<Vec<SeriesMem>>>;

/// Chunks closed while samples were appended, for the next batch.
pub type Closed = Vec<ChunkWrite>;

impl SeriesMem {
    /// Appends a sample received in (or, at replay, logged by) commit `commit`. A chunk
    /// closes before a sample that goes back in time, changes type, or would stretch it past
    /// [`MAX_SPAN_US`], and after the sample that fills it. Says whether the series became
    /// dirty (see [`DirtyQueue`]).
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &mut self,
        series: u32,
        commit: u64,
        time: i64,
        data_type: DataType,
        value: Option<&Value>,
        quality: Quality,
        closed: &mut Closed,
    ) -> bool {
        let data_type = value.map_or(data_type, Value::data_type);
        let pos = if self.pos.0 == commit {
            (commit, self.pos.1.saturating_add(1))
        } else {
            (commit, 1)
        };
        if let Some(open) = &mut self.open {
            let meta = open.enc.meta();
            let fits = time >= meta.last
                && time.saturating_sub(meta.first) <= MAX_SPAN_US
                && data_type == meta.data_type
                && open.enc.push(time, value, quality).is_ok();
            if fits {
                self.pos = pos;
                return self.after_push(commit, closed);
            }
            self.close(closed);
        }
        self.pos = pos;
        let Ok(enc) = ChunkEncoder::new(data_type, time, value, quality) else {
            return false;
        };
        let key = ChunkKey {
            series,
            first: time,
            seq: self.next_seq,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.open = Some(OpenChunk {
            key,
            enc,
            stored_len: 0,
        });
        self.after_push(commit, closed)
    }

    /// Whether the series became dirty with this sample.
    fn after_push(&mut self, commit: u64, closed: &mut Closed) -> bool {
        let became_dirty = self.dirty_since.is_none();
        self.dirty_since.get_or_insert(commit);
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.enc.byte_len() >= CHUNK_BYTES)
        {
            self.close(closed);
            return false;
        }
        became_dirty
    }

    /// Closes the open chunk into `closed`; every sample is in a handed-off chunk then.
    pub fn close(&mut self, closed: &mut Closed) {
        self.dirty_since = None;
        if let Some(open) = self.open.take() {
            closed.push(ChunkWrite {
                key: open.key,
                bytes: open.enc.to_bytes().into(),
                sealed: true,
                through: self.pos,
            });
        }
    }

    /// The open chunk as it stands, to be written as a checkpoint.
    pub fn checkpoint(&mut self) -> Option<ChunkWrite> {
        self.dirty_since = None;
        let pos = self.pos;
        self.open.as_mut().map(|open| {
            let bytes: std::sync::Arc<[u8]> = open.enc.to_bytes().into();
            open.stored_len = bytes.len();
            ChunkWrite {
                key: open.key,
                bytes,
                sealed: false,
                through: pos,
            }
        })
    }

    /// What a reader needs from memory: the chunks not in the file yet, newest last.
    pub fn unstored(&self) -> Vec<(ChunkKey, Arc<[u8]>)> {
        let mut out: Vec<_> = self
            .unsaved
            .iter()
            .map(|(_, w)| (w.key, w.bytes.clone()))
            .collect();
        if let Some(open) = &self.open {
            out.push((open.key, open.enc.to_bytes().into()));
        }
        out
    }
}

/// Series that became dirty, in the order they did (so in commit order): the front names
/// the oldest log record still needed. An entry goes stale when its series is written;
/// stale ones are skipped when they reach the front.
#[derive(Debug, Default)]
pub struct DirtyQueue {
    queue: VecDeque<(u64, u32)>,
}

impl DirtyQueue {
    pub fn push(&mut self, commit: u64, series: u32) {
        self.queue.push_back((commit, series));
    }

    /// The oldest live entry, dropping stale ones; `live(series, commit)` says whether the
    /// series is still dirty since that commit.
    pub fn front(&mut self, mut live: impl FnMut(u32, u64) -> bool) -> Option<(u64, u32)> {
        while let Some(&(commit, series)) = self.queue.front() {
            if live(series, commit) {
                return Some((commit, series));
            }
            self.queue.pop_front();
        }
        None
    }

    pub fn pop(&mut self) {
        self.queue.pop_front();
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn retain(&mut self, live: impl FnMut(&(u64, u32)) -> bool) {
        self.queue.retain(live);
    }
}
