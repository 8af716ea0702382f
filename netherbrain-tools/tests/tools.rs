//! The built-in tools, used and refused as a model would call them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use netherbrain_core::tool::{ToolContext, ToolError, ToolRegistry};
use netherbrain_tools::filesystem::{Filesystem, FsLimits};
use netherbrain_tools::shell::Shell;
use netherbrain_tools::web::Web;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

struct Fixture {
    _base: tempfile::TempDir,
    project: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().canonicalize().unwrap();
    let project = root.join("project");
    let outside = root.join("outside");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        project.join("src/main.rs"),
        "fn main() {\n    println!(\"hi\");\n}\n",
    )
    .unwrap();
    std::fs::write(project.join("notes.txt"), "one\ntwo\nthree\nfour\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "TOP SECRET\n").unwrap();
    Fixture {
        _base: base,
        project,
        outside,
    }
}

fn ctx(f: &Fixture) -> ToolContext {
    ToolContext::default().with_project_dirs(vec![f.project.clone()])
}

fn ctx_opts(f: &Fixture, opts: Value) -> ToolContext {
    let map = opts
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ctx(f).with_options(Arc::new(map))
}

fn fs() -> ToolRegistry {
    Filesystem::new().registry().unwrap()
}

async fn ok(tools: &ToolRegistry, name: &str, args: Value, ctx: ToolContext) -> String {
    match tools.call(name, args.clone(), ctx, T).await {
        Ok(out) => out.content,
        Err(e) => panic!("{name} {args} failed: {e}"),
    }
}

