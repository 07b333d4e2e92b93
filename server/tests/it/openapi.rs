use reqwest::StatusCode;
use serde_json::Value;

use crate::spawn_app;

/// The OpenAPI document is a contract: any change to it shows up in review as a snapshot diff.
#[tokio::test]
async fn openapi_document_is_stable() {
    let app = spawn_app().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/api-keys",
        "/v1/api-keys/{id}",
        "/v1/spaces",
        "/v1/spaces/{space}",
        "/v1/spaces/{space}/blocks",
        "/v1/spaces/{space}/analyze",
        "/v1/searches",
        "/v1/searches/{id}",
        "/v1/searches/{id}/front",
        "/v1/searches/{id}/cancel",
        "/v1/accuracy-samples",
        "/v1/accuracy-samples/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    insta::assert_json_snapshot!("openapi", doc);
}

/// The docs page is served from the binary: it must work with no network.
#[tokio::test]
async fn docs_page_is_served_offline() {
    let app = spawn_app().await;
    let r = app.get("/docs/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "no assets from the network");
    let js = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}
