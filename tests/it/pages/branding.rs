//! `[pages]` branding: the accent colour and the operator's CSS in the served stylesheet (read
//! again at a reload), and `check` refusing a colour or a stylesheet it cannot use.

use crate::support::*;
use hyper::StatusCode;
use portcullis::config::Config;
use std::path::Path;
use std::process::Command;

const BROWSER: (&str, &str) = ("accept", "text/html");
const ROUTES: &str = "\n[roles.agent]\ngroups = [\"agents\"]\n\n[[routes]]\nprefix = \"/\"\nallow_roles = [\"agent\"]\n";
const CUSTOM: &str = "main{border-width:3px}\n";

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
async fn the_served_stylesheet_has_the_accent_colour_and_the_custom_css_and_a_reload_reads_them_again(
) {
    let gw = TestGateway::start_with(
        "[pages]\naccent_color = \"#0A5\"\ncustom_css = \"brand.css\"\n",
        |dir| std::fs::write(dir.join("brand.css"), CUSTOM).unwrap(),
    )
    .await;
    let http = Http::new();
    let css = http
        .get(&gw.url("/_portcullis/static/style.css"), &[])
        .await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let text = css.text();
    // After our own `:root`, so it wins; then the operator's CSS, last, so it wins over ours.
    let ours = text.find("--accent:#1f5fbf").expect("our default accent");
    let accent = text
        .find(":root{--accent:#0a5}")
        .expect("the accent colour");
    let custom = text.find(CUSTOM).expect("the custom CSS");
    assert!(ours < accent && accent < custom, "{text}");

    let page = http
        .get(&gw.url("/_portcullis/no-such-page"), &[BROWSER])
        .await;
    let before = style_href(&page.text());
    assert!(
        before.starts_with("/_portcullis/static/style.css?v="),
        "{before}"
    );

    // A reload reads the file again, and the page links to the new version.
    std::fs::write(gw.dir.path().join("brand.css"), "main{border-width:5px}\n").unwrap();
    let live = std::sync::Arc::clone(&gw.running.as_ref().unwrap().live);
    live.reload("test").await.unwrap();
    let text = http.get(&gw.url(&before), &[]).await.text();
    assert!(text.contains("main{border-width:5px}"), "{text}");
    assert!(!text.contains(CUSTOM), "{text}");
    let after = style_href(
        &http
            .get(&gw.url("/_portcullis/no-such-page"), &[BROWSER])
            .await
            .text(),
    );
    assert_ne!(before, after, "a changed stylesheet has a new URL");
}

fn errors_of(dir: &Path, pages: &str) -> Vec<String> {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://helpdesk.example.com\"\n\n\
[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[pages]\n{pages}{ROUTES}"
    );
    match Config::from_str_with_env(&dir.join("test.toml"), &text, &|_| None) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn check_refuses_a_colour_that_is_not_hex_and_a_stylesheet_it_cannot_use_naming_file_line_and_key()
{
    let dir = TempDir::new("pagescfg");
    let d = dir.path();
    std::fs::write(d.join("big.css"), "a{}".repeat(30_000)).unwrap();
    std::fs::write(d.join("bin.css"), b"\xff\xfe").unwrap();
    std::fs::create_dir(d.join("dir.css")).unwrap();
    std::fs::write(d.join("ok.css"), CUSTOM).unwrap();
    let at =
        |line: u32, key: &str| format!("{}:{line}: pages.{key}: ", d.join("test.toml").display());
    for bad in [
        "#0a5;}body{display:none",
        "red",
        "#12345",
        "#0a5 ",
        "url(x)",
    ] {
        let errs = errors_of(d, &format!("accent_color = {bad:?}\n"));
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(errs[0].starts_with(&at(9, "accent_color")), "{errs:?}");
    }
    for (file, why) in [
        ("missing.css", "cannot open it"),
        ("dir.css", "not a regular file"),
        ("big.css", "larger than 64 KiB"),
        ("bin.css", "not UTF-8"),
    ] {
        let errs = errors_of(
            d,
            &format!("accent_color = \"#0a5\"\ncustom_css = {file:?}\n"),
        );
        assert_eq!(errs.len(), 1, "{file}: {errs:?}");
        assert!(errs[0].starts_with(&at(10, "custom_css")), "{errs:?}");
        assert!(errs[0].contains(why), "{errs:?}");
    }
    assert_eq!(
        errors_of(d, "accent_color = \"#1F5FBF\"\ncustom_css = \"ok.css\"\n"),
        Vec::<String>::new()
    );
    let errs = errors_of(d, "default_language = \"xx\"\n");
    assert!(errs[0].starts_with(&at(9, "default_language")), "{errs:?}");

    // `portcullis check` refuses the same way.
    let p = d.join("bad.toml");
    std::fs::write(
        &p,
        format!("[server]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://helpdesk.example.com\"\n\n\
[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[pages]\ncustom_css = \"missing.css\"\n{ROUTES}"),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("bad.toml:9: pages.custom_css: stylesheet"),
        "{err}"
    );
}
