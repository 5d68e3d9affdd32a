//! The HTTP server around the API, sized for clients that do not play fair: a deadline for each
//! request's headers, a minimum rate for request bodies, connections closed when nothing moves
//! either way, and a bound on connections, overall and per client address.

use crate::api::ApiError;
use aicpw_types::Reject;
use axum::body::{Body, Bytes};
use axum::Router;
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// A request's headers must arrive within this; an idle kept-alive connection is closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which no byte moved either way for this long is closed (event streams send
/// a keep-alive every second).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body may take this long plus one second per [`BODY_RATE_MIN`] bytes it has sent.
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// Bytes per second a request body must average after [`BODY_GRACE`].
pub const BODY_RATE_MIN: u64 = 64 * 1024;
/// Connections served at once; further clients wait in the listen queue.
pub const CONNECTIONS_MAX: usize = 4_096;
/// Connections served at once for one client address, unless the operator says otherwise
/// (`node start --connections-per-address`); more are closed on arrival.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 64;

/// Open connections per client address, and how many one address may hold.
struct PerAddress(Mutex<HashMap<IpAddr, usize>>, usize);

/// One connection's place in [`PerAddress`], given back when the connection ends.
struct AddressSlot(Arc<PerAddress>, IpAddr);

impl PerAddress {
    fn claim(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.0.lock().expect("no panics while counting connections");
        let count = open.entry(address).or_default();
        if *count >= self.1 {
            return None;
        }
        *count += 1;
        Some(AddressSlot(self.clone(), address))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.0 .0.lock().expect("no panics while counting connections");
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, at most `per_address_max` connections
/// at once from one client address.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    per_address_max: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let total = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let per_address = Arc::new(PerAddress(Mutex::default(), per_address_max));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = total.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // keep serving the others.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let Some(slot) = per_address.claim(peer.ip()) else {
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(Idle::new(stream)), service);
            // A client that went away or timed out is no error of the node's.
            let _ = connection.await;
            drop((permit, slot));
        });
    }
}

/// A TCP stream that fails once no byte moved either way for [`IDLE_TIMEOUT`].
struct Idle {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
}

impl Idle {
    fn new(stream: TcpStream) -> Idle {
        Idle { stream, deadline: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)) }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
    }

    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Pending => self.stalled(cx),
            ready => {
                if buf.filled().len() > before {
                    self.moved();
                }
                ready
            }
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.moved();
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Pending => self.stalled(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body read chunk by chunk, refused once it passes `limit` bytes (`too_large`) or
/// falls behind [`BODY_RATE_MIN`] after [`BODY_GRACE`].
pub struct PacedBody {
    stream: axum::body::BodyDataStream,
    start: Instant,
    received: u64,
    limit: u64,
    too_large: Reject,
}

impl PacedBody {
    pub fn new(body: Body, limit: u64, too_large: Reject) -> PacedBody {
        let stream = body.into_data_stream();
        PacedBody { stream, start: Instant::now(), received: 0, limit, too_large }
    }

    /// The next chunk, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, Reject>> {
        let allowed = Duration::from_millis(self.received.saturating_mul(1000) / BODY_RATE_MIN);
        let deadline = self.start + BODY_GRACE + allowed;
        let chunk = match tokio::time::timeout_at(deadline, self.stream.next()).await {
            Err(_) => return Some(Err(Reject::BodyTooSlow)),
            Ok(chunk) => chunk?,
        };
        Some(chunk.map_err(|_| Reject::BadRequest).and_then(|bytes| {
            self.received = self.received.saturating_add(bytes.len() as u64);
            if self.received > self.limit {
                return Err(self.too_large);
            }
            Ok(bytes)
        }))
    }

    /// The whole body, for small ones.
    pub async fn collect(mut self) -> Result<Vec<u8>, ApiError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }
}
