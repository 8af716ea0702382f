//! The Netherbrain HTTP server and its typed client.
