//! What each command does.

use crate::{
    bench_challenge, bench_dispatch, bench_ledger, bench_match, bench_store, demo, injector,
    known_answers, requester, BenchCommand, Command, KeysCommand, KnownAnswerCommand, NodeCommand,
    ProviderCommand, QueryCommand, RuntimeArg, StoreCommand, TaskCommand, TxCommand,
};
use aicpw_provider::client::Client;
use aicpw_provider::executor::Executor;
use aicpw_types::{AccountId, Amount, Keypair, TxBody};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn run(node: &str, command: Command) -> Result<()> {
    let client = Client::new(node);
    match command {
        Command::Node(command) => node_command(command),
        Command::Keys(command) => keys(command),
        Command::Tx(command) => tx(&client, command),
        Command::Query(command) => query(&client, command),
        Command::Task(command) => task(&client, command),
        Command::Provider(command) => provider(&client, command),
        Command::Store(command) => store(&client, command),
        Command::Demo { json, keep } => demo::run(json, keep),
        Command::Bench(command) => bench(command),
        #[cfg(feature = "consensus")]
        Command::Devnet { validators, providers, dir, json } => {
            crate::devnet::run(validators, providers, dir, json)
        }
        #[cfg(feature = "consensus")]
        Command::Validator(crate::ValidatorCommand::Start { data_dir }) => {
            Ok(aicpw_consensus::validator::run(&data_dir)?)
        }
        #[cfg(not(feature = "consensus"))]
        Command::Devnet { .. } | Command::Validator(_) => bail!(crate::sim::WITHOUT_VALIDATORS),
        Command::Sim { consensus: true, seeds, json, faults, .. } => {
            let report = crate::sim::consensus(seeds, &faults)?;
            show(json, &report, |v| serde_json::to_string_pretty(v).unwrap_or_default());
            if report["violations"].as_u64() != Some(0) || report["repeat_equal"] != true {
                bail!("validators broke an invariant, or a seed did not repeat its state hash");
            }
            Ok(())
        }
        Command::Sim { scenario, seeds, json, .. } => {
            let report = crate::sim::run(&scenario, seeds)?;
            show(json, &report, |v| serde_json::to_string_pretty(v).unwrap_or_default());
            let failed = report["scenarios"].as_array().into_iter().flatten().any(|s| {
                s["violations"].as_u64() != Some(0) || s["honest_slashed"].as_u64() != Some(0)
            });
            if failed {
                bail!("the simulation found broken invariants or slashed honest providers");
            }
            Ok(())
        }
    }
}

pub fn load_key(path: &Path) -> Result<Keypair> {
    Ok(Keypair::load(path)?)
}

fn amount(text: &str) -> Result<Amount> {
    text.parse().with_context(|| format!("`{text}` is not an amount in base units"))
}

/// Prints JSON, or the given human lines.
fn show(json: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{}", human(value));
    }
}

fn node_command(command: NodeCommand) -> Result<()> {
    match command {
        NodeCommand::Start {
            data_dir,
            listen,
            dev,
            proposer_key,
            store_quota_bytes,
            store_hold_secs,
            store_upload_idle_secs,
            connections_per_address,
        } => {
            let listen = listen.parse().with_context(|| format!("bad --listen `{listen}`"))?;
            let proposer = match proposer_key {
                Some(path) => load_key(&path)?,
                None => Keypair::dev(0),
            };
            let genesis = dev.then(aicpw_node::dev_genesis);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let store = aicpw_node::StorePolicy {
                    quota_bytes: store_quota_bytes,
                    hold_ms: store_hold_secs.saturating_mul(1000),
                    upload_idle_ms: store_upload_idle_secs.saturating_mul(1000),
                    ..aicpw_node::StorePolicy::default()
                };
                let config = aicpw_node::NodeConfig {
                    data_dir,
                    listen,
                    genesis,
                    proposer,
                    store,
                    connections_per_address,
                };
                let bound = aicpw_node::Bound::open(config).await?;
                let addr = bound.local_addr().context("no local address")?;
                println!("listening on http://{addr}");
                let shutdown = async {
                    // Ctrl-C ends the node; its blocks are already durable.
                    let _ = tokio::signal::ctrl_c().await;
                };
                bound.serve(shutdown).await?;
                anyhow::Ok(())
            })
        }
        NodeCommand::Replay { data_dir, json } => {
            let chain = aicpw_node::Chain::open(&data_dir, None)?;
            let stored = chain.head().map(|h| h.state_root).unwrap_or_default();
            let replayed = chain.replay()?;
            let value = serde_json::json!({
                "height": chain.height(),
                "stored_root": stored,
                "replayed_root": replayed,
                "matches": stored == replayed,
            });
            show(json, &value, |v| {
                format!(
                    "height {}: replayed root {} {}",
                    v["height"],
                    v["replayed_root"],
                    if v["matches"] == true {
                        "matches the stored root"
                    } else {
                        "DIFFERS from the stored root"
                    }
                )
            });
            if stored != replayed {
                bail!("the replayed state root differs from the stored one");
            }
            Ok(())
        }
    }
}

fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::New { out } => {
            let key = Keypair::generate();
            key.save(&out)?;
            println!("{}", key.account());
        }
        KeysCommand::Show { file } => {
            let key = load_key(&file)?;
            println!("x25519 key: {}", hex::encode(key.x25519_public()));
            println!("{}", key.account());
        }
        KeysCommand::Dev { count, out } => {
            for i in 0..count {
                let key = Keypair::dev(i);
                let path = out.join(format!("dev-{i}.json"));
                key.save(&path)?;
                println!("{} {}", path.display(), key.account());
            }
        }
    }
    Ok(())
}

fn print_committed(value: &Value) {
    match value["height"].as_u64() {
        Some(height) => {
            println!("committed in block {height}: {}", value["tx_id"].as_str().unwrap_or(""))
        }
        None => println!("accepted: {}", value["tx_id"].as_str().unwrap_or("")),
    }
}

fn tx(client: &Client, command: TxCommand) -> Result<()> {
    let (key, body, send) = match command {
        TxCommand::Transfer { from, to, amount: a, send } => {
            let to: AccountId = to.parse().with_context(|| format!("`{to}` is not an address"))?;
            (from, TxBody::Transfer { to, amount: amount(&a)? }, send)
        }
        TxCommand::Bond { key, amount: a, send } => {
            (key, TxBody::Bond { amount: amount(&a)? }, send)
        }
        TxCommand::Unbond { key, amount: a, send } => {
            (key, TxBody::Unbond { amount: amount(&a)? }, send)
        }
        TxCommand::Withdraw { key, send } => (key, TxBody::Withdraw, send),
    };
    let value = client.send(&load_key(&key)?, body, !send.no_wait)?;
    print_committed(&value);
    Ok(())
}

