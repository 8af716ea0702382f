//! `include_dir!` cannot tell cargo which files it read: rebuild when the
//! embedded web UI build changes.

fn main() {
    println!("cargo:rerun-if-changed=webui-dist");
}
