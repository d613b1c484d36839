//! `/metrics` (issue 18 item 5): the Prometheus text exposition, parsed line by line (`# HELP`,
//! `# TYPE`, samples), histograms consistent, the request-duration histogram fed by both lanes,
//! the standard `process_*` metrics and the build, served with the 0.0.4 content type.

use crate::support::*;
use hyper::{Method, StatusCode};
use std::collections::{BTreeMap, HashMap, HashSet};

const TOKEN: &str = "metrics-admin-token-0123456789";

/// One sample line: metric name, labels in order, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k2="v2"` (no escapes are expected in this gateway's closed label values).
fn parse_labels(s: &str, line: &str) -> Vec<(String, String)> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("label: {line}"));
            assert!(valid_name(k), "label name {k:?}: {line}");
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("label value not quoted: {line}"));
            assert!(!v.contains(['"', '\\', '\n']), "{line}");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn parse_value(v: &str, line: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
    }
}

/// Parses the whole exposition; panics on any line that is not `# HELP`, `# TYPE` or a
/// sample, on a family typed twice or sampled before its `# TYPE`, and on a repeated sample.
/// Returns the samples and each family's type.
fn parse(text: &str) -> (Vec<Sample>, HashMap<String, String>) {
    assert!(text.ends_with('\n'), "the exposition ends with a line feed");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line: {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (
                    n,
                    parse_labels(
                        rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}")),
                        line,
                    ),
                ),
                None => (series, Vec::new()),
            };
            assert!(valid_name(name), "{line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(name);
            let kind = types
                .get(family)
                .unwrap_or_else(|| panic!("sample before its # TYPE: {line}"));
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter name: {line}");
            }
            assert!(seen.insert(series.to_owned()), "sample twice: {line}");
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value: parse_value(value, line),
            });
        }
    }
    (samples, types)
}

/// Checks every histogram: per label set, buckets in increasing `le`, counts never falling,
/// the last bucket `+Inf` equal to `_count`, and a `_sum`. Returns `_count` per (family, labels).
fn check_histograms(
    samples: &[Sample],
    types: &HashMap<String, String>,
) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut sums = HashSet::new();
        for s in samples {
            let others = |s: &Sample| {
                s.labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if s.name == format!("{family}_bucket") {
                let le = s.labels.iter().find(|(k, _)| k == "le").unwrap();
                buckets
                    .entry(others(s))
                    .or_default()
                    .push((parse_value(&le.1, "le"), s.value));
            } else if s.name == format!("{family}_count") {
                counts.insert((family.clone(), others(s)), s.value);
            } else if s.name == format!("{family}_sum") {
                assert!(s.value >= 0.0);
                sums.insert(others(s));
            }
        }
        assert!(!buckets.is_empty(), "{family} has buckets");
        for (labels, bs) in &buckets {
            for w in bs.windows(2) {
                assert!(
                    w[0].0 < w[1].0,
                    "{family}{{{labels}}}: le in increasing order"
                );
                assert!(w[0].1 <= w[1].1, "{family}{{{labels}}}: cumulative counts");
            }
            let last = bs.last().unwrap();
            assert_eq!(last.0, f64::INFINITY, "{family}{{{labels}}} ends at +Inf");
            let count = counts
                .get(&(family.clone(), labels.clone()))
                .unwrap_or_else(|| panic!("{family}_count{{{labels}}}"));
            assert_eq!(last.1, *count, "{family}{{{labels}}}: +Inf = _count");
            assert!(sums.contains(labels), "{family}_sum{{{labels}}}");
        }
    }
    counts
}

async fn scrape(gw: &TestGateway) -> String {
    let addr = gw.running.as_ref().unwrap().admin_addr.unwrap();
    let auth = format!("Bearer {TOKEN}");
    let r = Http::new()
        .send(
            Method::GET,
            &format!("http://{addr}/metrics"),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

fn duration_count(text: &str, class: &str) -> f64 {
    let (samples, types) = parse(text);
    let counts = check_histograms(&samples, &types);
    counts[&(
        "portcullis_request_duration_seconds".to_owned(),
        format!("class={class}"),
    )]
}

#[tokio::test]
async fn the_metrics_exposition_parses_line_by_line_and_every_histogram_is_consistent() {
    let extra = format!(
        "\n[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n",
        sha256_hex(TOKEN)
    );
    let gw = TestGateway::start_with(&extra, |_| {}).await;
    let text = scrape(&gw).await;
    let (samples, types) = parse(&text);
    check_histograms(&samples, &types);
    let one = |name: &str| -> &Sample {
        samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let build = one("portcullis_build_info");
    assert_eq!(build.value, 1.0);
    assert_eq!(
        build.labels,
        vec![("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]
    );
    for (name, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(
            one(name).value > 0.0 || name == "process_cpu_seconds_total",
            "{name}"
        );
    }
    for class in ["proxy", "gateway", "native", "forward_auth"] {
        assert_eq!(
            duration_count(&text, class),
            0.0,
            "{class} before any request"
        );
    }
}

#[tokio::test]
async fn both_lanes_record_request_durations_in_their_route_class() {
    let extra = format!(
        "\n[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n",
        sha256_hex(TOKEN)
    );
    let gw = TestGateway::start_with(&extra, |_| {}).await;
    let (cookie, _) = gw.session_for("alice", &["agent"]).await;
    let http = Http::new();
    let handoffs = || gw.gateway().metrics.handoffs();

    let before = handoffs();
    let r = http.get(&gw.url("/agent/x"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(handoffs(), before, "the signed-in GET was the fast lane's");
    let after_fast = scrape(&gw).await;
    assert_eq!(duration_count(&after_fast, "proxy"), 1.0);

    let r = http
        .send(
            Method::POST,
            &gw.url("/agent/x"),
            &[("cookie", &cookie)],
            b"a=1".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(handoffs(), before + 1, "the POST was the general path's");
    let r = http.get(&gw.url("/_portcullis/jwks.json"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let after = scrape(&gw).await;
    assert_eq!(duration_count(&after, "proxy"), 2.0);
    assert_eq!(duration_count(&after, "gateway"), 1.0);
}
