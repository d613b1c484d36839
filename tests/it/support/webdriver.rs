//! A tiny W3C WebDriver client: chromedriver as a child process, headless Chromium sessions
//! driven with JSON over the harness's hyper client. Only what the browser tests use.

use super::{require, spawn_listening, Http, TempDir};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// True when both binaries are installed; otherwise the test skips, or fails under CI
/// (`support::require`).
pub fn available() -> bool {
    let found = if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        Ok(())
    } else {
        Err(format!("{CHROMIUM} or {CHROMEDRIVER} is not installed"))
    };
    require("chromium and chromedriver", found).is_some()
}

/// Where screenshots go: `target/screenshots/` beside the manifest.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running chromedriver, killed (with the browsers it started) on drop.
pub struct ChromeDriver {
    child: Child,
    pub base: String,
    http: Http,
}

impl ChromeDriver {
    pub async fn start() -> ChromeDriver {
        use std::os::unix::process::CommandExt;
        let (child, port) = spawn_listening("chromedriver", Duration::from_secs(20), |port| {
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so drop can end chromedriver and its browsers together.
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        })
        .await;
        let d = ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: Http::new(),
        };
        // The port accepts; wait for /status to say ready.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = d.http.get(&format!("{}/status", d.base), &[]).await;
            if r.status == StatusCode::OK && r.json()["value"]["ready"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }

    /// A new headless browser session with a fresh profile.
    pub async fn session(&self) -> WebDriver {
        let profile = TempDir::new("chromium");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1200,900",
                ]
            }
        }}});
        // Starting Chromium on a loaded 2-core CI machine can take long or fail once:
        // chromedriver gives up after its own 60 s, and a new attempt starts a new browser.
        let slow = Http::with_timeout(Duration::from_secs(90));
        let url = format!("{}/session", self.base);
        let mut attempt = 0;
        let v = loop {
            attempt += 1;
            match try_call(&slow, Method::POST, &url, Some(caps.clone())).await {
                Ok(v) => break v,
                Err(e) if attempt < 3 => {
                    eprintln!("chromium session not started (attempt {attempt}): {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        let id = v["sessionId"].as_str().expect("session id").to_owned();
        WebDriver {
            http: Http::new(),
            url: format!("{}/session/{id}", self.base),
            _profile: profile,
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0) above).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request; returns `value` or panics with WebDriver's error.
async fn call(http: &Http, method: Method, url: &str, body: Option<Value>) -> Value {
    match try_call(http, method, url, body).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// One request; `value`, or WebDriver's error as text (for polling across a navigation,
/// when the old document is gone and the new one not yet there).
async fn try_call(
    http: &Http,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let headers: &[(&str, &str)] = if bytes.is_empty() {
        &[]
    } else {
        &[("content-type", "application/json")]
    };
    let r = http.send(method.clone(), url, headers, bytes).await;
    let v = r.json();
    if !r.status.is_success() {
        return Err(format!(
            "webdriver {method} {url}: {} {}",
            r.status, v["value"]
        ));
    }
    Ok(v["value"].clone())
}

/// An element reference in a session.
#[derive(Clone, Debug)]
pub struct Element(String);

/// A browser session (one fresh profile).
pub struct WebDriver {
    http: Http,
    url: String,
    _profile: TempDir,
}

impl WebDriver {
    async fn get(&self, path: &str) -> Value {
        call(
            &self.http,
            Method::GET,
            &format!("{}{path}", self.url),
            None,
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        call(
            &self.http,
            Method::POST,
            &format!("{}{path}", self.url),
            Some(body),
        )
        .await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    /// Polls until the current URL satisfies `pred` (navigation after a click is asynchronous).
    pub async fn wait_for_url(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let u = self.current_url().await;
            if pred(&u) {
                return u;
            }
            assert!(Instant::now() < deadline, "still at {u}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `find_all`, polled until something matches (up to 15 s): right after a click that
    /// submits a form, the next page may not be there yet.
    pub async fn wait_for_all(&self, css: &str) -> Vec<Element> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.find_all(css).await;
            if !found.is_empty() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's visible text; "" while a navigation has no document yet.
    pub async fn try_body_text(&self) -> String {
        let script = json!({
            "script": "return document.body ? document.body.innerText : ''",
            "args": [],
        });
        try_call(
            &self.http,
            Method::POST,
            &format!("{}/execute/sync", self.url),
            Some(script),
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    /// Polls until the page's text contains `needle` (a form post navigates asynchronously).
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.try_body_text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?}; page text: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    pub async fn find(&self, css: &str) -> Element {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        Element(
            v[ELEMENT_KEY]
                .as_str()
                .expect("element reference")
                .to_owned(),
        )
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT_KEY].as_str().unwrap().to_owned()))
            .collect()
    }

    pub async fn send_keys(&self, el: &Element, text: &str) {
        self.post(&format!("/element/{}/value", el.0), json!({ "text": text }))
            .await;
    }

    pub async fn click(&self, el: &Element) {
        self.post(&format!("/element/{}/click", el.0), json!({}))
            .await;
    }

    /// Types into the field matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.send_keys(&el, text).await;
    }

    pub async fn text(&self, el: &Element) -> String {
        self.get(&format!("/element/{}/text", el.0))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", el.0))
            .await
            .as_str()
            .map(str::to_owned)
    }

    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap().to_owned()
    }

    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let b64 = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// A virtual authenticator (W3C WebAuthn §11): CTAP2 over the internal transport, with
    /// resident keys and user verification that succeeds. Returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .post(
                "/webauthn/authenticator",
                json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true,
                }),
            )
            .await;
        v.as_str().expect("authenticator id").to_owned()
    }

    pub async fn remove_virtual_authenticator(&self, id: &str) {
        call(
            &self.http,
            Method::DELETE,
            &format!("{}/webauthn/authenticator/{id}", self.url),
            None,
        )
        .await;
    }

    /// The credentials the virtual authenticator `id` holds.
    pub async fn authenticator_credentials(&self, id: &str) -> Vec<Value> {
        self.get(&format!("/webauthn/authenticator/{id}/credentials"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn quit(self) {
        call(&self.http, Method::DELETE, &self.url, None).await;
    }
}
