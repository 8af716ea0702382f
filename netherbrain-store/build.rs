//! Rebuilds when a migration changes: `sqlx::migrate!` embeds the files at
//! compile time but cannot tell Cargo to watch them on stable Rust.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
