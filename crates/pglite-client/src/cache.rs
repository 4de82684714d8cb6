//! The least-recently-used cache of statements prepared for SQL text.

use std::collections::HashMap;

use crate::statement::Statement;

/// Default number of cached statements per client.
pub(crate) const DEFAULT_CAPACITY: usize = 256;

#[derive(Debug)]
pub(crate) struct StatementCache {
    capacity: usize,
    tick: u64,
    map: HashMap<String, (Statement, u64)>,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> StatementCache {
        StatementCache {
            capacity,
            tick: 0,
            map: HashMap::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Changes the capacity, dropping the least recently used entries over it.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.map.len() > capacity {
            self.evict_one();
        }
    }

    pub(crate) fn get(&mut self, sql: &str) -> Option<Statement> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(sql).map(|(stmt, used)| {
            *used = tick;
            stmt.clone()
        })
    }

    /// Adds a statement, evicting the least recently used ones to make room. Dropped
    /// statements close themselves on the server (see `Statement`).
    pub(crate) fn insert(&mut self, sql: &str, stmt: Statement) {
        if self.capacity == 0 {
            return;
        }
        while self.map.len() >= self.capacity {
            self.evict_one();
        }
        self.tick += 1;
        self.map.insert(sql.to_owned(), (stmt, self.tick));
    }

    pub(crate) fn remove(&mut self, sql: &str) {
        self.map.remove(sql);
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    fn evict_one(&mut self) {
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(sql, _)| sql.clone());
        if let Some(sql) = oldest {
            self.map.remove(&sql);
        }
    }
}
