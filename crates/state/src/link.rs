//! One Redis connection per process, used so that nothing waits on it long:
//! every command is given up after the `[state]` timeout, a lost connection
//! is re-made with backoff in the background, and whoever shares state
//! through it learns when it came back (to resynchronise) from
//! [`RedisLink::comebacks`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use tokio::sync::{mpsc, watch};

use crate::StateError;

/// How often the link checks that Redis answers (and notices it is back).
const HEARTBEAT: Duration = Duration::from_millis(250);
/// An instance not heard from for this long is no longer counted a member.
const MEMBER_FOR: Duration = Duration::from_secs(3);
/// Messages of one channel waiting for their reader; more are dropped.
const CHANNEL_BACKLOG: usize = 4096;

/// Where Redis is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// `redis://[:password@]host:port/db` (or `valkey://`).
    pub url: String,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// A command unanswered after this long is given up.
    pub timeout: Duration,
    /// For a `rediss://` URL: the CA (PEM) to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// What the link has seen, for `/metrics` and the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Redis answers now.
    pub up: bool,
    /// Commands given up (timed out or failed) since start.
    pub failures: u64,
    /// Times the connection came back after being lost.
    pub reconnects: u64,
}

thread_local! {
    /// Per thread, per link: a connection whose driver runs on this
    /// thread's runtime (a serving thread's request never hands its Redis
    /// command to another thread and waits to be woken back).
    static HERE: std::cell::RefCell<HashMap<u64, redis::aio::MultiplexedConnection>> =
        std::cell::RefCell::new(HashMap::new());
}

/// The process's connection to the shared Redis.
pub struct RedisLink {
    /// Subscriptions and the heartbeat (it re-makes a lost connection and
    /// renews the subscriptions).
    manager: ConnectionManager,
    /// Where each thread's own command connection comes from.
    client: redis::Client,
    /// Tells this link's thread-local connections from another link's.
    id: u64,
    prefix: String,
    timeout: Duration,
    /// This process, as it signs what it publishes (so it can skip its own).
    instance: String,
    up: AtomicBool,
    /// Instances seen beating in the last `MEMBER_FOR` (this one included;
    /// the last count while Redis is away).
    members: std::sync::atomic::AtomicU32,
    /// A channel was added since the last subscription.
    unsubscribed: AtomicBool,
    failures: AtomicU64,
    reconnects: AtomicU64,
    /// Bumped each time Redis answers again after it did not (and once at
    /// the first answer): time to resubscribe and resynchronise.
    comeback: watch::Sender<u64>,
    /// Readers of each subscribed channel.
    channels: Mutex<HashMap<String, mpsc::Sender<Vec<u8>>>>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").field("prefix", &self.prefix).field("up", &self.up).finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `options.url`. It connects in the background: a Redis that
    /// is down now does not stop the gateway from starting (it serves on
    /// local state meanwhile). Fails only on a URL that cannot be used.
    /// Call from within a tokio runtime (its tasks are spawned there).
    pub fn connect(options: &LinkOptions) -> Result<Arc<RedisLink>, StateError> {
        let info = options.url.as_str().into_connection_info().map_err(|e| StateError::Url(e.to_string()))?;
        // RESP3: subscriptions share the command connection.
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(resp3);
        let client = match &options.ca_pem {
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| StateError::Url(e.to_string()))?;
        let (pushes, pushed) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(options.timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_push_sender(pushes)
            .set_automatic_resubscription();
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StateError::Url(e.to_string()))?;
        let link = Arc::new(RedisLink {
            manager,
            client,
            id: rand::random(),
            prefix: options.prefix.clone(),
            timeout: options.timeout,
            instance: format!("{:016x}", rand::random::<u64>()),
            up: AtomicBool::new(false),
            members: std::sync::atomic::AtomicU32::new(1),
            unsubscribed: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            comeback: watch::channel(0).0,
            channels: Mutex::new(HashMap::new()),
        });
        tokio::spawn(route_pushes(Arc::downgrade(&link), pushed));
        tokio::spawn(heartbeat(Arc::downgrade(&link)));
        Ok(link)
    }

