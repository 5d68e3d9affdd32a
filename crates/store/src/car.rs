//! CARv1 archives: a DAG-CBOR header `{roots, version: 1}`, then sections of
//! `varint(length) | CID bytes | block`. Export walks a DAG depth-first from its root,
//! each block once; import checks every block against its CID and that every root arrived.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufReader, ErrorKind, Read, Write};

use crate::block::{BlockSink, BlockSource};
use crate::blockstore::Store;
use crate::cid::{Cid, Codec};
use crate::dagpb::PbNode;
use crate::error::{Result, StoreError};
use crate::limits::{
    BLOCK_SIZE_MAX, CAR_BLOCKS_MAX, CAR_HEADER_SIZE_MAX, CAR_ROOTS_MAX, CAR_SECTION_SIZE_MAX,
    DAG_DEPTH_MAX,
};
use crate::varint::{self, VarintError};

const CBOR_UNSIGNED: u8 = 0;
const CBOR_BYTES: u8 = 2;
const CBOR_TEXT: u8 = 3;
const CBOR_ARRAY: u8 = 4;
const CBOR_MAP: u8 = 5;
const CBOR_TAG: u8 = 6;
/// The CBOR tag IPLD uses for links; its payload is a 0x00 byte then the binary CID.
const CID_TAG: u64 = 42;

/// The decoded CAR header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarHeader {
    pub version: u64,
    pub roots: Vec<Cid>,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarSummary {
    pub blocks: u64,
    /// Bytes of all blocks (not counting framing).
    pub block_bytes: u64,
}

/// DAG-CBOR encoding of `{"roots": [...], "version": 1}`; keys in DAG-CBOR order
/// (shorter first), CIDs as tag 42 over `0x00 | CID bytes`.
fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 40 * roots.len());
    cbor_head(&mut out, CBOR_MAP, 2);
    cbor_head(&mut out, CBOR_TEXT, 5);
    out.extend_from_slice(b"roots");
    cbor_head(&mut out, CBOR_ARRAY, roots.len() as u64);
    for root in roots {
        let bytes = root.to_bytes();
        cbor_head(&mut out, CBOR_TAG, CID_TAG);
        cbor_head(&mut out, CBOR_BYTES, bytes.len() as u64 + 1);
        out.push(0x00);
        out.extend_from_slice(&bytes);
    }
    cbor_head(&mut out, CBOR_TEXT, 7);
    out.extend_from_slice(b"version");
    cbor_head(&mut out, CBOR_UNSIGNED, 1);
    out
}

/// A CBOR head in its shortest form, as DAG-CBOR requires.
fn cbor_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

/// Writes the header for a CAR with these roots.
pub fn write_header<W: Write>(writer: &mut W, roots: &[Cid]) -> Result<()> {
    let header = encode_header(roots);
    let mut out = Vec::with_capacity(header.len() + 2);
    varint::encode(header.len() as u64, &mut out);
    out.extend_from_slice(&header);
    writer.write_all(&out).map_err(StoreError::WriteOutput)
}

/// Writes one section: `varint(length) | CID | block`.
pub fn write_section<W: Write>(writer: &mut W, cid: &Cid, block: &[u8]) -> Result<()> {
    let cid_bytes = cid.to_bytes();
    let mut prefix = Vec::with_capacity(cid_bytes.len() + 4);
    varint::encode((cid_bytes.len() + block.len()) as u64, &mut prefix);
    prefix.extend_from_slice(&cid_bytes);
    writer
        .write_all(&prefix)
        .and_then(|()| writer.write_all(block))
        .map_err(StoreError::WriteOutput)
}

/// Reads and checks a CARv1 header. Never panics, whatever the input.
pub fn read_header<R: Read>(reader: &mut R) -> Result<CarHeader> {
    let invalid = |reason| StoreError::CarHeaderInvalid { reason };
    let length = match read_varint(reader)? {
        Ok(Some(length)) => length,
        Ok(None) | Err(VarintError::Truncated) => return Err(StoreError::CarTruncated),
        Err(_) => return Err(invalid("malformed length varint")),
    };
    if length == 0 {
        return Err(invalid("empty header"));
    }
    if length > CAR_HEADER_SIZE_MAX as u64 {
        return Err(StoreError::CarHeaderTooLarge { size: length, max: CAR_HEADER_SIZE_MAX });
    }
    let mut bytes = vec![0u8; length as usize];
    read_exact(reader, &mut bytes)?;
    decode_header(&bytes)
}

