//! The Netherbrain IM gateway: chat platforms bridged to agents.
