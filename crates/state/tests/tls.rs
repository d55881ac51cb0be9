//! `rediss://`: the link speaks TLS to a real `redis-server` serving TLS
//! only, trusting the CA `[state] ca_file` names, and refuses a server
//! whose certificate that CA did not sign.

use std::time::{Duration, Instant};

use switchyard_state::{LinkOptions, RedisLink};
use switchyard_testkit::RedisServer;

fn link(url: String, ca_pem: Option<Vec<u8>>) -> std::sync::Arc<RedisLink> {
    RedisLink::connect(&LinkOptions { url, prefix: "tls".into(), timeout: Duration::from_millis(200), ca_pem })
        .expect("a usable URL")
}

async fn up_within(link: &RedisLink, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if link.counts().up {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_tls_redis_is_reached_with_its_ca_and_refused_without_it() {
    let redis = RedisServer::start_tls().await;
    assert!(redis.url().starts_with("rediss://"));
    let trusted = link(redis.url(), Some(redis.ca_pem()));
    assert!(up_within(&trusted, Duration::from_secs(10)).await, "TLS with the server's CA");
    let other_ca = RedisServer::start_tls().await.ca_pem();
    let untrusted = link(redis.url(), Some(other_ca));
    assert!(!up_within(&untrusted, Duration::from_secs(2)).await, "a certificate the CA did not sign is refused");
    assert!(untrusted.counts().failures > 0);
    let plain = link(redis.url().replace("rediss://", "redis://"), None);
    assert!(!up_within(&plain, Duration::from_secs(1)).await, "plain text to a TLS port gets nowhere");
}
