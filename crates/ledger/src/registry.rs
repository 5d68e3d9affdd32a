//! Provider nodes: register with hardware, X25519 key, endpoint and price; update; deregister.
//! A node's standing belongs to its owner: a new node starts with the owner's proven offences,
//! and frozen if the owner deregistered a node while it was frozen.

use crate::delta::Delta;
use crate::event::Event;
use crate::reputation;
use crate::state::{Node, NodeStatus, Reputation};
use aicpw_types::{AccountId, Amount, ComputeUnits, Hardware, NodeId, Reject};

pub struct Offer {
    pub hardware: Hardware,
    pub x25519_key: [u8; 32],
    pub endpoint: String,
    pub price_per_hour: Amount,
}

pub fn register(delta: &mut Delta<'_>, owner: AccountId, offer: Offer) -> Result<NodeId, Reject> {
    let params = &delta.base.params;
    let mut account = delta.account(&owner);
    if account.nodes >= params.nodes_per_account_max {
        return Err(Reject::NodeLimitReached);
    }
    let needed = params.node_stake_min.0.saturating_mul(u128::from(account.nodes) + 1);
    if account.staked.0 < needed {
        return Err(Reject::InsufficientStake);
    }
    account.nodes += 1;
    // The owner's record comes with the node: its offences, and the freeze of a node it
    // deregistered while frozen.
    let offences = account.offences;
    let status = if account.frozen_carried > 0 {
        account.frozen_carried -= 1;
        NodeStatus::Frozen
    } else {
        NodeStatus::Active
    };
    delta.set_account(owner, account);
    let mut meta = delta.meta();
    let id = NodeId(meta.next_node);
    meta.next_node += 1;
    delta.set_meta(meta);
    let now = delta.env.time_ms;
    delta.set_node(Node {
        id,
        owner,
        hardware: offer.hardware,
        x25519_key: offer.x25519_key,
        endpoint: offer.endpoint,
        price_per_hour: offer.price_per_hour,
        status,
        online: true,
        last_seen_ms: now,
        // Until a capacity challenge proves more, a node is credited with nothing.
        proven_units: ComputeUnits(0),
        running: 0,
        reputation: Reputation {
            score_permille: reputation::NEW_SCORE_PERMILLE,
            offences,
            ..Default::default()
        },
        appeal: None,
        appeals: 0,
        capacity: Default::default(),
    });
    delta.emit(Event::NodeRegistered { node: id, owner });
    if status == NodeStatus::Frozen {
        delta.emit(Event::NodeFrozen { node: id, score_permille: reputation::NEW_SCORE_PERMILLE });
    }
    Ok(id)
}

pub fn owned_node(delta: &Delta<'_>, who: &AccountId, id: NodeId) -> Result<Node, Reject> {
    let node = delta.node(id)?;
    if node.owner != *who {
        return Err(Reject::NotNodeOwner);
    }
    Ok(node)
}

pub fn update(
    delta: &mut Delta<'_>,
    who: AccountId,
    id: NodeId,
    offer: Offer,
) -> Result<(), Reject> {
    let mut node = owned_node(delta, &who, id)?;
    if node.status == NodeStatus::Ejected {
        return Err(Reject::NodeNotActive);
    }
    if node.running > 0 && offer.hardware != node.hardware {
        return Err(Reject::NodeBusy);
    }
    node.hardware = offer.hardware;
    node.x25519_key = offer.x25519_key;
    node.endpoint = offer.endpoint;
    node.price_per_hour = offer.price_per_hour;
    delta.set_node(node);
    delta.emit(Event::NodeUpdated { node: id });
    Ok(())
}

pub fn deregister(delta: &mut Delta<'_>, who: AccountId, id: NodeId) -> Result<(), Reject> {
    let mut node = owned_node(delta, &who, id)?;
    if node.running > 0 {
        return Err(Reject::NodeBusy);
    }
    if node.status == NodeStatus::Ejected {
        return Err(Reject::NodeNotActive);
    }
    // A freeze for missed challenges is absence, which a new node's first challenge settles.
    let frozen = node.status == NodeStatus::Frozen && !node.capacity.frozen;
    node.status = NodeStatus::Ejected;
    node.online = false;
    delta.set_node(node);
    let mut account = delta.account(&who);
    account.nodes = account.nodes.saturating_sub(1);
    account.frozen_carried = account.frozen_carried.saturating_add(u32::from(frozen));
    delta.set_account(who, account);
    delta.emit(Event::NodeDeregistered { node: id });
    Ok(())
}

pub fn heartbeat(delta: &mut Delta<'_>, who: AccountId, id: NodeId) -> Result<(), Reject> {
    let mut node = owned_node(delta, &who, id)?;
    if node.status != NodeStatus::Active {
        return Err(Reject::NodeNotActive);
    }
    node.online = true;
    node.last_seen_ms = delta.env.time_ms;
    delta.set_node(node);
    Ok(())
}
