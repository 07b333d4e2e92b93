//! A per-process cache of rendered latency tables, so polling clients and dashboards cost
//! neither database reads nor serialisation. It holds nothing that is not in Postgres: every
//! replica invalidates its copy when Postgres notifies that a device's entries changed
//! (`LISTEN gpulut_tables`), and drops everything whenever that notification channel was
//! interrupted (notifications may have been missed).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use uuid::Uuid;

/// Most rendered tables kept; past it the cache starts over (tables are cheap to re-render).
const MAX_ENTRIES: usize = 1024;

/// A rendered table: what `GET /v1/tables/{device}/{framework}` answers.
#[derive(Clone)]
pub struct Rendered {
    pub device: Uuid,
    pub content_type: &'static str,
    pub etag: String,
    pub body: Bytes,
}

/// Request identity: the path's device and framework as written, the space and the format.
pub type Key = (String, String, String, String);

#[derive(Default)]
pub struct TableCache {
    entries: Mutex<HashMap<Key, Rendered>>,
    /// Bumped by every invalidation, so a rendering that read the database before an
    /// invalidation is not stored after it.
    generation: std::sync::atomic::AtomicU64,
}

impl TableCache {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Rendered>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &Key) -> Option<Rendered> {
        self.locked().get(key).cloned()
    }

    /// The generation to pass to [`insert`](Self::insert); read it before reading the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stores a rendering unless an invalidation happened since `generation` was read.
    pub fn insert(&self, key: Key, value: Rendered, generation: u64) {
        let mut m = self.locked();
        if self.generation() != generation {
            return;
        }
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(key, value);
    }

    /// Forgets every rendering of one device's tables (its entries changed).
    pub fn invalidate_device(&self, device: Uuid) {
        let mut m = self.locked();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        m.retain(|_, v| v.device != device);
    }

    pub fn clear(&self) {
        let mut m = self.locked();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        m.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(device: Uuid) -> Rendered {
        Rendered {
            device,
            content_type: "application/json",
            etag: "\"x\"".into(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn invalidation_is_per_device() {
        let c = TableCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let key = |d: &str| {
            (
                d.to_string(),
                "f".to_string(),
                "s".to_string(),
                "json".to_string(),
            )
        };
        let g = c.generation();
        c.insert(key("a"), rendered(a), g);
        c.insert(key("a-by-name"), rendered(a), g);
        c.insert(key("b"), rendered(b), g);
        c.invalidate_device(a);
        assert!(c.get(&key("a")).is_none() && c.get(&key("a-by-name")).is_none());
        assert!(c.get(&key("b")).is_some());
        c.clear();
        assert!(c.get(&key("b")).is_none());
        // A rendering made before an invalidation is not stored after it.
        let g = c.generation();
        c.invalidate_device(b);
        c.insert(key("b"), rendered(b), g);
        assert!(c.get(&key("b")).is_none());
    }
}
