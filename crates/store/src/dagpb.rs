//! dag-pb nodes (`PBNode`/`PBLink`), encoded the way the dag-pb spec and kubo require:
//! links before data, link fields in order Hash, Name, Tsize.

use crate::cid::Cid;
use crate::error::StoreError;
use crate::protobuf::{self, Fields};

const NODE_DATA: u64 = 1;
const NODE_LINKS: u64 = 2;
const LINK_HASH: u64 = 1;
const LINK_NAME: u64 = 2;
const LINK_TSIZE: u64 = 3;

/// A link from a dag-pb node to another block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    pub hash: Cid,
    /// Entry name in a directory; kubo writes `Some("")` for file chunks.
    pub name: Option<String>,
    /// Cumulative size of the target: its block plus everything below it.
    pub tsize: Option<u64>,
}

/// A dag-pb node: links, then optional opaque data (UnixFS puts its message here).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode {
    pub links: Vec<PbLink>,
    pub data: Option<Vec<u8>>,
}

impl PbLink {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        protobuf::put_bytes_field(&mut out, LINK_HASH, &self.hash.to_bytes());
        if let Some(name) = &self.name {
            protobuf::put_bytes_field(&mut out, LINK_NAME, name.as_bytes());
        }
        if let Some(tsize) = self.tsize {
            protobuf::put_varint_field(&mut out, LINK_TSIZE, tsize);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<PbLink, StoreError> {
        let invalid = |reason| StoreError::DagPbInvalid { reason };
        let mut hash = None;
        let mut name = None;
        let mut tsize = None;
        let mut last_field = 0;
        for field in Fields::new(bytes) {
            let (number, value) = field.map_err(invalid)?;
            if number <= last_field {
                return Err(invalid("link fields out of order or repeated"));
            }
            last_field = number;
            match number {
                LINK_HASH => hash = Some(Cid::from_bytes(value.bytes().map_err(invalid)?)?),
                LINK_NAME => {
                    let raw = value.bytes().map_err(invalid)?.to_vec();
                    name = Some(
                        String::from_utf8(raw).map_err(|_| invalid("link name is not UTF-8"))?,
                    );
                }
                LINK_TSIZE => tsize = Some(value.varint().map_err(invalid)?),
                _ => return Err(invalid("unknown link field")),
            }
        }
        let hash = hash.ok_or(invalid("link without a hash"))?;
        Ok(PbLink { hash, name, tsize })
    }
}

impl PbNode {
    /// Canonical dag-pb bytes.
    pub fn encode(&self) -> Vec<u8> {
        let data_length = self.data.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(self.links.len() * 48 + data_length + 8);
        for link in &self.links {
            protobuf::put_bytes_field(&mut out, NODE_LINKS, &link.encode());
        }
        if let Some(data) = &self.data {
            protobuf::put_bytes_field(&mut out, NODE_DATA, data);
        }
        out
    }

    /// Strict decoding: rejects unknown fields, data before links and repeated data.
    pub fn decode(bytes: &[u8]) -> Result<PbNode, StoreError> {
        let invalid = |reason| StoreError::DagPbInvalid { reason };
        let mut node = PbNode::default();
        for field in Fields::new(bytes) {
            let (number, value) = field.map_err(invalid)?;
            match number {
                NODE_LINKS if node.data.is_some() => return Err(invalid("link after data")),
                NODE_LINKS => node.links.push(PbLink::decode(value.bytes().map_err(invalid)?)?),
                NODE_DATA if node.data.is_some() => return Err(invalid("repeated data")),
                NODE_DATA => node.data = Some(value.bytes().map_err(invalid)?.to_vec()),
                _ => return Err(invalid("unknown node field")),
            }
        }
        Ok(node)
    }
}

/// Cumulative size of a node: its own bytes plus the cumulative sizes it links to.
pub(crate) fn cumulative_size(block_length: usize, links: &[PbLink]) -> u64 {
    links.iter().fold(block_length as u64, |sum, link| sum.saturating_add(link.tsize.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{Codec, Version};

    fn some_cid(byte: u8) -> Cid {
        Cid::new(Version::V0, Codec::DagPb, [byte; 32]).expect("v0 dag-pb is valid")
    }

    #[test]
    fn node_round_trips_with_links_before_data() {
        let node = PbNode {
            links: vec![
                PbLink { hash: some_cid(1), name: Some(String::new()), tsize: Some(7) },
                PbLink { hash: some_cid(2).to_v1(), name: Some("a.txt".into()), tsize: None },
            ],
            data: Some(vec![8, 1]),
        };
        let bytes = node.encode();
        assert_eq!(bytes[0], 0x12, "links come first");
        assert_eq!(PbNode::decode(&bytes).expect("decodes"), node);
    }

    #[test]
    fn empty_directory_bytes_match_the_spec() {
        let node = PbNode { links: vec![], data: Some(vec![0x08, 0x01]) };
        assert_eq!(node.encode(), [0x0a, 0x02, 0x08, 0x01]);
    }

    #[test]
    fn non_canonical_nodes_are_rejected() {
        let data_then_link = [0x0a, 0x00, 0x12, 0x00];
        assert!(matches!(PbNode::decode(&data_then_link), Err(StoreError::DagPbInvalid { .. })));
        let repeated_data = [0x0a, 0x00, 0x0a, 0x00];
        assert!(matches!(PbNode::decode(&repeated_data), Err(StoreError::DagPbInvalid { .. })));
        let link_without_hash = [0x12, 0x02, 0x18, 0x01];
        assert!(matches!(PbNode::decode(&link_without_hash), Err(StoreError::DagPbInvalid { .. })));
        let unknown_field = [0x18, 0x01];
        assert!(matches!(PbNode::decode(&unknown_field), Err(StoreError::DagPbInvalid { .. })));
    }
}