async fn refused(tools: &ToolRegistry, name: &str, args: Value, ctx: ToolContext) -> String {
    match tools.call(name, args.clone(), ctx, T).await {
        Ok(out) => panic!("{name} {args} should fail, gave {}", out.content),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn filesystem_normal_use() {
    let f = fixture();
    let t = fs();
    let view = ok(
        &t,
        "filesystem_view",
        json!({"path": "notes.txt", "start_line": 2, "end_line": 3}),
        ctx(&f),
    )
    .await;
    assert_eq!(view, "     2\ttwo\n     3\tthree\n");
    let abs = f.project.join("src/main.rs");
    let view = ok(
        &t,
        "filesystem_view",
        json!({"path": abs.to_str().unwrap()}),
        ctx(&f),
    )
    .await;
    assert!(view.contains("println!"), "{view}");

    let ls = ok(&t, "filesystem_ls", json!({}), ctx(&f)).await;
    assert!(
        ls.contains("dir   src/") && ls.contains("file  notes.txt  (19 bytes)"),
        "{ls}"
    );

    let w = ok(
        &t,
        "filesystem_write",
        json!({"path": "docs/new/readme.md", "content": "# Title\nbody\n"}),
        ctx(&f),
    )
    .await;
    assert!(w.starts_with("wrote 13 bytes"), "{w}");
    assert_eq!(
        std::fs::read_to_string(f.project.join("docs/new/readme.md")).unwrap(),
        "# Title\nbody\n"
    );

    let e = ok(
        &t,
        "filesystem_edit",
        json!({"path": "notes.txt", "edits": [
            {"old_text": "two", "new_text": "TWO"},
            {"old_text": "o", "new_text": "0", "replace_all": true}
        ]}),
        ctx(&f),
    )
    .await;
    assert!(e.contains("2 edit(s)"), "{e}");
    assert_eq!(
        std::fs::read_to_string(f.project.join("notes.txt")).unwrap(),
        "0ne\nTWO\nthree\nf0ur\n"
    );
    // an edit that does not apply leaves the file as it was
    let msg = refused(
        &t,
        "filesystem_edit",
        json!({"path": "notes.txt", "edits": [
            {"old_text": "three", "new_text": "3"},
            {"old_text": "missing", "new_text": "x"}
        ]}),
        ctx(&f),
    )
    .await;
    assert!(msg.contains("not found"), "{msg}");
    assert!(
        std::fs::read_to_string(f.project.join("notes.txt"))
            .unwrap()
            .contains("three")
    );
    let msg = refused(
        &t,
        "filesystem_edit",
        json!({"path": "notes.txt", "edits": [
            {"old_text": "e", "new_text": "E"}
        ]}),
        ctx(&f),
    )
    .await;
    assert!(msg.contains("occurs 3 times"), "{msg}");

    let g = ok(
        &t,
        "filesystem_glob",
        json!({"pattern": "**/*.rs"}),
        ctx(&f),
    )
    .await;
    assert_eq!(g, "src/main.rs");
    let g = ok(
        &t,
        "filesystem_grep",
        json!({"pattern": "print(ln)?!", "glob": "*.rs"}),
        ctx(&f),
    )
    .await;
    assert_eq!(g, "src/main.rs:2:     println!(\"hi\");");

    ok(&t, "filesystem_mkdir", json!({"path": "a/b/c"}), ctx(&f)).await;
    assert!(f.project.join("a/b/c").is_dir());
    ok(
        &t,
        "filesystem_copy",
        json!({"from": "notes.txt", "to": "a/copy.txt"}),
        ctx(&f),
    )
    .await;
    ok(
        &t,
        "filesystem_move",
        json!({"from": "a/copy.txt", "to": "a/b/moved.txt"}),
        ctx(&f),
    )
    .await;
    assert!(!f.project.join("a/copy.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.project.join("a/b/moved.txt")).unwrap(),
        std::fs::read_to_string(f.project.join("notes.txt")).unwrap()
    );
}

#[tokio::test]
async fn filesystem_refuses_escapes() {
    let f = fixture();
    let t = fs();
    let secret = f.outside.join("secret.txt");
    std::os::unix::fs::symlink(&secret, f.project.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&f.outside, f.project.join("linkdir")).unwrap();
    let cases = [
        ("filesystem_view", json!({"path": "../outside/secret.txt"})),
        ("filesystem_view", json!({"path": secret.to_str().unwrap()})),
        ("filesystem_view", json!({"path": "/etc/passwd"})),
        ("filesystem_view", json!({"path": "link.txt"})),
        ("filesystem_view", json!({"path": "linkdir/secret.txt"})),
        ("filesystem_ls", json!({"path": "linkdir"})),
        ("filesystem_ls", json!({"path": "/"})),
        (
            "filesystem_write",
            json!({"path": "../outside/new.txt", "content": "x"}),
        ),
        (
            "filesystem_write",
            json!({"path": "linkdir/new.txt", "content": "x"}),
        ),
        (
            "filesystem_write",
            json!({"path": "link.txt", "content": "overwritten"}),
        ),
        (
            "filesystem_edit",
            json!({"path": "link.txt", "edits": [{"old_text": "TOP", "new_text": "x"}]}),
        ),
        ("filesystem_mkdir", json!({"path": "linkdir/sub"})),
        (
            "filesystem_copy",
            json!({"from": "link.txt", "to": "copied.txt"}),
        ),
        (
            "filesystem_copy",
            json!({"from": "notes.txt", "to": "linkdir/stolen.txt"}),
        ),
        (
            "filesystem_move",
            json!({"from": "notes.txt", "to": "../outside/moved.txt"}),
        ),
        (
            "filesystem_grep",
            json!({"pattern": "SECRET", "path": "linkdir"}),
        ),
    ];
    for (name, args) in cases {
        let msg = refused(&t, name, args.clone(), ctx(&f)).await;
        assert!(!msg.contains("TOP SECRET"), "{name} {args}: {msg}");
    }
    // grep over the project does not follow the links out
    let g = ok(&t, "filesystem_grep", json!({"pattern": "SECRET"}), ctx(&f)).await;
    assert_eq!(g, "no match for `SECRET`");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOP SECRET\n");
    assert!(!f.outside.join("new.txt").exists() && !f.outside.join("stolen.txt").exists());
    assert!(!f.outside.join("moved.txt").exists() && !f.outside.join("sub").exists());
    // without a workspace there is nothing to touch
    let msg = refused(
        &t,
        "filesystem_view",
        json!({"path": "notes.txt"}),
        ToolContext::default(),
    )
    .await;
    assert!(msg.contains("no workspace"), "{msg}");
}

#[tokio::test]
async fn a_symlink_swapped_in_after_any_check_cannot_escape() {
    let f = fixture();
    let t = fs();
    let target = f.project.join("flip.txt");
    // swapped before the open, after the file was seen as regular
    std::fs::write(&target, "inside\n").unwrap();
    let first = ok(&t, "filesystem_view", json!({"path": "flip.txt"}), ctx(&f)).await;
    assert!(first.contains("inside"));
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(f.outside.join("secret.txt"), &target).unwrap();
    let msg = refused(&t, "filesystem_view", json!({"path": "flip.txt"}), ctx(&f)).await;
    assert!(msg.contains("refused") || msg.contains("outside"), "{msg}");

    // and swapped continuously while the tool reads
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let target = target.clone();
        let secret = f.outside.join("secret.txt");
        let regular = f.project.join("regular.txt");
        std::fs::write(&regular, "inside\n").unwrap();
        std::thread::spawn(move || {
            let tmp = target.with_extension("tmp");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::os::unix::fs::symlink(&secret, &tmp);
                let _ = std::fs::rename(&tmp, &target);
                let _ = std::fs::copy(&regular, &tmp);
                let _ = std::fs::rename(&tmp, &target);
            }
        })
    };
    for _ in 0..300 {
        if let Ok(out) = t
            .call("filesystem_view", json!({"path": "flip.txt"}), ctx(&f), T)
            .await
        {
            assert!(!out.content.contains("SECRET"), "escaped: {}", out.content);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
}

#[tokio::test]
async fn oversized_and_binary_files_are_reported_not_dumped() {
    let f = fixture();
    let mut limits = FsLimits::default();
    limits.max_file_bytes = 1024;
    let t = Filesystem::with_limits(limits).registry().unwrap();
    std::fs::write(f.project.join("big.txt"), "x".repeat(2048)).unwrap();
    std::fs::write(f.project.join("blob.bin"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    let msg = refused(&t, "filesystem_view", json!({"path": "big.txt"}), ctx(&f)).await;
    assert!(msg.contains("2048 bytes, over the limit of 1024"), "{msg}");
    let msg = refused(&t, "filesystem_view", json!({"path": "blob.bin"}), ctx(&f)).await;
    assert!(msg.contains("binary file (7 bytes)"), "{msg}");
    let msg = refused(
        &t,
        "filesystem_write",
        json!({"path": "w.txt", "content": "y".repeat(2000)}),
        ctx(&f),
    )
    .await;
    assert!(msg.contains("over the limit"), "{msg}");
    assert!(!f.project.join("w.txt").exists());
    let msg = refused(
        &t,
        "filesystem_copy",
        json!({"from": "big.txt", "to": "big2.txt"}),
        ctx(&f),
    )
    .await;
    assert!(msg.contains("over the limit"), "{msg}");
}

fn shell() -> ToolRegistry {
    Shell::new().registry().unwrap()
}

fn no_sandbox(f: &Fixture) -> ToolContext {
    ctx_opts(f, json!({"shell": {"sandbox": "none"}}))
}

#[tokio::test]
async fn shell_runs_in_the_project_with_a_scrubbed_environment() {
    let f = fixture();
    let out = ok(
        &shell(),
        "shell_run",
        json!({"command": "pwd; ls; echo err >&2; exit 3"}),
        no_sandbox(&f),
    )
    .await;
    assert!(out.starts_with("exit status: 3\n"), "{out}");
    assert!(out.contains(&format!("{}\n", f.project.display())), "{out}");
    assert!(
        out.contains("notes.txt") && out.contains("--- stderr ---\nerr"),
        "{out}"
    );
    let env = ok(
        &shell(),
        "shell_run",
        json!({"command": "env"}),
        no_sandbox(&f),
    )
    .await;
    let names: Vec<&str> = env
        .lines()
        .skip_while(|l| *l != "--- stdout ---")
        .skip(1)
        .take_while(|l| *l != "--- stderr ---")
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split('=').next())
        .collect();
    for name in &names {
        assert!(
            [
                "PATH", "LANG", "HOME", "TERM", "PWD", "SHLVL", "_", "OLDPWD"
            ]
            .contains(name),
            "unexpected variable {name} in {env}"
        );
    }
}

#[test]
fn secrets_of_the_server_never_reach_the_shell() {
    // a child test process with secrets in its environment
    if std::env::var_os("NB_SHELL_CHILD").is_none() {
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(exe)
            .args([
                "secrets_of_the_server_never_reach_the_shell",
                "--exact",
                "--nocapture",
            ])
            .env("NB_SHELL_CHILD", "1")
            .env("NETHER_AUTH_TOKEN", "nether-secret-token")
            .env("OPENAI_API_KEY", "sk-provider-secret")
            .env("ANTHROPIC_API_KEY", "sk-ant-secret")
            .status()
            .unwrap();
        assert!(status.success());
        return;
    }
    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for opts in [json!({"shell": {"sandbox": "none"}}), json!({})] {
        let out = rt.block_on(ok(
            &shell(),
            "shell_run",
            json!({"command": "env; cat /proc/self/environ | tr '\\0' '\\n'"}),
            ctx_opts(&f, opts),
        ));
        for secret in [
            "nether-secret-token",
            "sk-provider-secret",
            "sk-ant-secret",
            "NETHER_",
            "API_KEY",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn shell_timeout_kills_the_whole_process_group() {
    let f = fixture();
    let opts = ctx_opts(&f, json!({"shell": {"sandbox": "none", "timeout_secs": 1}}));
    // a grandchild in the background and a foreground sleeper
    let out = ok(
        &shell(),
        "shell_run",
        json!({"command": "sleep 300 & echo $! > bg.pid; sleep 300"}),
        opts,
    )
    .await;
    assert!(out.starts_with("timed out after 1 s"), "{out}");
    let pid: i32 = std::fs::read_to_string(f.project.join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "background child {pid} survived the timeout");
}

#[tokio::test]
async fn shell_interrupt_kills_the_process_group() {
    let f = fixture();
    let c = no_sandbox(&f);
    let cancel = c.cancel.clone();
    let project = f.project.clone();
    let canceller = tokio::spawn(async move {
        for _ in 0..250 {
            if project.join("bg.pid").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
    });
    let r = shell()
        .call(
            "shell_run",
            json!({"command": "sleep 300 & echo $! > bg.pid; wait"}),
            c,
            T,
        )
        .await;
    canceller.await.unwrap();
    assert_eq!(r, Err(ToolError::Cancelled));
    let pid: i32 = std::fs::read_to_string(f.project.join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "child {pid} survived the interrupt");
}

#[tokio::test]
async fn shell_output_is_capped() {
    let f = fixture();
    let out = ok(
        &shell(),
        "shell_run",
        json!({"command": "head -c 200000 /dev/zero | tr '\\0' a"}),
        no_sandbox(&f),
    )
    .await;
    assert!(
        out.contains("[134464 more bytes of stdout dropped]"),
        "{}",
        &out[out.len() - 200..]
    );
}

#[tokio::test]
async fn bwrap_sandbox_confines_writes_and_network() {
    if !Path::new("/usr/bin/bwrap").exists() {
        eprintln!("bubblewrap is not installed; scripts/test installs it");
        return;
    }
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sandboxed = ctx_opts(&f, json!({"shell": {"sandbox": "bwrap"}}));
    let outside = f.outside.join("written.txt");
    let cmd = format!(
        "echo ok > inside.txt && cat inside.txt; echo x > {} ; echo x > /usr/evil; (exec 3<>/dev/tcp/127.0.0.1/{port}) && echo CONNECTED; cat {}",
        outside.display(),
        f.outside.join("secret.txt").display()
    );
    let out = ok(&shell(), "shell_run", json!({"command": cmd}), sandboxed).await;
    assert!(out.contains("sandbox: bwrap (no network)"), "{out}");
    assert!(out.contains("--- stdout ---\nok\n"), "{out}");
    assert!(
        !out.contains("CONNECTED") && !out.contains("TOP SECRET"),
        "{out}"
    );
    assert!(!outside.exists() && !Path::new("/usr/evil").exists());
    assert_eq!(
        std::fs::read_to_string(f.project.join("inside.txt")).unwrap(),
        "ok\n"
    );
    // the preset may allow the network
    let net = ctx_opts(
        &f,
        json!({"shell": {"sandbox": "bwrap", "allow_network": true}}),
    );
    let out = ok(
        &shell(),
        "shell_run",
        json!({"command": format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) && echo CONNECTED")}),
        net,
    )
    .await;
    assert!(out.contains("CONNECTED"), "{out}");
    drop(listener);
}

fn web() -> ToolRegistry {
    Web::new().registry().unwrap()
}

#[tokio::test]
async fn web_refuses_private_addresses_directly_and_after_dns() {
    let f = fixture();
    let server = wiremock::MockServer::start().await;
    let port = server.address().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::1]:{port}/"),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        let msg = refused(&web(), "web_fetch", json!({"url": url}), ctx(&f)).await;
        assert!(
            msg.contains("refused") || msg.contains("only http"),
            "{url}: {msg}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn web_refuses_private_addresses_on_every_redirect_hop() {
    use wiremock::matchers::path;
    use wiremock::{Mock, ResponseTemplate};
    let f = fixture();
    let allowed = wiremock::MockServer::start().await;
    let target = wiremock::MockServer::start().await;
    let tport = target.address().port();
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string("PRIVATE DATA"))
        .mount(&target)
        .await;
    for (p, to) in [
        ("/to-loopback", format!("http://127.0.0.1:{tport}/")),
        ("/to-localhost", format!("http://localhost:{tport}/")),
        ("/to-ten", "http://10.1.2.3/".to_owned()),
        ("/to-metadata", "http://169.254.169.254/".to_owned()),
        ("/to-v6", format!("http://[::1]:{tport}/")),
    ] {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(302).insert_header("location", to.as_str()))
            .mount(&allowed)
            .await;
    }
    // only the first hop's host is exempt
    let opts =
        json!({"web": {"allowed_hosts": [format!("127.0.0.1:{}", allowed.address().port())]}});
    for p in [
        "/to-loopback",
        "/to-localhost",
        "/to-ten",
        "/to-metadata",
        "/to-v6",
    ] {
        let url = format!("{}{p}", allowed.uri());
        let msg = refused(
            &web(),
            "web_fetch",
            json!({"url": url}),
            ctx_opts(&f, opts.clone()),
        )
        .await;
        assert!(msg.contains("refused"), "{p}: {msg}");
        assert!(!msg.contains("PRIVATE DATA"));
    }
    assert!(target.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_allowed_host_name_is_exempt_only_on_its_listed_port() {
    use wiremock::{Mock, ResponseTemplate};
    let f = fixture();
    let server = wiremock::MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string("local service"))
        .mount(&server)
        .await;
    let port = server.address().port();
    let opts = json!({"web": {"allowed_hosts": [format!("localhost:{port}")]}});
    let out = ok(
        &web(),
        "web_fetch",
        json!({"url": format!("http://localhost:{port}/")}),
        ctx_opts(&f, opts.clone()),
    )
    .await;
    assert!(out.contains("local service"), "{out}");
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let msg = refused(
        &web(),
        "web_fetch",
        json!({"url": format!("http://localhost:{other_port}/")}),
        ctx_opts(&f, opts),
    )
    .await;
    assert!(msg.contains("refused"), "{msg}");
}

#[tokio::test]
async fn web_fetches_readable_text_when_allowed() {
    use wiremock::matchers::path;
    use wiremock::{Mock, ResponseTemplate};
    let f = fixture();
    let server = wiremock::MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<html><head><script>evil()</script><title>T</title></head><body><h1>Hello</h1><p>A <a href=\"/x\">link</a> here.</p></body></html>",
            "text/html; charset=utf-8",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/big"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_string("z".repeat(10_000)),
        )
        .mount(&server)
        .await;
    Mock::given(path("/hop"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/page"))
        .mount(&server)
        .await;
    let opts = json!({"web": {"allow_private": true, "max_bytes": 1000}});
    let out = ok(
        &web(),
        "web_fetch",
        json!({"url": format!("{}/hop", server.uri())}),
        ctx_opts(&f, opts.clone()),
    )
    .await;
    assert!(
        out.contains("Status: 200") && out.contains("# Hello") && out.contains("link"),
        "{out}"
    );
    assert!(!out.contains("<p>") && !out.contains("evil()"), "{out}");
    assert!(
        out.contains(&format!("URL: {}/page", server.uri())),
        "{out}"
    );
    let out = ok(
        &web(),
        "web_fetch",
        json!({"url": format!("{}/big", server.uri())}),
        ctx_opts(&f, opts),
    )
    .await;
    assert!(out.ends_with("[body cut at 1000 bytes]"), "{out}");
}