fn query(client: &Client, command: QueryCommand) -> Result<()> {
    match command {
        QueryCommand::Account { address, json } => {
            let address: AccountId =
                address.parse().with_context(|| format!("`{address}` is not an address"))?;
            let v = client.get(&format!("/v1/accounts/{address}"))?;
            let v = serde_json::json!({ "address": v["address"], "balance": v["balance"],
                "nonce": v["nonce"], "staked": v["staked"] });
            show(json, &v, |v| {
                format!(
                    "address {}\nbalance {}\nstaked  {}\nnonce   {}",
                    v["address"].as_str().unwrap_or(""),
                    v["balance"].as_str().unwrap_or(""),
                    v["staked"].as_str().unwrap_or(""),
                    v["nonce"]
                )
            });
        }
        QueryCommand::Node { id, json } => {
            let v = client.get(&format!("/v1/nodes/{id}"))?;
            show(json, &v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
        }
        QueryCommand::Task { id, json } => {
            let v = client.get(&format!("/v1/tasks/{id}"))?;
            show(json, &v, requester::describe_task);
        }
        QueryCommand::Block { height, json } => {
            let v = client.get(&format!("/v1/blocks/{height}"))?;
            show(json, &v, |v| {
                format!(
                    "block {} {}\ntxs {}\nstate root {}",
                    v["header"]["height"],
                    v["hash"].as_str().unwrap_or(""),
                    v["header"]["tx_count"],
                    v["header"]["state_root"].as_str().unwrap_or("")
                )
            });
        }
        QueryCommand::Status { json } => {
            let v = client.get("/v1/status")?;
            show(json, &v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
        }
    }
    Ok(())
}

fn task(client: &Client, command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::Submit { file, key, known_answer, allow_input_outside } => {
            let known = known_answer.as_deref();
            let inputs = if allow_input_outside {
                requester::Inputs::Anywhere
            } else {
                requester::Inputs::UnderTaskDir
            };
            let (id, answer) =
                requester::submit_with(client, &load_key(&key)?, &file, known, inputs, true)?;
            println!("submitted task");
            if let Some((answer_hash, salt)) = answer {
                println!("known answer {answer_hash} salt {salt} (keep them for reveal-answer)");
            }
            let task = client.get(&format!("/v1/tasks/{id}"))?;
            if task["terms"]["encrypted"] == true && task["state"] == "queued" {
                println!(
                    "no node is free yet: `aicpw task watch {id} --key {}` grants the content key \
                     to the node placed on it",
                    key.display()
                );
            }
            println!("{id}");
        }
        TaskCommand::RevealAnswer { id, answer, salt, key } => {
            let answer_hash = answer.parse().map_err(|_| anyhow::anyhow!("bad answer hash"))?;
            let salt = salt.parse().map_err(|_| anyhow::anyhow!("bad salt"))?;
            let body = TxBody::RevealAnswer { task: aicpw_types::TaskId(id), answer_hash, salt };
            print_committed(&client.send(&load_key(&key)?, body, true)?);
        }
        TaskCommand::Dispute { id, bond, key } => {
            let body =
                TxBody::DisputeResult { task: aicpw_types::TaskId(id), bond: amount(&bond)? };
            let key = load_key(&key)?;
            print_committed(&client.send(&key, body, true)?);
            // The committee re-runs the task: it needs the content key.
            requester::grant_placed(client, &key, &client.get(&format!("/v1/tasks/{id}"))?)?;
        }
        TaskCommand::Show { id, json } => {
            let v = client.get(&format!("/v1/tasks/{id}"))?;
            show(json, &v, requester::describe_task);
        }
        TaskCommand::Watch { id, key } => {
            let key = key.as_deref().map(load_key).transpose()?;
            let state = requester::watch(client, id, key.as_ref(), true)?;
            println!("task {id}: {state}");
        }
        TaskCommand::Result { id, key, out, no_accept } => {
            let fetched = requester::fetch_result(client, &load_key(&key)?, id, &out, !no_accept)?;
            for file in &fetched.files {
                println!("{}", out.join(file).display());
            }
            println!("result {} verified and decrypted into {}", fetched.cid, out.display());
        }
        TaskCommand::Cancel { id, key } => {
            let task = aicpw_types::TaskId(id);
            print_committed(&client.send(&load_key(&key)?, TxBody::CancelTask { task }, true)?);
        }
        TaskCommand::Rate { id, stars, key } => {
            let task = aicpw_types::TaskId(id);
            print_committed(&client.send(
                &load_key(&key)?,
                TxBody::RateTask { task, stars },
                true,
            )?);
        }
        TaskCommand::Why { id, json } => {
            let v = client.get(&format!("/v1/tasks/{id}/why"))?;
            show(json, &v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
        }
        TaskCommand::KnownAnswer(command) => known_answer(command)?,
        TaskCommand::InjectKnownAnswers { key, library, rate, uses_max, delay_max_secs } => {
            let test_rates = std::env::var(injector::TEST_RATES_ENV).is_ok_and(|v| v == "1");
            injector::check_rate(rate, test_rates)?;
            let config = injector::Config {
                library: library_or_default(library)?,
                rate_ppm: rate,
                uses_max,
                delay_max: std::time::Duration::from_secs(delay_max_secs),
            };
            injector::run(client, &load_key(&key)?, config)?;
        }
    }
    Ok(())
}

fn library_or_default(library: Option<PathBuf>) -> Result<PathBuf> {
    library.map_or_else(known_answers::default_library, Ok)
}

fn known_answer(command: KnownAnswerCommand) -> Result<()> {
    match command {
        KnownAnswerCommand::Add { file, library } => {
            let library = library_or_default(library)?;
            let info = known_answers::add(&library, &file)?;
            println!(
                "added known answer {} ({}): answer {}, the same on {} local runs of {} ms",
                info.id,
                info.name,
                info.answer_hash,
                known_answers::DETERMINISM_RUNS,
                info.run_ms
            );
        }
        KnownAnswerCommand::List { library, json } => {
            let library = library_or_default(library)?;
            let entries = known_answers::list(&library)?;
            let journal = injector::Journal::load(&library)?;
            let value = serde_json::json!({
                "entries": entries.iter().map(|e| serde_json::json!({
                    "id": e.id, "name": e.name, "answer_hash": e.answer_hash,
                    "uses": journal.uses.get(&e.id).copied().unwrap_or(0),
                })).collect::<Vec<_>>(),
                "pending": journal.pending.len(),
                "totals": journal.totals,
            });
            show(json, &value, |v| {
                let mut lines: Vec<String> = v["entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "{} {:<24} used {}",
                            e["id"].as_str().unwrap_or(""),
                            e["name"].as_str().unwrap_or(""),
                            e["uses"]
                        )
                    })
                    .collect();
                let t = &v["totals"];
                lines.push(format!(
                    "{} pending; injected {}, confirmed {}, caught {}, refuted {}, unchecked {}",
                    v["pending"],
                    t["injected"],
                    t["confirmed"],
                    t["caught"],
                    t["refuted"],
                    t["unchecked"]
                ));
                lines.join("\n")
            });
        }
    }
    Ok(())
}

