//! A real server over TCP on a MemoryStore, for the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod agents;
pub mod flaky;

use std::sync::Arc;

use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::store::{MemoryStore, StateStore};
use netherbrain_core::workspace::WorkspaceRoots;
use netherbrain_http::client::Client;
use netherbrain_http::dto::{CreateUserRequest, Role, UserView};
use netherbrain_http::{AppState, PasswordHashParams, ServerConfig, bootstrap_admin, serve};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn StateStore>,
    /// Set when started with [`start_flaky`].
    pub flaky: Option<Arc<flaky::FlakyStore>>,
    pub state: AppState,
    /// Authenticated as the bootstrap admin.
    pub admin: Client,
    /// No token.
    pub anon: Client,
    pub admin_token: String,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Test defaults: cheap password hashing.
pub fn config() -> ServerConfig {
    ServerConfig::default().with_password_hash(PasswordHashParams::insecure_fast())
}

pub async fn start() -> TestServer {
    start_with(config()).await
}

pub async fn start_with(config: ServerConfig) -> TestServer {
    start_store(Arc::new(MemoryStore::new()), None, config).await
}

/// A server over a store that can be made to fail.
pub async fn start_flaky() -> TestServer {
    let flaky = Arc::new(flaky::FlakyStore::new());
    start_store(flaky.store(), Some(flaky), config()).await
}

/// A server whose presets run on `catalog`'s providers and tool sets.
pub async fn start_catalog(catalog: AgentCatalog) -> TestServer {
    start_full(
        Arc::new(MemoryStore::new()),
        None,
        config(),
        Arc::new(catalog),
    )
    .await
}

/// A server whose workspaces' project directories must lie under `roots`.
pub async fn start_roots(roots: Vec<std::path::PathBuf>) -> TestServer {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let service = ConversationService::builder(store.clone())
        .workspace_roots(WorkspaceRoots::new(roots).expect("roots"))
        .build();
    start_service(store, config(), service).await
}

/// A server whose memories have these limits.
pub async fn start_memories(memory: netherbrain_core::memory::MemoryConfig) -> TestServer {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let service = ConversationService::builder(store.clone())
        .memories(netherbrain_core::memory::Memories::new(
            store.clone(),
            memory,
        ))
        .build();
    start_service(store, config(), service).await
}

async fn start_store(
    store: Arc<dyn StateStore>,
    flaky: Option<Arc<flaky::FlakyStore>>,
    config: ServerConfig,
) -> TestServer {
    start_full(store, flaky, config, Arc::new(AgentCatalog::new())).await
}

async fn start_full(
    store: Arc<dyn StateStore>,
    flaky: Option<Arc<flaky::FlakyStore>>,
    config: ServerConfig,
    catalog: Arc<AgentCatalog>,
) -> TestServer {
    let service = ConversationService::builder(store.clone())
        .catalog(catalog)
        .build();
    let mut server = start_service(store, config, service).await;
    server.flaky = flaky;
    server
}

/// A server with `/api/providers/*` on: `config_profiles` as the config
/// file's, API keys sealed by the key file in `data_dir`, the catalog
/// built from profiles alone.
pub async fn start_providers(
    store: Arc<dyn StateStore>,
    config_profiles: Vec<netherbrain_core::provider::ProviderProfile>,
    data_dir: &std::path::Path,
) -> TestServer {
    use netherbrain_core::conversation::providers::ProviderSettings;
    let service = ConversationService::builder(store.clone()).build();
    let providers = ProviderSettings::new(
        service.clone(),
        config_profiles,
        Arc::new(|profiles: &[netherbrain_core::provider::ProviderProfile]| {
            let usable: Vec<_> = profiles
                .iter()
                .filter(|p| p.build().is_ok())
                .cloned()
                .collect();
            AgentCatalog::from_profiles(&usable).expect("usable profiles build")
        }),
    )
    .with_cipher(Arc::new(netherbrain_store::secret::KeyFile::new(data_dir)));
    providers.rebuild().await.expect("rebuild");
    start_service_with(store, config(), service, Some(providers)).await
}

async fn start_service(
    store: Arc<dyn StateStore>,
    config: ServerConfig,
    service: ConversationService,
) -> TestServer {
    start_service_with(store, config, service, None).await
}

async fn start_service_with(
    store: Arc<dyn StateStore>,
    config: ServerConfig,
    service: ConversationService,
    providers: Option<netherbrain_core::conversation::providers::ProviderSettings>,
) -> TestServer {
    let flaky = None;
    let token = config.auth_token.clone();
    let generated = bootstrap_admin(store.as_ref(), token.as_deref())
        .await
        .expect("bootstrap");
    let admin_token = generated.or(token).expect("an admin token");
    let mut builder = AppState::builder(store.clone())
        .config(config)
        .service(service);
    if let Some(providers) = providers {
        builder = builder.providers(providers);
    }
    let state = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        serve(listener, task_state, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    let base = format!("http://{addr}");
    let anon = Client::new(base.clone(), None).expect("client");
    let admin = anon.with_token(admin_token.clone());
    TestServer {
        base,
        store,
        flaky,
        state,
        admin,
        anon,
        admin_token,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a user with a password and logs in; returns the user and a
    /// client with its token.
    pub async fn user(&self, username: &str, role: Role) -> (UserView, Client) {
        let temporary = format!("{username}-temporary");
        let password = format!("{username}-password");
        let user = self
            .admin
            .create_user(&CreateUserRequest {
                username: username.to_owned(),
                password: Some(temporary.clone()),
                display_name: None,
                role,
            })
            .await
            .expect("create user");
        let (user, client, _) = self.login_temporary(user, &temporary, &password).await;
        (user, client)
    }

    /// Like [`TestServer::user`], also returning the bearer token.
    pub async fn user_token(&self, username: &str) -> (UserView, Client, String) {
        let temporary = format!("{username}-temporary");
        let password = format!("{username}-password");
        let user = self
            .admin
            .create_user(&CreateUserRequest {
                username: username.to_owned(),
                password: Some(temporary.clone()),
                display_name: None,
                role: Role::User,
            })
            .await
            .expect("create user");
        self.login_temporary(user, &temporary, &password).await
    }

    /// Logs `user` in with the temporary password an admin gave it and
    /// replaces it with `password`, as a user does at first login.
    async fn login_temporary(
        &self,
        user: UserView,
        temporary: &str,
        password: &str,
    ) -> (UserView, Client, String) {
        assert!(
            user.must_change_password,
            "an admin-set password is temporary"
        );
        let login = self
            .anon
            .login(&user.username, temporary)
            .await
            .expect("login");
        let client = self.anon.with_token(login.token.clone());
        let user = client
            .change_password(Some(temporary), password)
            .await
            .expect("change the temporary password");
        (user, client, login.token)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// Asserts an error response: status, JSON body of the error shape, code.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: serde_json::Value = resp.json().await.expect("json body");
    assert_eq!(body["error"]["code"], code, "body {body}");
    assert!(body["error"]["message"].is_string(), "body {body}");
    body
}
