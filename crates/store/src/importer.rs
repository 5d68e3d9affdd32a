//! Builds a file's DAG exactly like `ipfs add`: fixed-size chunks, balanced layout.
//!
//! Streaming: the builder holds one chunk (and its encoded leaf) and, per level of the tree,
//! the links of the node being filled; it never holds the whole file.

use std::io::{ErrorKind, Read, Write};

use crate::block::BlockSink;
use crate::cid::{Cid, Codec, Version};
use crate::dagpb::{self, PbLink};
use crate::error::{Result, StoreError};
use crate::limits::{
    BLOCK_SIZE_MAX, CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MAX, DAG_DEPTH_MAX, FILE_NODE_LINKS_DEFAULT,
    FILE_NODE_LINKS_MAX, FILE_SIZE_MAX,
};
use crate::unixfs;

/// How to turn bytes into a DAG. `AddOptions::default()` is `ipfs add` with no flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOptions {
    /// `--cid-version`: CID version of dag-pb nodes (files, directories, symlinks).
    pub cid_version: Version,
    /// `--raw-leaves`: `None` follows kubo (raw leaves exactly when `cid_version` is V1).
    pub raw_leaves: Option<bool>,
    /// `--chunker=size-N`.
    pub chunk_size: usize,
    /// Links per file node in the balanced layout (kubo: 174).
    pub file_node_links: usize,
    /// `--hidden`: include entries whose name starts with `.` when adding a directory.
    pub include_hidden: bool,
}

impl Default for AddOptions {
    fn default() -> Self {
        AddOptions {
            cid_version: Version::V0,
            raw_leaves: None,
            chunk_size: CHUNK_SIZE_DEFAULT,
            file_node_links: FILE_NODE_LINKS_DEFAULT,
            include_hidden: false,
        }
    }
}

impl AddOptions {
    /// `ipfs add --cid-version=1` (which implies raw leaves).
    pub fn cid_v1() -> Self {
        AddOptions { cid_version: Version::V1, ..AddOptions::default() }
    }

    /// The `ipfs add` defaults of `cid`'s version: what a file got by that CID is hashed with
    /// to check it.
    pub fn of(cid: &Cid) -> Self {
        match cid.version() {
            Version::V0 => AddOptions::default(),
            Version::V1 => AddOptions::cid_v1(),
        }
    }

    /// Whether leaves are raw blocks (codec raw, CIDv1) rather than UnixFS dag-pb nodes.
    pub fn uses_raw_leaves(&self) -> bool {
        self.raw_leaves.unwrap_or(self.cid_version == Version::V1)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |reason| Err(StoreError::OptionInvalid { reason });
        if self.chunk_size == 0 || self.chunk_size > CHUNK_SIZE_MAX {
            return invalid("chunk size must be between 1 byte and CHUNK_SIZE_MAX");
        }
        if self.file_node_links < 2 || self.file_node_links > FILE_NODE_LINKS_MAX {
            return invalid("links per file node must be between 2 and FILE_NODE_LINKS_MAX");
        }
        Ok(())
    }
}

/// What a parent needs to link to a built node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Built {
    pub cid: Cid,
    /// File bytes under the node (UnixFS `blocksizes` entry in the parent).
    pub content_size: u64,
    /// Block bytes under the node, itself included (link `Tsize`).
    pub cumulative_size: u64,
}

/// Encodes a dag-pb node, checks its size, hands it to the sink.
pub(crate) fn put_dag_pb<S: BlockSink>(
    sink: &mut S,
    version: Version,
    node: &dagpb::PbNode,
) -> Result<(Cid, usize)> {
    let block = node.encode();
    if block.len() > BLOCK_SIZE_MAX {
        return Err(StoreError::BlockTooLarge { size: block.len() as u64, max: BLOCK_SIZE_MAX });
    }
    let cid = Cid::for_block(version, Codec::DagPb, &block)?;
    sink.put_block(&cid, &block)?;
    Ok((cid, block.len()))
}

/// Reads fixed-size chunks, looking one byte ahead so it knows whether more follow
/// without buffering a second chunk.
struct Chunker<R> {
    reader: R,
    chunk_size: usize,
    lookahead: Option<u8>,
    total: u64,
    size_max: u64,
}

impl<R: Read> Chunker<R> {
    fn new(reader: R, chunk_size: usize, size_max: u64) -> Result<Self> {
        let mut chunker = Chunker { reader, chunk_size, lookahead: None, total: 0, size_max };
        chunker.lookahead = chunker.read_byte()?;
        Ok(chunker)
    }

