//! How a provider is reached: over the network (TCP, TLS when the URL says
//! `https`), or over an in-memory pipe to a provider in the same process —
//! what `switchyard simulate` uses to run the real request path in virtual
//! time, where a socket would let real time in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens in-memory connections to providers living in this process.
pub trait Dial: Send + Sync + 'static {
    /// A new connection to the provider at `authority` (`host[:port]` of its
    /// `base_url`); an error is a refused connection.
    fn dial(&self, authority: &str) -> std::io::Result<DuplexStream>;
}

/// The connector every provider's pool uses.
#[derive(Clone)]
pub(crate) enum Connector {
    Net(HttpsConnector<HttpConnector>),
    Memory(Arc<dyn Dial>),
}

/// One upstream connection. (The network variant is the large one and the
/// one serving uses: boxing it would cost a serving connection an
/// allocation and an indirection to save a simulation's pipes some bytes.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Conn {
    Net(MaybeHttpsStream<TokioIo<TcpStream>>),
    Memory(TokioIo<DuplexStream>),
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connector::Net(net) => net.poll_ready(cx),
            Connector::Memory(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Connector::Net(net) => {
                let connecting = net.call(uri);
                Box::pin(async move { connecting.await.map(Conn::Net) })
            }
            Connector::Memory(dial) => {
                let dialed = dial.dial(uri.authority().map_or("", |a| a.as_str()));
                Box::pin(async move { Ok(Conn::Memory(TokioIo::new(dialed?))) })
            }
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Net(net) => net.connected(),
            Conn::Memory(_) => Connected::new(),
        }
    }
}

impl Read for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Net(net) => Pin::new(net).poll_read(cx, buf),
            Conn::Memory(pipe) => Pin::new(pipe).poll_read(cx, buf),
        }
    }
}

impl Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Net(net) => Pin::new(net).poll_write(cx, buf),
            Conn::Memory(pipe) => Pin::new(pipe).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Net(net) => Pin::new(net).poll_write_vectored(cx, bufs),
            Conn::Memory(pipe) => Pin::new(pipe).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Net(net) => net.is_write_vectored(),
            Conn::Memory(pipe) => pipe.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Net(net) => Pin::new(net).poll_flush(cx),
            Conn::Memory(pipe) => Pin::new(pipe).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Net(net) => Pin::new(net).poll_shutdown(cx),
            Conn::Memory(pipe) => Pin::new(pipe).poll_shutdown(cx),
        }
    }
}
