//! `[pages] templates` (issue 21): the operator's `layout.html` frames every gateway page (with
//! the accent colour still in the stylesheet), a reload reads it again (and a broken one is
//! refused, the running frame kept), and `check` refuses a frame it cannot use, naming the
//! file, the key and what is wrong.

use crate::support::*;
use hyper::StatusCode;
use std::path::Path;
use std::process::Command;

const BROWSER: (&str, &str) = ("accept", "text/html");

/// Native sign-in on `/normal`, the accent colour and the template directory `tpl`.
const EXTRA: &str = r##"
[storage]
url = "sqlite://users.db"

[native]

[mfa]
issuer = "Test Helpdesk"
methods = ["totp"]

[branding]
product_name = "Help & Desk"

[pages]
accent_color = "#0A5"
templates = "tpl"
"##;

/// An operator's frame using every placeholder, with `marker` as its own text.
fn frame(marker: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{{{{lang}}}}\"><head><meta charset=\"utf-8\">\n\
<title>{{{{ title }}}} | {{{{brand}}}}</title>\n<link rel=\"stylesheet\" href=\"{{{{stylesheet}}}}\">\n\
</head><body><div class=\"acme-bar\">{marker}</div>{{{{logo}}}}\n{{{{content}}}}\n\
<p class=\"acme-foot\">{{{{footer}}}} · {{{{brand}}}}</p></body></html>\n"
    )
}

/// The `href` of the page's stylesheet link.
fn style_href(html: &str) -> String {
    let start = html
        .find("rel=\"stylesheet\" href=\"")
        .expect("a stylesheet link")
        + 23;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

#[tokio::test]
async fn the_operators_frame_and_accent_colour_dress_the_sign_in_page_and_a_reload_reads_the_frame_again(
) {
    let gw = TestGateway::start_with(EXTRA, |dir| {
        std::fs::create_dir(dir.join("tpl")).unwrap();
        std::fs::write(dir.join("tpl/layout.html"), frame("ACME intranet")).unwrap();
    })
    .await;
    let http = Http::new();
    let page = http.get(&gw.url("/normal"), &[BROWSER]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-security-policy").is_some());
    let html = page.text();
    assert!(
        html.starts_with("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"),
        "{html}"
    );
    assert!(
        html.contains("<div class=\"acme-bar\">ACME intranet</div>"),
        "{html}"
    );
    // Text values escaped, in the operator's places; ours (the brand header) gone.
    assert!(html.contains(" | Help &amp; Desk</title>"), "{html}");
    assert!(
        html.contains("<p class=\"acme-foot\">Protected by portcullis · Help &amp; Desk</p>"),
        "{html}"
    );
    assert!(!html.contains("<header class=\"brand\">"), "{html}");
    // The content is the page Chrome made: the sign-in form inside `<main>`.
    assert!(html.contains("\n<main"), "{html}");
    assert!(
        html.contains("<label for=\"username\">Username</label>"),
        "{html}"
    );
    assert!(html.contains("</main>\n<p class=\"acme-foot\">"), "{html}");

    // The stylesheet the frame links to carries the accent colour.
    let href = style_href(&html);
    assert!(
        href.starts_with("/_portcullis/static/style.css?v="),
        "{href}"
    );
    let css = http.get(&gw.url(&href), &[]).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.text().contains(":root{--accent:#0a5}"),
        "{}",
        css.text()
    );

    // Every gateway page has the frame, in the page's language.
    let de = http
        .get(
            &gw.url("/_portcullis/no-such-page"),
            &[BROWSER, ("accept-language", "de")],
        )
        .await;
    assert_eq!(de.status, StatusCode::NOT_FOUND);
    let de = de.text();
    assert!(de.contains("<html lang=\"de\">"), "{de}");
    assert!(de.contains("ACME intranet"), "{de}");
    assert!(de.contains("Geschützt durch portcullis · Help"), "{de}");

    // A reload reads the frame again.
    let layout = gw.dir.path().join("tpl/layout.html");
    std::fs::write(&layout, frame("ACME extranet")).unwrap();
    let live = std::sync::Arc::clone(&gw.running.as_ref().unwrap().live);
    live.reload("test").await.unwrap();
    let html = http.get(&gw.url("/normal"), &[BROWSER]).await.text();
    assert!(html.contains("ACME extranet"), "{html}");
    assert!(!html.contains("ACME intranet"), "{html}");

    // A frame the config check refuses is refused by a reload too; the running one stays.
    std::fs::write(&layout, frame("<script>alert(1)</script>")).unwrap();
    let err = live.reload("test").await.unwrap_err().to_string();
    assert!(err.contains("pages.templates"), "{err}");
    assert!(err.contains("<script is not allowed"), "{err}");
    let html = http.get(&gw.url("/normal"), &[BROWSER]).await.text();
    assert!(html.contains("ACME extranet"), "{html}");
    assert!(!html.contains("<script"), "{html}");

    // Without the file, ours again.
    std::fs::remove_file(&layout).unwrap();
    live.reload("test").await.unwrap();
    let html = http.get(&gw.url("/normal"), &[BROWSER]).await.text();
    assert!(
        html.contains("<header class=\"brand\"><span>Help &amp; Desk</span></header>"),
        "{html}"
    );
    assert!(!html.contains("ACME"), "{html}");
}

const ROUTES: &str = "\n[roles.agent]\ngroups = [\"agents\"]\n\n[[routes]]\nprefix = \"/\"\nallow_roles = [\"agent\"]\n";

/// A config at `dir/name` whose line 9 is `templates = {templates:?}`.
fn config(dir: &Path, name: &str, templates: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://helpdesk.example.com\"\n\n\
[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[pages]\ntemplates = {templates:?}\n{ROUTES}"
        ),
    )
    .unwrap();
    p
}

