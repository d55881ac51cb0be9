//! The shared response cache against a real `redis-server`: the bounds hold
//! across writers, answers expire with the TTL, and a Redis that does not
//! answer costs a lookup no more than the timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_state::{CacheBounds, CacheStore, LinkOptions, RedisLink};
use switchyard_testkit::RedisServer;

async fn link_to(url: &str, prefix: &str) -> Arc<RedisLink> {
    let link = RedisLink::connect(&LinkOptions {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        timeout: Duration::from_millis(50),
        ca_pem: None,
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link.counts().up {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    link
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn two_writers_share_one_bound_of_entries_and_bytes_oldest_out_first() {
    let redis = RedisServer::start().await;
    let (a, b) = (
        CacheStore::new(link_to(&redis.url(), "bounds").await),
        CacheStore::new(link_to(&redis.url(), "bounds").await),
    );
    let bounds = CacheBounds { ttl: HOUR, max_entries: 3, max_bytes: 1000 };
    for i in 0..5 {
        let writer = if i % 2 == 0 { &a } else { &b };
        writer.put(&format!("k{i}"), &[b'x'; 100], "p", bounds).await;
    }
    assert_eq!(a.size().await, Some((3, 300)), "three entries across both writers");
    assert!(b.get("k0", HOUR).await.is_none() && a.get("k1", HOUR).await.is_none(), "the oldest left");
    let kept = b.get("k4", HOUR).await.expect("the newest is kept");
    assert_eq!((kept.body.len(), kept.provider.as_str()), (100, "p"));

    // Bytes: one big answer pushes out the older ones.
    a.put("big", &[b'y'; 900], "q", bounds).await;
    assert_eq!(b.size().await, Some((2, 1000)));
    // Storing a key again counts it once.
    b.put("big", &[b'z'; 500], "q", bounds).await;
    assert_eq!(a.size().await, Some((2, 600)));
    assert_eq!(a.get("big", HOUR).await.unwrap().body, vec![b'z'; 500]);
}

#[tokio::test]
async fn an_answer_expires_with_the_ttl_and_its_bytes_are_freed() {
    let redis = RedisServer::start().await;
    let store = CacheStore::new(link_to(&redis.url(), "ttl").await);
    let bounds = CacheBounds { ttl: Duration::from_millis(300), max_entries: 10, max_bytes: 10_000 };
    store.put("old", b"answer", "p", bounds).await;
    assert!(store.get("old", bounds.ttl).await.is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.get("old", bounds.ttl).await.is_none(), "expired");
    store.put("new", b"fresh", "p", bounds).await;
    assert_eq!(store.size().await, Some((1, 5)), "the expired answer left the index when a new one came");
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_a_lookup_at_most_the_timeout() {
    // Accepts connections and says nothing, as a hung server would.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/0", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let link = RedisLink::connect(&LinkOptions {
        url,
        prefix: "hung".into(),
        timeout: Duration::from_millis(50),
        ca_pem: None,
    })
    .unwrap();
    let store = CacheStore::new(link.clone());
    let bounds = CacheBounds { ttl: HOUR, max_entries: 10, max_bytes: 10_000 };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!link.counts().up, "never answered, never up");
    let started = Instant::now();
    store.put("k", b"v", "p", bounds).await;
    assert!(store.get("k", HOUR).await.is_none());
    assert!(started.elapsed() < Duration::from_millis(50), "a lookup while Redis is away does not wait for it");
    assert!(link.counts().failures >= 1, "the heartbeat's PINGs were given up and counted");
}
