//! The API kept available to everyone, over the real `aicpw` node: clients that send slowly or
//! hold connections open, and lists that an attacker fills so later entries fall off the end.

mod common;

use aicpw_node::api::{LIST_ITEMS_MAX, NEXT_CURSOR_HEADER};
use aicpw_node::server::{CONNECTIONS_PER_ADDRESS_MAX, HEADER_READ_TIMEOUT};
use aicpw_types::{Amount, Hardware, Hash32, Keypair, TaskTerms, TxBody};
use common::Net;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn address(net: &Net) -> SocketAddr {
    net.url.trim_start_matches("http://").parse().expect("node address")
}

/// A connection from another loopback address, as a second client machine would have.
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(format!("{source}:0").parse().expect("source")).expect("bind");
        socket.connect(to).await.expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// Whether the server closed the connection (a read ends or fails) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    // Past the deadline a closed connection still reads its end at once: wait a moment at least
    // (a zero timeout is refused).
    let within = within.max(Duration::from_millis(10));
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_and_do_not_block_other_clients() {
    let net = Net::start();
    let to = address(&net);
    // A slowloris: more connections than one address may hold, each trickling its headers.
    let mut slow: Vec<TcpStream> = (0..CONNECTIONS_PER_ADDRESS_MAX + 16)
        .map(|_| {
            let mut stream = connect_from("127.0.0.2", to);
            let _ = stream.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n");
            stream
        })
        .collect();
    // An idle connection that sent nothing, and a body that arrives a byte at a time.
    let mut idle = connect_from("127.0.0.3", to);
    let mut slow_body = connect_from("127.0.0.3", to);
    slow_body
        .write_all(b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .expect("headers");

    // Meanwhile another client is served at once.
    let started = Instant::now();
    let status = net.client.get("/v1/status").expect("served");
    assert!(status["height"].is_u64());
    assert!(started.elapsed() < Duration::from_secs(2), "served in {:?}", started.elapsed());

    let deadline = Instant::now() + HEADER_READ_TIMEOUT + Duration::from_secs(5);
    let trickle = std::thread::spawn(move || {
        // Read as the bytes go out: the answer comes before the node closes the connection.
        slow_body.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let (mut answer, mut buf) = (Vec::new(), [0u8; 1024]);
        for _ in 0..60 {
            let _ = slow_body.write_all(b"x");
            match slow_body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    for stream in &mut slow {
        let left = deadline.saturating_duration_since(Instant::now());
        // Trickle one more byte: the deadline is for the whole head, not between bytes.
        let _ = stream.write_all(b"X");
        assert!(closed_within(stream, left), "a slow header connection was kept open");
    }
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(closed_within(&mut idle, left), "an idle connection was kept open");
    let answer = trickle.join().expect("trickle thread");
    assert!(answer.contains("\"code\":927"), "a slow body is refused: {answer}");
    assert!(net.client.get("/v1/status").is_ok());
}

fn cursor_of(response: &ureq::Response) -> Option<u64> {
    response.header(NEXT_CURSOR_HEADER).map(|c| c.parse().expect("cursor"))
}

/// Every item of a paged list, following the cursors; also the number of pages.
fn all_pages(net: &Net, path: &str) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match cursor {
            Some(c) => format!("{}{path}{separator}cursor={c}", net.url),
            None => format!("{}{path}", net.url),
        };
        let response = ureq::get(&url).call().expect("page");
        cursor = cursor_of(&response);
        let page: Vec<Value> = response.into_json().expect("json array");
        assert!(page.len() <= LIST_ITEMS_MAX);
        items.extend(page);
        pages += 1;
        if cursor.is_none() {
            return (items, pages);
        }
    }
}

#[test]
fn paging_reaches_a_provider_registered_after_a_thousand_others() {
    let net = Net::start();
    let per_account = 16;
    let attackers: Vec<Keypair> = (0..64).map(|i| Keypair::dev(1_000 + i)).collect();
    let stake = Amount::tokens(1_000 * per_account as u64);
    for (i, attacker) in attackers.iter().enumerate() {
        let funder = Keypair::dev(1 + (i as u32 % 15));
        let fund = TxBody::Transfer { to: attacker.account(), amount: Amount::tokens(17_000) };
        net.client.send(&funder, fund, i + 1 == attackers.len()).expect("funded");
    }
    let register = |key: &Keypair, wait: bool| {
        let body = TxBody::RegisterNode {
            hardware: Hardware::default(),
            x25519_key: [9; 32],
            endpoint: String::new(),
            price_per_hour: Amount(1),
        };
        net.client.send(key, body, wait).expect("registered");
    };
    for attacker in &attackers {
        net.client.send(attacker, TxBody::Bond { amount: stake }, true).expect("bonded");
        for n in 0..per_account {
            register(attacker, n + 1 == per_account);
        }
    }
    let honest = Keypair::dev(0);
    net.client.send(&honest, TxBody::Bond { amount: Amount::tokens(1_000) }, true).expect("bond");
    register(&honest, true);

    let (nodes, pages) = all_pages(&net, "/v1/nodes");
    assert_eq!(nodes.len(), attackers.len() * per_account + 1);
    assert!(pages >= 2);
    let owner = honest.account().to_string();
    assert!(nodes.iter().any(|n| n["owner"] == owner), "the honest provider is listed");
    let (small, pages) = all_pages(&net, "/v1/nodes?limit=100");
    assert_eq!(small.len(), nodes.len());
    assert_eq!(pages, nodes.len().div_ceil(100));
}

#[test]
fn a_filtered_task_list_looks_at_a_bounded_number_of_tasks_per_query() {
    let net = Net::start();
    let file = net.task_file("one", "print('hi')\n", "encrypt: false\n");
    let first = net.submit_as(&file, 7);
    let task = net.task(first);
    let terms: TaskTerms = serde_json::from_value(task["terms"].clone()).expect("terms");
    let busy = Keypair::dev(8);
    let many = LIST_ITEMS_MAX + 50;
    for i in 0..many {
        let body = TxBody::SubmitTask {
            terms: terms.clone(),
            answer_commitment: Hash32::of(&i.to_le_bytes()),
        };
        net.client.send(&busy, body, i % 32 == 31 || i + 1 == many).expect("submitted");
    }
    let lone = Keypair::dev(7).account();
    // The first page looked at the newest tasks only and found none of the lone requester's.
    let response =
        ureq::get(&format!("{}/v1/tasks?requester={lone}", net.url)).call().expect("first page");
    let cursor = cursor_of(&response).expect("a cursor: more tasks remain to look at");
    let page: Vec<Value> = response.into_json().expect("json");
    assert!(page.is_empty());
    assert!(cursor > first);
    let (found, pages) = all_pages(&net, &format!("/v1/tasks?requester={lone}"));
    assert_eq!(pages, 2);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"].as_u64(), Some(first));
    let (all, _) = all_pages(&net, "/v1/tasks");
    assert_eq!(all.len(), many + 1);
}
