//! Accepting connections, and draining on shutdown: stop accepting, let
//! open requests and streams finish for `shutdown_grace_ms`, then end what
//! is left with a clean error (a stream gets its API's error event, a
//! request still waiting for a provider a 503) and close.
//!
//! Connections are served by one thread per core, each with its own
//! single-threaded runtime accepting from the shared listening socket, as
//! proxies do: a request, its upstream connection and its stream stay on
//! the thread that accepted them, so no request wakes another thread.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::gateway::Live;
use switchyard_telemetry::events::Severity;

/// After the grace period, how long the error events get to reach clients.
const LAST_WORDS: Duration = Duration::from_secs(2);

use crate::tls::HANDSHAKE_TIMEOUT;

/// How many connections the kernel may hold for us before we accept them
/// (capped by `net.core.somaxconn`). A burst of new clients while the
/// gateway is busy is queued rather than dropped: a dropped SYN is tried
/// again only a second later.
const BACKLOG: u32 = 4096;

/// A listener on `addr` (`host:port`; the first address it resolves to that
/// binds) with a deep accept queue.
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the address resolves to nothing")))
}

/// How many serving threads: one per core the process may run on.
pub(crate) fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub(crate) async fn serve(live: Arc<Live>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => return tracing::error!("cannot hand the listener to the serving threads: {e}"),
    };
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::new();
    for index in 0..serving_threads() {
        let (listener, live, stopped) = (listener.try_clone(), live.clone(), stopped.clone());
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new().name(format!("serve-{index}")).spawn(move || {
            let _done = done;
            crate::upstream::SERVING_THREAD.set(Some(index));
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!("serving thread {index}: no runtime: {e}"),
            };
            runtime.block_on(async move {
                match listener.and_then(TcpListener::from_std) {
                    Ok(listener) => accept(live, listener, stopped).await,
                    Err(e) => tracing::error!("serving thread {index}: {e}"),
                }
            });
        });
        match spawned {
            Ok(_) => threads.push(finished),
            Err(e) => tracing::error!("cannot start serving thread {index}: {e}"),
        }
    }
    drop(listener);
    shutdown.await;
    let grace = Duration::from_millis(live.generation().config.shutdown_grace_ms);
    live.telemetry.events.emit(
        "draining",
        Severity::Info,
        "gateway",
        format!("shutting down: no new connections; open requests get {} s to finish", grace.as_secs_f32()),
    );
    let _ = stop.send(true);
    for finished in threads {
        let _ = finished.await;
    }
    live.shared().access_log.flush();
    if let Some(traces) = live.telemetry.traces.clone() {
        // The SDK's flush waits on its batch thread: not on the runtime.
        let _ = tokio::task::spawn_blocking(move || traces.flush()).await;
    }
}

/// Serves one plain connection (no TLS, no graceful drain) until it closes.
pub(crate) async fn serve_connection<I>(live: Arc<Live>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let shared = live.shared();
        async move { Ok::<_, std::convert::Infallible>(crate::ingress::handle(shared, req).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!("connection ended: {e}");
    }
}

/// One serving thread: accepts until told to stop, then drains its own connections.
async fn accept(live: Arc<Live>, listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let served = live.clone();
        let service = service_fn(move |req| {
            // A request runs on the config generation serving when it arrived.
            let shared = served.shared();
            async move { Ok::<_, std::convert::Infallible>(crate::ingress::handle(shared, req).await) }
        });
        let watcher = graceful.watcher();
        let live = live.clone();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
            builder.http2().timer(TokioTimer::new());
            let served = match &live.door {
                // HTTP/2 or HTTP/1.1 as ALPN chose.
                Some(door) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, door.acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Ok(Err(e)) => return tracing::debug!("TLS handshake failed: {e}"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                },
                // HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
            };
            if let Err(e) = served {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_millis(live.generation().config.shutdown_grace_ms);
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    if tokio::time::timeout(grace, &mut drained).await.is_err() {
        tracing::warn!("shutdown grace of {grace:?} is over: ending what is still open with an error");
        live.closing.cancel();
        if tokio::time::timeout(LAST_WORDS, drained).await.is_err() {
            tracing::warn!("some connections were still open {LAST_WORDS:?} after they were told to end");
        }
    }
}
