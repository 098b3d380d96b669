//! A minimal client for the REST endpoints (HTTP/1.1 over hyper; HTTPS with [`crate::tls`]).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("invalid URL {0}")]
    Url(String),
    #[error("cannot reach the node: {0}")]
    Transport(String),
    /// The node answered with an error (`code` as in docs/services.md); `body` is the whole
    /// answer (a 404 with `?proof=true` carries the proof of absence).
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        body: serde_json::Value,
    },
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl RestError {
    /// The node answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Api { status: 404, .. })
    }
}

/// REST client of one node (`base` like `http://127.0.0.1:8545`).
#[derive(Clone)]
pub struct RestClient {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    authorization: Option<http::HeaderValue>,
}

impl RestClient {
    /// A client of `base`: plain HTTP, or HTTPS trusting the system's root certificates.
    pub fn new(base: &str) -> RestClient {
        // Read once per process: the system store is a directory of files.
        static SYSTEM: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
        let tls = SYSTEM.get_or_init(|| {
            // Without files nothing outside can fail: unusable system roots are skipped, and
            // ring supports the default protocol versions.
            crate::tls::client_config(&Default::default())
                .expect("a TLS configuration without files always builds")
        });
        RestClient::with_tls(base, tls.clone())
    }

    /// A client of `base` that uses `tls` for HTTPS (see [`crate::tls::client_config`]).
    pub fn with_tls(base: &str, tls: rustls::ClientConfig) -> RestClient {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        RestClient {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            authorization: None,
        }
    }

    /// Presents `token` (an organisation's read token, or the node's admin token) as
    /// `Authorization: Bearer <token>` on every request, for nodes that restrict reads. A
    /// token an HTTP header cannot carry is not sent (the node then refuses with 401).
    pub fn with_token(mut self, token: &str) -> RestClient {
        self.authorization = http::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        self
    }

    /// GETs `path` (starting with `/`) and decodes the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RestError> {
        self.send(http::Method::GET, path, Bytes::new()).await
    }

    /// POSTs `body` as JSON to `path` and decodes the JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, RestError> {
        let body = serde_json::to_vec(body).map_err(|e| RestError::Decode(e.to_string()))?;
        self.send(http::Method::POST, path, Bytes::from(body)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, RestError> {
        let url = format!("{}{path}", self.base);
        let uri: http::Uri = url.parse().map_err(|_| RestError::Url(url.clone()))?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| RestError::Url(url.clone()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RestError::Transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            // `{"error": {code, message}}`, or a DID resolution result's metadata.
            let field = |name: &str, did_name: &str| {
                error["error"][name]
                    .as_str()
                    .or_else(|| error["didResolutionMetadata"][did_name].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
            };
            return Err(RestError::Api {
                status: status.as_u16(),
                code: field("code", "error"),
                message: field("message", "errorMessage"),
                body: error,
            });
        }
        serde_json::from_slice(&body).map_err(|e| RestError::Decode(e.to_string()))
    }
}
