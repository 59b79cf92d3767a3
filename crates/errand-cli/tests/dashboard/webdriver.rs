//! A small W3C WebDriver client for the dashboard tests: start `chromedriver`, open a headless
//! Chromium session, navigate, find elements by CSS selector, click, type, read text, run a
//! script, take a screenshot.
//!
//! Why not a WebDriver crate: the tests use ten commands of a small, stable JSON-over-HTTP
//! protocol, and `reqwest` (already a dependency of this crate) speaks it; a client crate
//! would add a dozen crates to every `cargo test --workspace` build on two-core machines.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages,
//! which `.ci/run` installs. When they are missing the tests fail (never skip) and say how
//! to install them.

use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The longest any wait for the page may take: it bounds a hang, it does not time anything.
pub const PATIENCE: Duration = Duration::from_secs(20);

const INSTALL: &str = "the dashboard tests need Chromium and chromedriver: \
    `apt-get install -y chromium chromium-driver` (Debian; .ci/run installs them), or set \
    ERRAND_TEST_CHROMIUM and ERRAND_TEST_CHROMEDRIVER to their paths";

fn find_binary(var: &str, candidates: &[&str]) -> Option<String> {
    if let Ok(p) = std::env::var(var) {
        return Some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        if name.starts_with('/') {
            if std::path::Path::new(name).is_file() {
                return Some((*name).to_string());
            }
            continue;
        }
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

/// A headless Chromium driven through its own chromedriver process.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    _driver: Child,
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a 1400x1000 window.
    pub async fn start() -> Browser {
        let chromium = find_binary(
            "ERRAND_TEST_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .unwrap_or_else(|| panic!("Chromium not found: {INSTALL}"));
        let driver_bin = find_binary(
            "ERRAND_TEST_CHROMEDRIVER",
            &["chromedriver", "/usr/lib/chromium/chromedriver"],
        )
        .unwrap_or_else(|| panic!("chromedriver not found: {INSTALL}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver_bin}: {e}; {INSTALL}"));
        let http = crate::common::http_client();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = http.get(format!("{base}/status")).send().await.ok();
            if let Some(r) = ready {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--hide-scrollbars", "--force-device-scale-factor=1",
                         "--lang=en-US"]
            }
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .unwrap();
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not open a session: {res}; {INSTALL}"));
        Browser {
            session: format!("{base}/session/{id}"),
            http,
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    async fn try_call(&self, method: reqwest::Method, path: &str, body: Value) -> Option<Value> {
        let res = self
            .http
            .request(method, format!("{}{path}", self.session))
            .json(&body)
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.json::<Value>().await.ok().map(|v| v["value"].clone())
    }

    /// Loads a URL.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Every element matching a CSS selector now (possibly none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    /// Waits for an element matching `css` to exist and returns it.
    pub async fn wait(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(v) = found {
                if let Some(id) = v[ELEMENT].as_str() {
                    return Element(id.to_string());
                }
            }
            if Instant::now() > deadline {
                let body = self.text_of("body").await;
                panic!("no element `{css}` appeared within {PATIENCE:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of the first element matching `css` contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let t = self.text_of(css).await;
            if t.contains(needle) {
                return t;
            }
            if Instant::now() > deadline {
                panic!(
                    "`{css}` did not come to contain `{needle}` within {PATIENCE:?}; it says:\n{t}"
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until no element matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.find_all(css).await.is_empty() {
            assert!(
                Instant::now() < deadline,
                "`{css}` still on the page after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the first element matching `css` ("" if none).
    pub async fn text_of(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        self.execute(script, json!([css]))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Clicks an element.
    pub async fn click(&self, el: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            Some(json!({})),
        )
        .await;
    }

    /// Waits for `css` and clicks it. The views re-render as they refresh, so an element found
    /// a moment ago may have been replaced: find it again and retry until the click lands.
    pub async fn click_on(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let el = self.wait(css).await;
            let clicked = self
                .try_call(
                    reqwest::Method::POST,
                    &format!("/element/{}/click", el.0),
                    json!({}),
                )
                .await
                .is_some();
            if clicked {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "could not click `{css}` within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into an element.
    pub async fn type_into(&self, el: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Sets a <select>'s value and fires `change`, as a user's choice would.
    pub async fn select(&self, css: &str, value: &str) {
        self.wait(css).await;
        let script = "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
                      s.dispatchEvent(new Event('change', {bubbles: true}));";
        self.execute(script, json!([css, value])).await;
    }

    /// Runs a script in the page and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// A PNG of the viewport, resized first to the page's full height (up to 2400 px).
    pub async fn screenshot(&self, path: &std::path::Path) {
        let height = self
            .execute(
                "return Math.min(2400, Math.max(700, document.documentElement.scrollHeight));",
                json!([]),
            )
            .await
            .as_i64()
            .unwrap_or(1000);
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": 1400, "height": height + 90})),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": 1400, "height": 1000})),
        )
        .await;
    }

    /// Ends the session (the chromedriver process ends when this is dropped).
    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}