fn decode_header(bytes: &[u8]) -> Result<CarHeader> {
    let invalid = |reason| StoreError::CarHeaderInvalid { reason };
    let mut cbor = CborReader { bytes };
    let entries = cbor.expect_major(CBOR_MAP)?;
    let mut version = None;
    let mut roots = None;
    for _ in 0..entries {
        let key = cbor.text()?;
        match key {
            b"version" if version.is_none() => version = Some(cbor.expect_major(CBOR_UNSIGNED)?),
            b"roots" if roots.is_none() => roots = Some(cbor.roots()?),
            b"version" | b"roots" => return Err(invalid("repeated key")),
            _ => return Err(invalid("unknown key")),
        }
    }
    if !cbor.bytes.is_empty() {
        return Err(invalid("trailing bytes after the header map"));
    }
    let version = version.ok_or(invalid("missing version"))?;
    if version != 1 {
        return Err(StoreError::CarVersionUnsupported { version });
    }
    let roots = roots.ok_or(invalid("missing roots"))?;
    Ok(CarHeader { version, roots })
}

/// Just enough of a strict DAG-CBOR reader for the CAR header.
struct CborReader<'a> {
    bytes: &'a [u8],
}

impl<'a> CborReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8]> {
        if count > self.bytes.len() {
            return Err(StoreError::CarHeaderInvalid { reason: "CBOR item runs past the end" });
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    /// Reads a head; only definite lengths in their shortest form are accepted.
    fn head(&mut self) -> Result<(u8, u64)> {
        let invalid = |reason| StoreError::CarHeaderInvalid { reason };
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        let (argument, minimum) = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => (u64::from(self.take(1)?[0]), 24),
            25 => (self.take(2)?.iter().fold(0, |sum, &byte| sum << 8 | u64::from(byte)), 0x100),
            26 => (self.take(4)?.iter().fold(0, |sum, &byte| sum << 8 | u64::from(byte)), 0x1_0000),
            27 => (
                self.take(8)?.iter().fold(0, |sum, &byte| sum << 8 | u64::from(byte)),
                0x1_0000_0000,
            ),
            _ => return Err(invalid("indefinite or reserved CBOR length")),
        };
        if argument < minimum {
            return Err(invalid("CBOR length not in its shortest form"));
        }
        Ok((major, argument))
    }

    fn expect_major(&mut self, major: u8) -> Result<u64> {
        match self.head()? {
            (found, argument) if found == major => Ok(argument),
            _ => Err(StoreError::CarHeaderInvalid { reason: "unexpected CBOR type" }),
        }
    }

    fn sized(&mut self, major: u8) -> Result<&'a [u8]> {
        let length = self.expect_major(major)?;
        let length = usize::try_from(length)
            .map_err(|_| StoreError::CarHeaderInvalid { reason: "huge length" })?;
        self.take(length)
    }

    fn text(&mut self) -> Result<&'a [u8]> {
        self.sized(CBOR_TEXT)
    }

    fn roots(&mut self) -> Result<Vec<Cid>> {
        let invalid = |reason| StoreError::CarHeaderInvalid { reason };
        let count = self.expect_major(CBOR_ARRAY)?;
        if count > CAR_ROOTS_MAX as u64 {
            return Err(StoreError::CarTooManyRoots { max: CAR_ROOTS_MAX });
        }
        let mut roots = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if self.expect_major(CBOR_TAG)? != CID_TAG {
                return Err(invalid("root is not tagged as a CID"));
            }
            let bytes = self.sized(CBOR_BYTES)?;
            let cid_bytes =
                bytes.strip_prefix(&[0x00]).ok_or(invalid("CID lacks the 0x00 prefix"))?;
            roots.push(
                Cid::from_bytes(cid_bytes).map_err(|_| invalid("root is not a supported CID"))?,
            );
        }
        Ok(roots)
    }
}

fn read_varint<R: Read>(reader: &mut R) -> Result<Result<Option<u64>, VarintError>> {
    varint::read_multiformat(reader).map_err(StoreError::ReadInput)
}

fn read_exact<R: Read>(reader: &mut R, buffer: &mut [u8]) -> Result<()> {
    reader.read_exact(buffer).map_err(|error| match error.kind() {
        ErrorKind::UnexpectedEof => StoreError::CarTruncated,
        _ => StoreError::ReadInput(error),
    })
}

