//! The server's HTTP API as the CLI uses it. Blocking on purpose: a command does one request
//! after another, and a blocking client keeps every command a plain function.

use std::time::Duration;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// A client bound to one server and, optionally, one bearer token.
pub struct Client {
    http: reqwest::blocking::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let base = Url::parse(server.trim_end_matches('/'))
            .map_err(|_| Error::BadUrl(server.to_string()))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || base.cannot_be_a_base()
        {
            return Err(Error::BadUrl(server.to_string()));
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Generous: a table export or a big predict can take a while on a busy server,
            // but a CLI that hangs forever is worse.
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("gpulut-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::BadUrl(format!("{server} ({e})")))?;
        let token = token.filter(|t| !t.trim().is_empty());
        Ok(Self { http, base, token })
    }

    /// The server's base URL as given (no trailing slash), e.g. for the agent's enroll line.
    pub fn server(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// The URL of `segments` under the base, each segment percent-encoded: device names and
    /// framework names come from users and may hold `/`, spaces or `?`.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let r = self.http.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn send(&self, builder: RequestBuilder, what: &str) -> Result<Response> {
        let response = builder.send().map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let is_problem = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        let text = response.text().unwrap_or_default();
        let problem = is_problem
            .then(|| serde_json::from_str::<Value>(&text).ok())
            .flatten()
            .filter(|v| v["detail"].is_string() || v["title"].is_string());
        let Some(p) = problem else {
            return Err(Error::Http {
                status: status.as_u16(),
                what: what.to_string(),
                body: text.trim().chars().take(300).collect(),
            });
        };
        let hint = if status.as_u16() == 401 && self.token.is_none() {
            " (no token given: pass --token or set GPULUT_TOKEN)".to_string()
        } else {
            String::new()
        };
        Err(Error::Problem {
            status: status.as_u16(),
            title: p["title"]
                .as_str()
                .map(str::to_string)
                .or_else(|| status.canonical_reason().map(str::to_string))
                .unwrap_or_else(|| status.to_string()),
            detail: p["detail"].as_str().unwrap_or_default().to_string(),
            code: p["code"].as_str().map(str::to_string),
            hint,
        })
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        // The innermost cause says what happened (connection refused, DNS, timeout); reqwest's
        // own message only repeats the URL.
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let cause = if e.is_timeout() {
            "timed out".to_string()
        } else {
            cause.to_string()
        };
        Error::Connect {
            server: self.server(),
            cause,
        }
    }

    fn decode<T: DeserializeOwned>(response: Response, what: &str) -> Result<T> {
        let bytes = response.bytes().map_err(|e| Error::Decode {
            what: what.to_string(),
            cause: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            what: what.to_string(),
            cause: e.to_string(),
        })
    }

    /// GET as JSON.
    pub fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T> {
        let url = self.url(segments, query);
        let what = format!("GET {}", url.path());
        let r = self.send(self.request(Method::GET, url), &what)?;
        Self::decode(r, &what)
    }

    /// GET the raw body, for exports that must reach the user byte for byte.
    pub fn get_bytes(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Vec<u8>> {
        let url = self.url(segments, query);
        let what = format!("GET {}", url.path());
        let r = self.send(self.request(Method::GET, url), &what)?;
        r.bytes().map(|b| b.to_vec()).map_err(|e| Error::Decode {
            what,
            cause: e.to_string(),
        })
    }

    /// POST a JSON body (or none) and read a JSON answer.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T> {
        let url = self.url(segments, &[]);
        let what = format!("POST {}", url.path());
        let mut builder = self.request(Method::POST, url);
        if let Some(b) = body {
            builder = builder.json(b);
        }
        let r = self.send(builder, &what)?;
        Self::decode(r, &what)
    }

    pub fn delete<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let url = self.url(segments, &[]);
        let what = format!("DELETE {}", url.path());
        let r = self.send(self.request(Method::DELETE, url), &what)?;
        Self::decode(r, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded_under_the_base_path() {
        let c = Client::new("http://127.0.0.1:8080/", None).unwrap();
        let u = c.url(
            &["v1", "tables", "pixel 7/a", "wgpu-fused"],
            &[("space", "moga-mbv3".into())],
        );
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/v1/tables/pixel%207%2Fa/wgpu-fused?space=moga-mbv3"
        );
        let c = Client::new("http://h:1/prefix", None).unwrap();
        assert_eq!(
            c.url(&["v1", "devices"], &[]).as_str(),
            "http://h:1/prefix/v1/devices"
        );
        assert_eq!(c.server(), "http://h:1/prefix");
    }

    #[test]
    fn bad_urls_are_refused_with_advice() {
        for bad in ["127.0.0.1:8080", "ftp://h", "not a url", "mailto:x@y"] {
            let e = Client::new(bad, None).err().expect(bad);
            assert!(e.to_string().contains("http://HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_empty_token_counts_as_none() {
        let c = Client::new("http://h:1", Some("  ".into())).unwrap();
        assert!(c.token.is_none());
    }
}
