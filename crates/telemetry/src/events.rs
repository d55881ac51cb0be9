//! Incidents and operations as events: breaker moves, routes with no
//! healthy target and their recovery, policy loads, rejections, demotions
//! and fallbacks, config reloads, draining. The latest are kept for `GET
//! /admin/events` and the status page; every one is also broadcast (the
//! status page's live feed, the incident webhooks). Emitting never blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for the admin API and the status page.
const KEPT: usize = 500;

/// How much an event matters to whoever is on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Things going as they should (a load, a reload, a breaker closing).
    Info,
    /// Degraded but answering (a breaker opening, a rejected file, a fallback).
    Warning,
    /// Clients are not being answered by a provider (a route with no healthy target).
    Critical,
}

/// One event, as the admin API and the webhooks send it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Increasing from 1 for the life of the process.
    pub id: u64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `breaker_opened`, `route_down`, `policy_rejected`, ... (docs/operations.md lists them).
    pub kind: &'static str,
    pub severity: Severity,
    /// What it is about: a target (`provider/model`), a route, a policy, the config.
    pub subject: String,
    /// What happened, in a sentence.
    pub message: String,
}

impl Event {
    /// A one-line text for chat tools (`text` in a webhook's body).
    pub fn text(&self) -> String {
        let mark = match self.severity {
            Severity::Info => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "CRITICAL",
        };
        format!("[switchyard] {mark}: {} ({}): {}", self.kind.replace('_', " "), self.subject, self.message)
    }
}

/// The event log of one gateway (shared by every config generation).
pub struct Events {
    kept: Mutex<VecDeque<Arc<Event>>>,
    next: AtomicU64,
    feed: broadcast::Sender<Arc<Event>>,
}

impl Events {
    pub fn new() -> Arc<Events> {
        Arc::new(Events {
            kept: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(1),
            feed: broadcast::channel(1024).0,
        })
    }

    /// Records an event, logs it, and tells the subscribers.
    pub fn emit(&self, kind: &'static str, severity: Severity, subject: impl Into<String>, message: impl Into<String>) {
        let event = Arc::new(Event {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            at: crate::now_rfc3339(),
            kind,
            severity,
            subject: subject.into(),
            message: message.into(),
        });
        match severity {
            Severity::Info => tracing::info!(kind, subject = %event.subject, "{}", event.message),
            Severity::Warning => tracing::warn!(kind, subject = %event.subject, "{}", event.message),
            Severity::Critical => tracing::error!(kind, subject = %event.subject, "{}", event.message),
        }
        {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(event.clone());
        }
        let _ = self.feed.send(event);
    }

    /// The latest events after id `after`, oldest first, at most `limit`.
    pub fn since(&self, after: u64, limit: usize) -> Vec<Arc<Event>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let newer: Vec<Arc<Event>> = kept.iter().filter(|e| e.id > after).cloned().collect();
        newer[newer.len().saturating_sub(limit)..].to_vec()
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.feed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_are_kept_in_order_and_read_after_an_id() {
        let events = Events::new();
        for i in 0..(KEPT + 10) {
            events.emit("config_reloaded", Severity::Info, "config", format!("reload {i}"));
        }
        let all = events.since(0, usize::MAX);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].id, 11);
        assert_eq!(all.last().map(|e| e.id), Some((KEPT + 10) as u64));
        let after = events.since(505, 3);
        assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), vec![508, 509, 510]);
        assert!(all[0].text().starts_with("[switchyard] ok: config reloaded (config): reload 10"));
    }
}