    fn is_done(&self) -> bool {
        self.lookahead.is_none()
    }

    fn read_byte(&mut self) -> Result<Option<u8>> {
        let mut byte = [0u8; 1];
        Ok((self.fill(&mut byte)? == 1).then_some(byte[0]))
    }

    /// Reads until `buffer` is full or the input ends; returns the bytes read.
    fn fill(&mut self, buffer: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(StoreError::ReadInput(error)),
            }
        }
        Ok(filled)
    }

    /// Fills `chunk` with the next chunk; call only when `!is_done()`.
    fn next_chunk(&mut self, chunk: &mut Vec<u8>) -> Result<()> {
        chunk.clear();
        chunk.extend(self.lookahead.take());
        chunk.resize(self.chunk_size, 0);
        let filled = 1 + self.fill(&mut chunk[1..])?;
        chunk.truncate(filled);
        self.total += filled as u64;
        if self.total > self.size_max {
            return Err(StoreError::FileTooLarge { max: self.size_max });
        }
        if filled == self.chunk_size {
            self.lookahead = self.read_byte()?;
        }
        Ok(())
    }
}

/// Builds one file's DAG. Mirrors kubo's balanced layout: the first leaf is the root;
/// whenever the root is full it becomes the first child of a root one level deeper.
struct FileBuilder<'a, R, S> {
    chunker: Chunker<R>,
    sink: &'a mut S,
    options: &'a AddOptions,
    chunk: Vec<u8>,
}

impl<R: Read, S: BlockSink> FileBuilder<'_, R, S> {
    fn build(&mut self) -> Result<Built> {
        if self.chunker.is_done() {
            return self.leaf_from(&[]);
        }
        let mut root = self.leaf()?;
        let mut depth = 1;
        while !self.chunker.is_done() {
            if depth > DAG_DEPTH_MAX {
                return Err(StoreError::DagTooDeep { max: DAG_DEPTH_MAX });
            }
            let mut children = vec![root];
            self.fill(&mut children, depth)?;
            root = self.parent(children)?;
            depth += 1;
        }
        Ok(root)
    }

    /// Adds children of the given depth until the node is full or the input ends.
    fn fill(&mut self, children: &mut Vec<Built>, depth: usize) -> Result<()> {
        while children.len() < self.options.file_node_links && !self.chunker.is_done() {
            let child = if depth == 1 {
                self.leaf()?
            } else {
                let mut grandchildren = Vec::with_capacity(self.options.file_node_links);
                self.fill(&mut grandchildren, depth - 1)?;
                self.parent(grandchildren)?
            };
            children.push(child);
        }
        Ok(())
    }

    fn leaf(&mut self) -> Result<Built> {
        let mut chunk = std::mem::take(&mut self.chunk);
        let result = self.chunker.next_chunk(&mut chunk).and_then(|()| self.leaf_from(&chunk));
        self.chunk = chunk;
        result
    }

    fn leaf_from(&mut self, chunk: &[u8]) -> Result<Built> {
        let content_size = chunk.len() as u64;
        if self.options.uses_raw_leaves() {
            let cid = Cid::for_block(Version::V1, Codec::Raw, chunk)?;
            self.sink.put_block(&cid, chunk)?;
            return Ok(Built { cid, content_size, cumulative_size: content_size });
        }
        let node = unixfs::file_leaf(chunk);
        let (cid, length) = put_dag_pb(self.sink, self.options.cid_version, &node)?;
        Ok(Built { cid, content_size, cumulative_size: length as u64 })
    }

    fn parent(&mut self, children: Vec<Built>) -> Result<Built> {
        let links: Vec<PbLink> = children
            .iter()
            .map(|child| PbLink {
                hash: child.cid,
                name: Some(String::new()),
                tsize: Some(child.cumulative_size),
            })
            .collect();
        let blocksizes: Vec<u64> = children.iter().map(|child| child.content_size).collect();
        let content_size = blocksizes.iter().sum();
        let node = unixfs::file_parent(links, blocksizes);
        let (cid, length) = put_dag_pb(self.sink, self.options.cid_version, &node)?;
        let cumulative_size = dagpb::cumulative_size(length, &node.links);
        Ok(Built { cid, content_size, cumulative_size })
    }
}

/// Builds the DAG of the bytes `reader` yields and hands every block to `sink`.
pub(crate) fn import_file<R: Read, S: BlockSink>(
    reader: R,
    options: &AddOptions,
    sink: &mut S,
) -> Result<Built> {
    import_file_bounded(reader, options, sink, FILE_SIZE_MAX)
}