/// Reads the next section and checks the block against its CID; `None` at a clean end.
/// Never panics, whatever the input.
pub fn read_section<R: Read>(reader: &mut R) -> Result<Option<(Cid, Vec<u8>)>> {
    let invalid = |reason| StoreError::CarSectionInvalid { reason };
    let length = match read_varint(reader)? {
        Ok(None) => return Ok(None),
        Ok(Some(length)) => length,
        Err(VarintError::Truncated) => return Err(StoreError::CarTruncated),
        Err(_) => return Err(invalid("malformed length varint")),
    };
    if length == 0 {
        return Err(invalid("empty section"));
    }
    if length > CAR_SECTION_SIZE_MAX as u64 {
        return Err(StoreError::CarSectionTooLarge { size: length, max: CAR_SECTION_SIZE_MAX });
    }
    let mut block = vec![0u8; length as usize];
    read_exact(reader, &mut block)?;
    let (cid, used) = Cid::read_prefix(&block)
        .map_err(|_| invalid("section does not start with a supported CID"))?;
    block.drain(..used);
    if block.len() > BLOCK_SIZE_MAX {
        return Err(StoreError::BlockTooLarge { size: block.len() as u64, max: BLOCK_SIZE_MAX });
    }
    if !cid.matches(&block) {
        return Err(StoreError::CarBlockHashMismatch { cid });
    }
    Ok(Some((cid, block)))
}

/// Writes the DAG under `root` as a CAR: depth-first, links in order, each block once.
pub fn export<B: BlockSource, W: Write>(
    source: &B,
    root: &Cid,
    mut writer: W,
) -> Result<CarSummary> {
    write_header(&mut writer, &[*root])?;
    let mut summary = CarSummary { blocks: 0, block_bytes: 0 };
    let mut seen = HashSet::new();
    let mut pending = vec![(*root, 0usize)];
    while let Some((cid, depth)) = pending.pop() {
        if !seen.insert(cid) {
            continue;
        }
        if depth > DAG_DEPTH_MAX {
            return Err(StoreError::DagTooDeep { max: DAG_DEPTH_MAX });
        }
        if summary.blocks == CAR_BLOCKS_MAX {
            return Err(StoreError::CarTooManyBlocks { max: CAR_BLOCKS_MAX });
        }
        let block = source.get_block(&cid)?;
        write_section(&mut writer, &cid, &block)?;
        summary.blocks += 1;
        summary.block_bytes += block.len() as u64;
        if cid.codec() == Codec::DagPb {
            let node = PbNode::decode(&block)?;
            let children = node.links.iter().rev().filter(|link| !seen.contains(&link.hash));
            pending.extend(children.map(|link| (link.hash, depth + 1)));
        }
    }
    writer.flush().map_err(StoreError::WriteOutput)?;
    Ok(summary)
}

/// Reads a whole CAR into `sink`; returns its header. Fails on the first bad block, on a
/// root that never arrived and on any limit. Blocks before a failure stay in the sink:
/// each one was checked against its CID, so they are valid content, just unreferenced.
pub fn import<R: Read, S: BlockSink>(reader: R, sink: &mut S) -> Result<CarHeader> {
    let mut reader = BufReader::new(reader);
    let header = read_header(&mut reader)?;
    let mut missing: BTreeSet<Cid> = header.roots.iter().copied().collect();
    let mut blocks = 0u64;
    while let Some((cid, block)) = read_section(&mut reader)? {
        blocks += 1;
        if blocks > CAR_BLOCKS_MAX {
            return Err(StoreError::CarTooManyBlocks { max: CAR_BLOCKS_MAX });
        }
        sink.put_block(&cid, &block)?;
        missing.remove(&cid);
    }
    match missing.first() {
        Some(cid) => Err(StoreError::CarRootMissing { cid: *cid }),
        None => Ok(header),
    }
}

impl Store {
    /// Writes the DAG under `root` to `writer` as a CARv1 file.
    pub fn export_car<W: Write>(&self, root: &Cid, writer: W) -> Result<CarSummary> {
        export(self, root, writer)
    }

    /// Imports every block of a CARv1 file; returns its roots once all are present.
    pub fn import_car<R: Read>(&self, reader: R) -> Result<Vec<Cid>> {
        let mut upload = self.upload();
        let roots = upload.import_car(reader)?;
        upload.commit()?;
        Ok(roots)
    }
}