fn provider(client: &Client, command: ProviderCommand) -> Result<()> {
    match command {
        ProviderCommand::Start {
            key,
            stake,
            work_dir,
            price,
            region,
            allow_network,
            containers,
            images,
            image_mb_max,
            cache_bytes,
        } => {
            let mut executor = aicpw_provider::executor::SandboxExecutor::new(Default::default())?;
            aicpw_provider::executor::sandbox_available()?;
            executor.keep_spare_disks(&work_dir.join("spare-disks"))?;
            if allow_network {
                // Refuse to offer network access that the machine cannot confine.
                executor.network_self_test()?;
            }
            let containers = if containers {
                let config = aicpw_provider::executor::ContainerConfig {
                    images_allowed: images,
                    image_bytes_max: image_mb_max.saturating_mul(1 << 20),
                    ..Default::default()
                };
                let engine = aicpw_provider::executor::ContainerExecutor::new(config)?;
                println!("container tasks run on Docker Engine {}", engine.engine_version()?);
                Some(std::sync::Arc::new(engine) as std::sync::Arc<dyn Executor>)
            } else {
                None
            };
            let config = aicpw_provider::agent::AgentConfig {
                key: load_key(&key)?,
                stake: amount(&stake)?,
                price_per_hour: amount(&price)?,
                endpoint: format!("agent:{}", work_dir.display()),
                work_dir,
                hardware: None,
                region,
                allow_network,
                containers,
                cache_bytes,
            };
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            aicpw_provider::agent::run(
                client.base(),
                config,
                std::sync::Arc::new(executor),
                stop,
                |node| {
                    println!("provider node {node} registered and serving");
                },
            )?;
            Ok(())
        }
        ProviderCommand::Why { node, json } => {
            let v = client.get(&format!("/v1/nodes/{node}/why"))?;
            show(json, &v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
            Ok(())
        }
        ProviderCommand::Appeal { node, key } => {
            let body = TxBody::Appeal { node: aicpw_types::NodeId(node) };
            print_committed(&client.send(&load_key(&key)?, body, true)?);
            Ok(())
        }
        ProviderCommand::Vote { node, approve, key } => {
            let body = TxBody::VoteAppeal { node: aicpw_types::NodeId(node), approve };
            print_committed(&client.send(&load_key(&key)?, body, true)?);
            Ok(())
        }
    }
}

fn store(client: &Client, command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Add { path, cid_version, key, only_hash, seal, json } => {
            let cid = match key.filter(|_| !only_hash) {
                Some(key) => {
                    requester::store_add(client, &load_key(&key)?, &path, cid_version, seal)?
                }
                None => requester::store_cid(&path, cid_version)?,
            };
            show(json, &serde_json::json!({ "cid": cid }), |v| {
                v["cid"].as_str().unwrap_or("").to_string()
            });
        }
        StoreCommand::Get { cid, out } => {
            requester::store_get(client, &cid, &out)?;
            println!("{}", out.display());
        }
    }
    Ok(())
}

fn bench(command: BenchCommand) -> Result<()> {
    let (json, value) = match command {
        BenchCommand::Ledger { json, accounts, txs } => (json, bench_ledger::run(accounts, txs)?),
        BenchCommand::Store { json, sizes_mib, js_ipfs_tool } => {
            (json, bench_store::run(&sizes_mib, js_ipfs_tool.as_deref())?)
        }
        BenchCommand::Dispatch {
            json,
            tasks,
            requesters,
            providers,
            rate,
            keep,
            runtime,
            image,
        } => {
            let load = bench_dispatch::Load { tasks, requesters, providers, rate };
            let image = match runtime {
                RuntimeArg::Sandbox => None,
                RuntimeArg::Container => Some(bench_dispatch::probe_image(image)?),
            };
            (json, bench_dispatch::run(load, keep, image)?)
        }
        BenchCommand::Challenge { json, n, threads, k } => {
            (json, bench_challenge::run(n, threads, k)?)
        }
        BenchCommand::Match { nodes, tasks, seed, json } => {
            (json, bench_match::run(nodes, tasks, seed)?)
        }
        #[cfg(feature = "consensus")]
        BenchCommand::Consensus { validators, txs, senders, json } => {
            (json, crate::bench_consensus::run(validators, txs, senders)?)
        }
        #[cfg(not(feature = "consensus"))]
        BenchCommand::Consensus { .. } => bail!(crate::sim::WITHOUT_VALIDATORS),
    };
    show(json, &value, |v| {
        v.as_object()
            .map(|map| {
                map.iter().map(|(k, v)| format!("{k:>24}  {v}")).collect::<Vec<_>>().join("\n")
            })
            .unwrap_or_default()
    });
    Ok(())
}
