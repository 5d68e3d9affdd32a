//! An in-process node as `aicpw node start` runs it: a real redb data directory and the real HTTP
//! API on a loopback port, stopped and reopened like a restarted process.

use aicpw_node::{dev_genesis, Bound, NodeConfig, Shared};
use aicpw_types::codec::Encode;
use aicpw_types::{Keypair, Reject, SignedTx, Tx, TxBody};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Node {
    pub url: String,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

impl Node {
    /// Opens (or creates, with the dev genesis) the chain in `dir` and serves it on loopback.
    pub fn start(dir: &Path) -> Node {
        let (opened, opening) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = NodeConfig {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            genesis: Some(dev_genesis()),
            store: aicpw_node::StorePolicy::default(),
            connections_per_address: aicpw_node::server::CONNECTIONS_PER_ADDRESS_MAX,
            proposer: Keypair::dev(0),
        };
        let serving = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(async move {
                let bound = Bound::open(config).await.expect("the node opens its data directory");
                let url = format!("http://{}", bound.local_addr().expect("bound address"));
                opened.send((url, bound.shared.clone())).expect("the test waits");
                bound
                    .serve(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("the node serves until stopped");
            });
        });
        let (url, shared) = opening.recv().expect("the node started");
        Node { url, shared, stop: Some(stop), serving: Some(serving) }
    }

    /// Stops serving and closes the data directory, as a process exit would (on drop).
    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.join().expect("the node thread ends cleanly");
        }
    }

    /// POSTs a signed transaction in its binary form; `Ok` with the answer, or the reject code.
    pub fn submit(&self, tx: &SignedTx, wait: bool) -> Result<Value, Reject> {
        let url = format!("{}/v1/tx?wait={wait}", self.url);
        match ureq::post(&url).send_bytes(&tx.to_bytes()) {
            Ok(response) => Ok(response.into_json().expect("a JSON answer")),
            Err(ureq::Error::Status(_, response)) => {
                let body: Value = response.into_json().expect("a JSON error");
                let code = body["error"]["code"].as_u64().expect("a reject code");
                Err(Reject::from_code(code as u16).expect("a known reject code"))
            }
            Err(e) => panic!("the node must answer: {e}"),
        }
    }

    pub fn get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.url))
            .call()
            .expect("GET answers")
            .into_json()
            .expect("a JSON answer")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A transaction of the dev chain.
pub fn tx(signer: aicpw_types::AccountId, nonce: u64, body: TxBody) -> Tx {
    Tx {
        chain_id: aicpw_node::DEV_CHAIN_ID.into(),
        signer,
        nonce,
        fee: aicpw_types::Amount(10),
        body,
    }
}
