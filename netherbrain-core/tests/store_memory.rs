//! The `StateStore` conformance suite against [`MemoryStore`].

use std::sync::Arc;

use netherbrain_core::store::{MemoryStore, StateStore};

netherbrain_core::store_conformance_tests!(async {
    Arc::new(MemoryStore::new()) as Arc<dyn StateStore>
});
