//! Blob storage (in progress).
