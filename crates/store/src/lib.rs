//! Content-addressed blobs with the CIDs `ipfs add` gives, stored on disk, moved as CAR files.

pub mod block;
pub mod blockstore;
pub mod car;
pub mod cid;
pub mod dagpb;
mod directory;
pub mod error;
mod exporter;
mod importer;
pub mod limits;
mod protobuf;
pub mod unixfs;
mod varint;

pub use block::{BlockSink, BlockSource, DiscardBlocks, MemoryBlocks};
pub use blockstore::{Collected, Store, Upload};
pub use car::{CarHeader, CarSummary};
pub use cid::{Cid, Codec, Version};
pub use directory::cid_of_path;
pub use error::{Result, StoreError};
pub use exporter::{read_from_source, EntryKind, Stat};
pub use importer::{add_to_sink, cid_of_copy, cid_of_reader, AddOptions};
pub use limits::*;
