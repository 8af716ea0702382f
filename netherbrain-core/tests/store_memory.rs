//! The `StateStore` conformance suite against [`MemoryStore`], directly and
//! through a [`StoreParts`] (which must delegate every call, the provided
//! `session_history` too).

use std::sync::Arc;

use netherbrain_core::store::{MemoryStore, StateStore, StoreParts};

netherbrain_core::store_conformance_tests!(async {
    Arc::new(MemoryStore::new()) as Arc<dyn StateStore>
});

mod parts {
    use super::*;

    netherbrain_core::store_conformance_tests!(async {
        Arc::new(StoreParts::new(Arc::new(MemoryStore::new()))) as Arc<dyn StateStore>
    });
}