fn import_file_bounded<R: Read, S: BlockSink>(
    reader: R,
    options: &AddOptions,
    sink: &mut S,
    size_max: u64,
) -> Result<Built> {
    options.validate()?;
    let chunker = Chunker::new(reader, options.chunk_size, size_max)?;
    let mut builder =
        FileBuilder { chunker, sink, options, chunk: Vec::with_capacity(options.chunk_size) };
    builder.build()
}

/// Builds the DAG of `reader` into any block sink (for example [`crate::MemoryBlocks`]).
pub fn add_to_sink<R: Read, S: BlockSink>(
    reader: R,
    options: &AddOptions,
    sink: &mut S,
) -> Result<Cid> {
    Ok(import_file(reader, options, sink)?.cid)
}

/// The CID `ipfs add --only-hash` prints for these bytes; stores nothing.
pub fn cid_of_reader<R: Read>(reader: R, options: &AddOptions) -> Result<Cid> {
    Ok(import_file(reader, options, &mut crate::block::DiscardBlocks)?.cid)
}

/// Copies `reader` to `writer` and returns the CID of what went through (as
/// [`cid_of_reader`]): a file downloaded by CID is checked as it is written, in one pass.
pub fn cid_of_copy<R: Read, W: Write>(reader: R, writer: W, options: &AddOptions) -> Result<Cid> {
    cid_of_reader(Tee { reader, writer }, options)
}

/// Reads from `reader`, writing everything read to `writer` too.
struct Tee<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{DiscardBlocks, MemoryBlocks};

    #[test]
    fn a_copy_is_hashed_as_it_is_written() {
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for options in [AddOptions::default(), AddOptions::cid_v1()] {
            let mut copy = Vec::new();
            let cid = cid_of_copy(bytes.as_slice(), &mut copy, &options).expect("copies");
            assert_eq!(copy, bytes);
            assert_eq!(cid, cid_of_reader(bytes.as_slice(), &options).expect("hashes"));
            assert_eq!(AddOptions::of(&cid).cid_version, options.cid_version);
        }
    }

    #[test]
    fn files_over_the_size_limit_are_refused() {
        let options = AddOptions { chunk_size: 4, ..AddOptions::default() };
        let at_limit = import_file_bounded(&[7u8; 10][..], &options, &mut DiscardBlocks, 10);
        assert_eq!(at_limit.expect("10 bytes fit").content_size, 10);
        let over = import_file_bounded(&[7u8; 11][..], &options, &mut DiscardBlocks, 10);
        assert!(matches!(over, Err(StoreError::FileTooLarge { max: 10 })));
    }

    #[test]
    fn invalid_options_are_refused() {
        for options in [
            AddOptions { chunk_size: 0, ..AddOptions::default() },
            AddOptions { chunk_size: CHUNK_SIZE_MAX + 1, ..AddOptions::default() },
            AddOptions { file_node_links: 1, ..AddOptions::default() },
            AddOptions { file_node_links: FILE_NODE_LINKS_MAX + 1, ..AddOptions::default() },
        ] {
            let result = import_file(&b"x"[..], &options, &mut DiscardBlocks);
            assert!(matches!(result, Err(StoreError::OptionInvalid { .. })), "{options:?}");
        }
    }

    #[test]
    fn balanced_layout_grows_a_level_only_when_the_root_is_full() {
        // 2 links per node and 1-byte chunks make the shape easy to count:
        // 4 bytes fill two levels exactly; a fifth byte needs a third level.
        let options = AddOptions { chunk_size: 1, file_node_links: 2, ..AddOptions::default() };
        let mut four = MemoryBlocks::new();
        import_file(&b"abcd"[..], &options, &mut four).expect("builds");
        assert_eq!(four.len(), 4 + 2 + 1, "4 leaves, 2 parents, 1 root");
        let mut five = MemoryBlocks::new();
        import_file(&b"abcde"[..], &options, &mut five).expect("builds");
        // The fifth leaf hangs under a chain of one-link nodes down from the new root, as in kubo.
        assert_eq!(
            five.len(),
            5 + 2 + 1 + 2 + 1,
            "5 leaves, 2 full parents, old root, 2-node chain, root"
        );
    }

    #[test]
    fn input_errors_are_reported_not_swallowed() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let result = import_file(Failing, &AddOptions::default(), &mut DiscardBlocks);
        assert!(matches!(result, Err(StoreError::ReadInput(_))));
    }
}