fn portcullis(cmd: &str, cfg: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([cmd, "--config"])
        .arg(cfg)
        .current_dir(cfg.parent().unwrap())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_a_frame_it_cannot_use_naming_the_file_the_key_and_what_is_wrong() {
    let dir = TempDir::new("pagestpl");
    let d = dir.path();
    let good = frame("ok");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown",
            good.replace("{{logo}}", "{{logo}}\n{{ titel }}")
                .into_bytes(),
            "line 6: unknown placeholder {{titel}}; the placeholders are {{lang}}, {{title}}",
        ),
        (
            "unclosed",
            good.replace("{{footer}}", "{{footer").into_bytes(),
            "line 7: {{ is not closed by }}",
        ),
        (
            "no-content",
            good.replace("{{content}}", "").into_bytes(),
            "{{content}} is missing: it must appear exactly once",
        ),
        (
            "no-title",
            good.replace("{{ title }}", "Sign in").into_bytes(),
            "{{title}} is missing: it must appear exactly once",
        ),
        (
            "two-contents",
            good.replace("{{footer}}", "{{content}}").into_bytes(),
            "line 7: {{content}} appears again: it must appear exactly once",
        ),
        (
            "script",
            good.replace("</head>", "<SCRIPT src=\"/x.js\"></script></head>")
                .into_bytes(),
            "line 5: <script is not allowed",
        ),
        (
            "binary",
            b"{{title}}{{content}}\xff\xfe".to_vec(),
            "it is not UTF-8 text",
        ),
        (
            "big",
            format!("{good}{}", "<p></p>".repeat(10_000)).into_bytes(),
            "it is larger than 64 KiB",
        ),
    ];
    let at = |cfg: &Path| format!("{}:9: pages.templates: ", cfg.display());
    for (name, text, why) in &cases {
        std::fs::create_dir(d.join(name)).unwrap();
        std::fs::write(d.join(name).join("layout.html"), text).unwrap();
        let cfg = config(d, &format!("{name}.toml"), name);
        let (code, err) = portcullis("check", &cfg);
        assert_eq!(code, Some(1), "{name}: {err}");
        let want = format!(
            "{}template {}: {why}",
            at(&cfg),
            d.join(name).join("layout.html").display()
        );
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "{name}: want {want:?} in\n{err}"
        );
    }

    // The directory itself: missing, a file, or with `layout.html` that is a directory.
    std::fs::write(d.join("a-file"), "x").unwrap();
    std::fs::create_dir_all(d.join("nested/layout.html")).unwrap();
    for (name, want) in [
        (
            "missing",
            format!(
                "template directory {}: cannot open it",
                d.join("missing").display()
            ),
        ),
        (
            "a-file",
            format!(
                "template directory {}: it is not a directory",
                d.join("a-file").display()
            ),
        ),
        (
            "nested",
            format!(
                "template {}: it is not a regular file",
                d.join("nested/layout.html").display()
            ),
        ),
    ] {
        let cfg = config(d, &format!("{name}.toml"), name);
        let (code, err) = portcullis("check", &cfg);
        assert_eq!(code, Some(1), "{name}: {err}");
        let want = format!("{}{want}", at(&cfg));
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "{name}: want {want:?} in\n{err}"
        );
    }

    // `run` refuses to start on the same file.
    let (code, err) = portcullis("run", &d.join("script.toml"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("pages.templates: template"), "{err}");

    // A good frame passes; a directory without `layout.html` passes with a warning.
    std::fs::create_dir(d.join("good")).unwrap();
    std::fs::write(d.join("good/layout.html"), &good).unwrap();
    let (code, err) = portcullis("check", &config(d, "good.toml", "good"));
    assert_eq!(code, Some(0), "{err}");
    std::fs::create_dir(d.join("empty")).unwrap();
    let cfg = config(d, "empty.toml", "empty");
    let (code, err) = portcullis("check", &cfg);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{}template directory {} has no layout.html",
            at(&cfg),
            d.join("empty").display()
        )),
        "{err}"
    );
}
