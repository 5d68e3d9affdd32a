//! The UnixFS `Data` message carried inside dag-pb nodes, and the node shapes kubo writes.

use crate::dagpb::{PbLink, PbNode};
use crate::error::StoreError;
use crate::protobuf::{self, Fields, Value};

const FIELD_TYPE: u64 = 1;
const FIELD_DATA: u64 = 2;
const FIELD_FILESIZE: u64 = 3;
const FIELD_BLOCKSIZES: u64 = 4;
const FIELD_HASH_TYPE: u64 = 5;
const FIELD_FANOUT: u64 = 6;
const FIELD_MODE: u64 = 7;
const FIELD_MTIME: u64 = 8;

/// UnixFS node type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Raw,
    Directory,
    File,
    Metadata,
    Symlink,
    HamtShard,
}

impl DataType {
    fn code(self) -> u64 {
        match self {
            DataType::Raw => 0,
            DataType::Directory => 1,
            DataType::File => 2,
            DataType::Metadata => 3,
            DataType::Symlink => 4,
            DataType::HamtShard => 5,
        }
    }

    fn from_code(code: u64) -> Option<DataType> {
        Some(match code {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return None,
        })
    }

    /// Human name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Raw | DataType::File => "file",
            DataType::Directory => "directory",
            DataType::Metadata => "metadata node",
            DataType::Symlink => "symlink",
            DataType::HamtShard => "HAMT-sharded directory",
        }
    }
}

/// The UnixFS `Data` protobuf message (proto2; `mtime` is accepted and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixfsData {
    pub data_type: DataType,
    pub data: Option<Vec<u8>>,
    pub filesize: Option<u64>,
    /// Content bytes under each link of a file node, in link order.
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
    pub mode: Option<u64>,
}

impl UnixfsData {
    pub fn new(data_type: DataType) -> Self {
        UnixfsData {
            data_type,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
        }
    }

    /// Fields in field-number order, blocksizes unpacked, as go-unixfs writes them.
    pub fn encode(&self) -> Vec<u8> {
        let data_length = self.data.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(data_length + 16 + 4 * self.blocksizes.len());
        protobuf::put_varint_field(&mut out, FIELD_TYPE, self.data_type.code());
        if let Some(data) = &self.data {
            protobuf::put_bytes_field(&mut out, FIELD_DATA, data);
        }
        if let Some(filesize) = self.filesize {
            protobuf::put_varint_field(&mut out, FIELD_FILESIZE, filesize);
        }
        for &size in &self.blocksizes {
            protobuf::put_varint_field(&mut out, FIELD_BLOCKSIZES, size);
        }
        let optional = [
            (FIELD_HASH_TYPE, self.hash_type),
            (FIELD_FANOUT, self.fanout),
            (FIELD_MODE, self.mode),
        ];
        for (number, value) in optional {
            if let Some(value) = value {
                protobuf::put_varint_field(&mut out, number, value);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<UnixfsData, StoreError> {
        let invalid = |reason| StoreError::UnixfsInvalid { reason };
        let mut data_type = None;
        let mut message = UnixfsData::new(DataType::Raw);
        for field in Fields::new(bytes) {
            let (number, value) = field.map_err(invalid)?;
            match number {
                FIELD_TYPE => {
                    let code = value.varint().map_err(invalid)?;
                    data_type = Some(DataType::from_code(code).ok_or(invalid("unknown type"))?);
                }
                FIELD_DATA => message.data = Some(value.bytes().map_err(invalid)?.to_vec()),
                FIELD_FILESIZE => message.filesize = Some(value.varint().map_err(invalid)?),
                FIELD_BLOCKSIZES => decode_blocksizes(value, &mut message.blocksizes)?,
                FIELD_HASH_TYPE => message.hash_type = Some(value.varint().map_err(invalid)?),
                FIELD_FANOUT => message.fanout = Some(value.varint().map_err(invalid)?),
                FIELD_MODE => message.mode = Some(value.varint().map_err(invalid)?),
                FIELD_MTIME => drop(value.bytes().map_err(invalid)?),
                _ => return Err(invalid("unknown field")),
            }
        }
        message.data_type = data_type.ok_or(invalid("missing type"))?;
        Ok(message)
    }
}

/// Blocksizes are written unpacked by go-unixfs, but a packed list is valid protobuf too.
fn decode_blocksizes(value: Value<'_>, out: &mut Vec<u64>) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::UnixfsInvalid { reason };
    match value {
        Value::Varint(size) => out.push(size),
        Value::Bytes(mut packed) => {
            while !packed.is_empty() {
                let (size, used) =
                    crate::varint::decode(packed, crate::varint::PROTOBUF_LENGTH_MAX)
                        .map_err(|_| invalid("malformed packed blocksizes"))?;
                out.push(size);
                packed = &packed[used..];
            }
        }
    }
    Ok(())
}

/// A file leaf as kubo writes it without raw leaves: type File, the bytes, and filesize.
pub(crate) fn file_leaf(chunk: &[u8]) -> PbNode {
    let mut message = UnixfsData::new(DataType::File);
    if !chunk.is_empty() {
        message.data = Some(chunk.to_vec());
    }
    message.filesize = Some(chunk.len() as u64);
    PbNode { links: Vec::new(), data: Some(message.encode()) }
}

/// An inner file node: links to the chunks below and the content size under each.
pub(crate) fn file_parent(links: Vec<PbLink>, blocksizes: Vec<u64>) -> PbNode {
    let mut message = UnixfsData::new(DataType::File);
    message.filesize = Some(blocksizes.iter().sum());
    message.blocksizes = blocksizes;
    PbNode { links, data: Some(message.encode()) }
}

/// A basic (unsharded) directory; links must already be sorted by name.
pub(crate) fn directory(links: Vec<PbLink>) -> PbNode {
    PbNode { links, data: Some(UnixfsData::new(DataType::Directory).encode()) }
}

pub(crate) fn symlink(target: &[u8]) -> PbNode {
    let mut message = UnixfsData::new(DataType::Symlink);
    message.data = Some(target.to_vec());
    PbNode { links: Vec::new(), data: Some(message.encode()) }
}

/// Decodes a dag-pb block and the UnixFS message inside it.
pub(crate) fn decode_node(block: &[u8]) -> Result<(PbNode, UnixfsData), StoreError> {
    let mut node = PbNode::decode(block)?;
    let data =
        node.data.take().ok_or(StoreError::UnixfsInvalid { reason: "dag-pb node has no data" })?;
    let message = UnixfsData::decode(&data)?;
    Ok((node, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut message = UnixfsData::new(DataType::File);
        message.filesize = Some(524_288);
        message.blocksizes = vec![262_144, 262_144];
        message.mode = Some(0o644);
        assert_eq!(UnixfsData::decode(&message.encode()).expect("decodes"), message);
    }

    #[test]
    fn empty_file_leaf_has_type_and_zero_filesize_only() {
        let leaf = file_leaf(b"");
        assert_eq!(leaf.encode(), [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
    }

    #[test]
    fn packed_blocksizes_are_accepted() {
        let bytes = [0x08, 0x02, 0x22, 0x03, 0x01, 0xac, 0x02];
        let message = UnixfsData::decode(&bytes).expect("decodes");
        assert_eq!(message.blocksizes, vec![1, 300]);
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for bad in [&[][..], &[0x08, 0x09], &[0x10, 0x01], &[0x48, 0x01]] {
            assert!(
                matches!(UnixfsData::decode(bad), Err(StoreError::UnixfsInvalid { .. })),
                "{bad:?}"
            );
        }
    }
}
