//! AICPW node: the single sequencer of the embedded default, its mempool, durable block store in
//! redb, content store, and HTTP API.

pub mod api;
pub mod chain;
pub mod content;
pub mod db;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod service;
pub mod store_api;
pub mod web;

use aicpw_ledger::challenge::ChallengeParams;
use aicpw_ledger::{Genesis, Params};
use aicpw_types::{Amount, Keypair};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use chain::{Chain, ChainError};
pub use content::StorePolicy;
pub use service::Shared;

/// The chain id of dev networks.
pub const DEV_CHAIN_ID: &str = "aicpw-dev";
/// Dev accounts in the dev genesis, and what each holds.
pub const DEV_ACCOUNTS: u32 = 16;
pub const DEV_ACCOUNT_TOKENS: u64 = 1_000_000;

/// The dev genesis: deterministic, funded accounts (`Keypair::dev(0..DEV_ACCOUNTS)`), and
/// capacity challenges every minute, so a new node proves its compute within one.
pub fn dev_genesis() -> Genesis {
    let challenges = ChallengeParams::every(ChallengeParams::INTERVAL_MS_DEV);
    Genesis {
        chain_id: DEV_CHAIN_ID.into(),
        params: Params { challenges, ..Params::default() },
        accounts: (0..DEV_ACCOUNTS)
            .map(|i| (Keypair::dev(i).account(), Amount::tokens(DEV_ACCOUNT_TOKENS)))
            .collect(),
    }
}

pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// A genesis for a new data directory; `None` requires an existing chain.
    pub genesis: Option<Genesis>,
    /// The account that receives fees for the blocks this node makes.
    pub proposer: Keypair,
    /// What the content store takes, and from whom.
    pub store: StorePolicy,
    /// Connections one client address may hold at once (`server::CONNECTIONS_PER_ADDRESS_MAX`
    /// by default; more where many agents share one address, as on one machine).
    pub connections_per_address: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// A node that is open and listening but not yet serving: `local_addr` is known (port 0 works).
pub struct Bound {
    pub shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    connections_per_address: usize,
}

impl Bound {
    pub async fn open(config: NodeConfig) -> Result<Bound, NodeError> {
        let chain = Chain::open(&config.data_dir, config.genesis.as_ref())
            .map_err(service::ServiceError::from)?;
        let content = content::Content::open(&config.data_dir, config.store)
            .map_err(service::ServiceError::from)?;
        let shared = Shared::new(chain, content, config.proposer.account());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| NodeError::Listen { addr: config.listen, source })?;
        Ok(Bound { shared, listener, connections_per_address: config.connections_per_address })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves the API and makes blocks until `shutdown` resolves or block production fails.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let producer = tokio::spawn(self.shared.clone().run_producer());
        tokio::select! {
            served = self.serve_api(shutdown) => served,
            produced = producer => match produced {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(service::ServiceError::from(e).into()),
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            },
        }
    }

    /// Serves the API and collects content without making blocks: a validator's node, whose
    /// blocks come from consensus ([`Shared::commit_finalized`]).
    pub async fn serve_api(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let collector = tokio::spawn(content::run_collector(self.shared.clone()));
        let _stop_collector = AbortOnDrop(collector);
        let app = api::router(self.shared.clone());
        server::serve(self.listener, app, self.connections_per_address, shutdown)
            .await
            .map_err(NodeError::Serve)
    }
}

/// Stops a background task when the node stops serving.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
