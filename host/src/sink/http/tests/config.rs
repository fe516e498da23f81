//! The table's checks name the key at fault; `weir dry-run`'s view of a request.

use super::*;

fn invalid(text: &str) -> (&'static str, String) {
    let cfg: HttpSinkConfig = toml::from_str(text).expect("parses");
    cfg.validate().expect_err("invalid")
}

#[test]
fn mistakes_are_named_at_their_key() {
    let url = "url = \"https://api.example.com/o\"\n";
    assert_eq!(invalid("url = \"https://h/<weir.nope>\"").0, "url");
    assert_eq!(invalid("url = \"ftp://h/x\"").0, "url");
    assert_eq!(invalid(&format!("{url}method = \"FETCH\"")).0, "method");
    assert_eq!(invalid(&format!("{url}batch_size = 0")).0, "batch_size");
    assert_eq!(invalid(&format!("{url}max_concurrency = 0")).0, "max_concurrency");
    assert_eq!(invalid(&format!("{url}rate_limit_per_s = 0")).0, "rate_limit_per_s");
    assert_eq!(invalid(&format!("{url}timeout_ms = 0")).0, "timeout_ms");
    assert_eq!(invalid(&format!("{url}client_cert = \"c.pem\"")).0, "client_key");
    assert_eq!(invalid(&format!("{url}client_key = \"k.pem\"")).0, "client_cert");
    assert_eq!(invalid(&format!("{url}headers = {{ Host = \"x\" }}")).0, "headers");
    assert_eq!(invalid(&format!("{url}headers = {{ \"a b\" = \"x\" }}")).0, "headers");
    assert_eq!(
        invalid(&format!(
            "{url}[auth]\ntype = \"oauth2\"\ntoken_url = \"nope\"\nclient_id = \"c\"\nclient_secret = {{ env = \"S\" }}"
        ))
        .0,
        "auth.token_url"
    );
    assert_eq!(
        invalid(&format!("{url}[auth]\ntype = \"api_key\"\nvalue = {{ env = \"K\" }}")).0,
        "auth.header"
    );
    assert_eq!(
        invalid(&format!(
            "{url}[auth]\ntype = \"api_key\"\nheader = \"X-K\"\nvalue = {{ env = \"K\" }}\nusername = \"u\""
        ))
        .0,
        "auth.username"
    );
    let unknown = toml::from_str::<HttpSinkConfig>(&format!("{url}retries = 3"));
    assert!(unknown.is_err());
    let secret_as_text = toml::from_str::<HttpSinkConfig>(&format!(
        "{url}[auth]\ntype = \"basic\"\nusername = \"u\"\npassword = \"plain\""
    ));
    assert!(secret_as_text.is_err());
    let e = toml::from_str::<HttpSinkConfig>(&format!(
        "{url}headers = {{ \"X-K\" = {{ env = \"\" }} }}"
    ))
    .expect_err("not a secret");
    assert!(e.message().contains("{ env = \"VAR\" }"), "{e}");
}

#[test]
fn defaults() {
    let cfg = config("url = \"https://api.example.com/o\"");
    assert_eq!(cfg.method, "POST");
    assert_eq!(cfg.content_type, "application/json");
    assert_eq!(cfg.timeout_ms, 10_000);
    assert_eq!(cfg.max_concurrency, 16);
    assert_eq!(cfg.batch_size, 1);
    assert_eq!(cfg.rate_limit_per_s, None);
    assert_eq!(cfg.idempotency_header, "Idempotency-Key");
}

#[test]
fn a_preview_shows_the_request_or_why_it_cannot_be_sent() {
    let cfg = config(
        "url = \"https://api.example.com/orders/<$.data.id>\"\nmethod = \"PUT\"\n\
         headers = { \"X-Tenant\" = \"<$.data.t>\", \"X-Key\" = { env = \"SOME_KEY\" } }\n\
         idempotency_key = \"<$.id>\"\n\
         [auth]\ntype = \"oauth2\"\ntoken_url = \"https://auth.example.com/token\"\n\
         client_id = \"c\"\nclient_secret = { env = \"SOME_SECRET\" }",
    );
    let preview = cfg.preview("test").expect("a preview");
    let e = event("orders/1", None, r#"{"id": "A 1", "t": "acme"}"#);
    let shown = preview
        .render(Rendered::Bytes(Cow::Borrowed(b"{\"id\": 1}")), &e)
        .expect("rendered");
    assert_eq!(
        shown,
        serde_json::json!({
            "method": "PUT",
            "url": "https://api.example.com/orders/A%201",
            "headers": {
                "content-type": "application/json",
                "x-key": "<secret>",
                "x-tenant": "acme",
                "idempotency-key": "orders/1",
                "authorization": "Bearer <secret>",
            },
            "body": "{\"id\": 1}",
        })
    );
    let cfg = config("url = \"<$.data.u>\"");
    let e = cfg
        .preview("test")
        .expect("a preview")
        .render(Rendered::Bytes(Cow::Borrowed(b"{}")), &event("e", None, r#"{"u": "x"}"#))
        .expect_err("invalid");
    assert!(e.message.starts_with("url template rendered an invalid URL \"x\""), "{}", e.message);
}

#[tokio::test]
async fn reach_connects_to_a_literal_host_only() {
    let server = Server::start(|_| Reply::ok()).await;
    let cfg = config(&format!("url = \"{}\"", server.url("/orders/<$.id>")));
    let reached = cfg
        .reach("test", Duration::from_secs(5))
        .await
        .expect("reached");
    assert_eq!(reached, Some(format!("connected to {} (http)", server.addr)));
    let cfg = config("url = \"<$.data.endpoint>\"");
    assert_eq!(cfg.reach("test", Duration::from_secs(5)).await.expect("nothing"), None);
    assert!(server.seen().is_empty(), "reach sent a request");
}

#[test]
fn the_readme_example_is_a_valid_table() {
    let readme = include_str!("../../../../../README.md");
    let section = &readme[readme.find("### HTTP target").expect("a section")..];
    let start = section.find("```toml\n").expect("an example") + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").expect("its end")];
    let mut file: toml::Table = toml::from_str(example).expect("TOML");
    let Some(toml::Value::Table(mut sink)) = file.remove("sink") else {
        panic!("no [sink] in {example}");
    };
    assert_eq!(sink.remove("type"), Some("http".into()));
    let cfg: HttpSinkConfig = toml::Value::Table(sink).try_into().expect("a valid table");
    cfg.validate().expect("valid");
}
