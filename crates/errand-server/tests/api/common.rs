//! The harness: the router served on a free loopback port over the test's own store, and a
//! small HTTP client that returns (status, JSON).

use errand::Client;
use errand_server::{ApiToken, Role, ServerConfig};
use errand_store_tests::Harness;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// One token per role, with these values.
pub fn tokens() -> Vec<ApiToken> {
    Role::ALL
        .iter()
        .map(|r| ApiToken {
            name: r.as_str().into(),
            token: format!("tok-{}", r.as_str()),
            role: *r,
        })
        .collect()
}

/// A running API.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    /// Bearer token sent by [`Api::call`]; `None` sends no header.
    pub token: Option<String>,
    pub client: Client,
}

/// Serves the API over the harness's store. `with_tokens`: one token per role (the
/// default caller is admin); otherwise no tokens at all.
pub async fn start(h: &Harness, with_tokens: bool) -> Api {
    start_with(h, |c| {
        if with_tokens {
            c.tokens = tokens();
        }
    })
    .await
}

pub async fn start_with(h: &Harness, configure: impl FnOnce(&mut ServerConfig)) -> Api {
    // A small argument limit, so the test of it sends a small body.
    let client = Client::from_store(h.store.clone()).with_limits(errand::Limits {
        max_args_bytes: 16 * 1024,
    });
    serve(client, configure).await
}

/// Serves the API for `client` on a free loopback port; the default caller is admin when
/// the configuration has tokens.
async fn serve(client: Client, configure: impl FnOnce(&mut ServerConfig)) -> Api {
    let mut config = ServerConfig {
        poll_interval: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    configure(&mut config);
    let with_tokens = !config.tokens.is_empty();
    let app = errand_server::router(client.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Api {
        base: format!("http://{addr}"),
        http: http_builder().build().unwrap(),
        token: with_tokens.then(|| "tok-admin".to_string()),
        client,
    }
}

/// A reqwest client builder. reqwest is built with rustls and no crypto provider of its own
/// (the errand binary installs ring at start), so the test process installs ring first.
pub fn http_builder() -> reqwest::ClientBuilder {
    #[allow(deprecated)] // ring has no post-quantum key exchange; the binary uses it too
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A response: status and body (JSON, or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a 4xx with the API's error shape and returns the error object.
    #[track_caller]
    pub fn expect_error(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        let e = self.body["error"].clone();
        assert!(e["code"].is_string(), "no error code in {}", self.body);
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no error message in {}",
            self.body
        );
        e
    }
}

impl Api {
    /// The same API as another caller.
    pub fn as_token(&self, token: Option<&str>) -> Api {
        Api {
            base: self.base.clone(),
            http: self.http.clone(),
            token: token.map(str::to_string),
            client: self.client.clone(),
        }
    }

    /// A request with a raw body.
    pub async fn raw(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.raw(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.raw(
            Method::POST,
            path,
            Some(("application/json", serde_json::to_vec(&body).unwrap())),
        )
        .await
    }

    /// POST without a body.
    pub async fn post_empty(&self, path: &str) -> Resp {
        self.raw(Method::POST, path, None).await
    }

    /// Enqueues one job and returns its id.
    pub async fn enqueue(&self, body: Value) -> i64 {
        let r = self.post("/v1/jobs", body).await.expect(201);
        r["id"].as_i64().unwrap()
    }

    /// Every job, newest first, as the store has it.
    pub async fn all_jobs(&self) -> Vec<errand::Job> {
        self.client
            .list(&errand::JobList {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .jobs
    }
}

/// Serves the API over the harness's store with a client that knows these tasks (as
/// `errand serve` builds it from `[tasks]`).
pub async fn start_with_tasks(h: &Harness, tasks: errand::TaskCatalog) -> Api {
    serve(
        Client::from_store(h.store.clone()).with_tasks(tasks),
        |_| {},
    )
    .await
}
