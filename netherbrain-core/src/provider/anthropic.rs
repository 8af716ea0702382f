//! The Anthropic Messages API adapter (feature `anthropic`).
