//! A real node in process (HTTP API and redb in a temporary directory) for the tests that
//! talk to one.

use aicpw_ledger::challenge::ChallengeParams;
use aicpw_node::{Bound, NodeConfig};
use aicpw_types::Keypair;

pub struct TestNode {
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub fn start(challenges: ChallengeParams) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut genesis = aicpw_node::dev_genesis();
        genesis.params.challenges = challenges;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = NodeConfig {
            data_dir: dir.path().join("node"),
            listen: "127.0.0.1:0".parse().expect("address"),
            genesis: Some(genesis),
            proposer: Keypair::dev(15),
            store: aicpw_node::StorePolicy::default(),
            connections_per_address: aicpw_node::server::CONNECTIONS_PER_ADDRESS_MAX,
        };
        let bound = runtime.block_on(Bound::open(config)).expect("node opens");
        let url = format!("http://{}", bound.local_addr().expect("bound"));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let served = runtime.block_on(bound.serve(async {
                let _ = stopped.await;
            }));
            served.expect("the node serves until shut down");
        });
        TestNode { url, shutdown: Some(shutdown), thread: Some(thread), _dir: dir }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