    /// `prefix:name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// This process's id in what it publishes.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// What the link has seen so far.
    pub fn counts(&self) -> LinkCounts {
        LinkCounts {
            up: self.up.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Instances sharing this Redis (and prefix) now, by their heartbeats;
    /// the last count while Redis is away, 1 before the first.
    pub fn members(&self) -> u32 {
        self.members.load(Ordering::Relaxed).max(1)
    }

    /// Changes each time Redis answers again after it did not.
    pub fn comebacks(&self) -> watch::Receiver<u64> {
        self.comeback.subscribe()
    }

    /// Runs `cmd` on this thread's connection, or gives up after the
    /// timeout (counted, logged at debug: the heartbeat tells the operator
    /// the link is down, once).
    pub async fn run<T: FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Option<T> {
        let work = async {
            let mut conn = self.here().await?;
            cmd.query_async::<T>(&mut conn).await
        };
        self.settle(what, tokio::time::timeout(self.timeout, work).await)
    }

    /// Runs `pipe` like [`RedisLink::run`].
    pub async fn run_pipe<T: FromRedisValue>(&self, what: &str, pipe: &redis::Pipeline) -> Option<T> {
        let work = async {
            let mut conn = self.here().await?;
            pipe.query_async::<T>(&mut conn).await
        };
        self.settle(what, tokio::time::timeout(self.timeout, work).await)
    }

    /// Runs a script invocation like [`RedisLink::run`] (EVALSHA, loading
    /// the script when Redis does not have it yet).
    pub async fn run_script<T: FromRedisValue>(&self, what: &str, script: &redis::ScriptInvocation<'_>) -> Option<T> {
        let work = async {
            let mut conn = self.here().await?;
            script.invoke_async::<T>(&mut conn).await
        };
        self.settle(what, tokio::time::timeout(self.timeout, work).await)
    }

    /// This thread's command connection, made on first use (and again
    /// after one failed).
    async fn here(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        if let Some(conn) = HERE.with(|here| here.borrow().get(&self.id).cloned()) {
            return Ok(conn);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(self.timeout));
        let conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        HERE.with(|here| here.borrow_mut().insert(self.id, conn.clone()));
        Ok(conn)
    }

    /// This thread's connection failed or hung: the next command makes another.
    fn forget_here(&self) {
        HERE.with(|here| here.borrow_mut().remove(&self.id));
    }

    fn settle<T>(&self, what: &str, outcome: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Option<T> {
        match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if e.is_unrecoverable_error() || e.is_timeout() || e.is_io_error() {
                    self.forget_here();
                }
                tracing::debug!("state: redis {what} failed: {e}");
                None
            }
            Err(_) => {
                self.forget_here();
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("state: redis {what} gave no answer within {} ms", self.timeout.as_millis());
                None
            }
        }
    }

    /// Messages published on `prefix:name` from now on (and again after each
    /// comeback: the subscription is renewed).
    pub fn subscribe(&self, name: &str) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(CHANNEL_BACKLOG);
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).insert(self.key(name), tx);
        // The heartbeat subscribes it at its next beat.
        self.unsubscribed.store(true, Ordering::Relaxed);
        rx
    }

    /// PING over the manager's connection (which re-makes it, and renews
    /// the subscriptions, when it was lost).
    /// Also says this instance is alive, and counts the instances that are.
    async fn ping(&self) -> bool {
        let mut conn = self.manager.clone();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let members = self.key("members");
        let mut pipe = redis::pipe();
        pipe.cmd("PING")
            .ignore()
            .zadd(&members, &self.instance, now as u64)
            .ignore()
            .zrembyscore(&members, "-inf", (now.saturating_sub(MEMBER_FOR.as_millis())) as u64)
            .ignore()
            .zcard(&members);
        let answered = tokio::time::timeout(self.timeout, pipe.query_async::<(u32,)>(&mut conn)).await;
        match answered {
            Ok(Ok((count,))) => {
                self.members.store(count.max(1), Ordering::Relaxed);
                true
            }
            _ => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    async fn subscribe_all(&self) -> bool {
        let names: Vec<String> = self.channels.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        let mut conn = self.manager.clone();
        for name in names {
            let subscribed = tokio::time::timeout(self.timeout, conn.subscribe(&name)).await;
            if !matches!(subscribed, Ok(Ok(()))) {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        true
    }
}

/// Hands each published message to its channel's reader.
async fn route_pushes(link: std::sync::Weak<RedisLink>, mut pushed: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = pushed.recv().await {
        let Some(link) = link.upgrade() else { return };
        match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else { continue };
                let (Ok(channel), Ok(payload)) =
                    (String::from_redis_value(channel), Vec::<u8>::from_redis_value(payload))
                else {
                    continue;
                };
                let reader = link.channels.lock().unwrap_or_else(|p| p.into_inner()).get(&channel).cloned();
                if let Some(reader) = reader {
                    let _ = reader.try_send(payload);
                }
            }
            PushKind::Disconnection if link.up.swap(false, Ordering::Relaxed) => {
                tracing::warn!(
                    "state: lost the connection to redis; serving on this instance's state until it is back"
                );
            }
            _ => {}
        }
    }
}

/// Pings Redis; notices when it stops answering and when it is back, and
/// then renews the subscriptions and tells the sharers to resynchronise.
async fn heartbeat(link: std::sync::Weak<RedisLink>) {
    let mut first = true;
    loop {
        let Some(l) = link.upgrade() else { return };
        let answered = l.ping().await;
        let was_up = l.up.load(Ordering::Relaxed);
        if answered && (!was_up || l.unsubscribed.swap(false, Ordering::Relaxed)) {
            if !l.subscribe_all().await {
                l.unsubscribed.store(true, Ordering::Relaxed);
            } else if !was_up {
                l.up.store(true, Ordering::Relaxed);
                if !first {
                    l.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!("state: redis answers{}", if first { "" } else { " again; resynchronising" });
                first = false;
                l.comeback.send_modify(|n| *n += 1);
            }
        } else if !answered && was_up {
            l.up.store(false, Ordering::Relaxed);
            tracing::warn!("state: redis does not answer; serving on this instance's state until it is back");
        }
        drop(l);
        tokio::time::sleep(HEARTBEAT).await;
    }
}
