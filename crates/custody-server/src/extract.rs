//! Typed extractors: each request input is parsed once, here, into a domain type, and every
//! rejection is a problem naming the field, so handlers start from valid values.
//!
//! Path parameters are read by name ([`TenantPath`], [`LogPath`], [`EntryPath`], [`PathParam`]);
//! query strings go through [`Query`], which refuses parameters a route does not know (a typo
//! in a filter must not silently widen a read) and parameters given twice; JSON bodies through
//! [`JsonBody`], which parses strictly (duplicate keys, unsafe integers) within a size limit.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use custody_core::envelope::{LogName, TenantName, Timestamp, ValidationError};
use custody_core::jcs;
use custody_store::LogKey;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Largest request body: a JSON array or NDJSON stream of entries. Each envelope is further
/// limited to 65,535 canonical bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest JSON body of a management request (principals, tokens, erasures).
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// The path parameters of the matched route, by name.
async fn path_params(parts: &mut Parts) -> ApiResult<HashMap<String, String>> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|rejection| ApiError::field("path", rejection.body_text()))?;
    Ok(params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn param(params: &HashMap<String, String>, name: &str) -> ApiResult<String> {
    params
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::field("path", format!("the route has no {{{name}}} parameter")))
}

fn tenant_name(s: &str) -> ApiResult<TenantName> {
    TenantName::parse(s).map_err(ApiError::validation)
}

fn log_key(tenant: &str, log: &str) -> ApiResult<LogKey> {
    let tenant = tenant_name(tenant)?;
    let log = LogName::parse(log).map_err(|_| {
        ApiError::not_found(format!(
            "no log {log:?}: each tenant has governance, inference and access"
        ))
    })?;
    Ok(LogKey { tenant, log })
}

fn index(s: &str) -> ApiResult<u64> {
    s.parse::<u64>()
        .map_err(|_| ApiError::field("index", format!("{s:?} is not a non-negative integer")))
}

/// The `{tenant}` of the path, validated.
#[derive(Debug, Clone)]
pub struct TenantPath(pub TenantName);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let params = path_params(parts).await?;
        Ok(Self(tenant_name(&param(&params, "tenant")?)?))
    }
}

/// The `{tenant}/{log}` of the path: one log, named as the API names them (an unknown log
/// name is a 404, like an unknown route).
#[derive(Debug, Clone)]
pub struct LogPath(pub LogKey);

impl<S: Send + Sync> FromRequestParts<S> for LogPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let params = path_params(parts).await?;
        Ok(Self(log_key(
            &param(&params, "tenant")?,
            &param(&params, "log")?,
        )?))
    }
}

/// The `{tenant}/{log}/{index}` of the path: one entry.
#[derive(Debug, Clone)]
pub struct EntryPath {
    /// The log.
    pub key: LogKey,
    /// The entry's index.
    pub index: u64,
}

impl<S: Send + Sync> FromRequestParts<S> for EntryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let params = path_params(parts).await?;
        let key = log_key(&param(&params, "tenant")?, &param(&params, "log")?)?;
        Ok(Self {
            key,
            index: index(&param(&params, "index")?)?,
        })
    }
}

/// Names a path parameter for [`PathParam`].
pub trait ParamName {
    /// The parameter's name in the route template.
    const NAME: &'static str;
}

/// The tenant of the path and one more named parameter (a principal, a token, a version
/// hash), the latter as written: its handler checks it against what exists.
#[derive(Debug, Clone)]
pub struct PathParam<N> {
    /// The tenant.
    pub tenant: TenantName,
    /// The parameter's value.
    pub value: String,
    name: std::marker::PhantomData<N>,
}

impl<N: ParamName, S: Send + Sync> FromRequestParts<S> for PathParam<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let params = path_params(parts).await?;
        Ok(Self {
            tenant: tenant_name(&param(&params, "tenant")?)?,
            value: param(&params, N::NAME)?,
            name: std::marker::PhantomData,
        })
    }
}

/// `{principal}`.
#[derive(Debug, Clone, Copy)]
pub struct PrincipalId;
impl ParamName for PrincipalId {
    const NAME: &'static str = "principal";
}

/// `{token}`.
#[derive(Debug, Clone, Copy)]
pub struct TokenId;
impl ParamName for TokenId {
    const NAME: &'static str = "token";
}

/// `{version_hash}`.
#[derive(Debug, Clone, Copy)]
pub struct VersionHash;
impl ParamName for VersionHash {
    const NAME: &'static str = "version_hash";
}

/// A query string's parameters, each given at most once, `purpose` left to the access layer.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a raw query, refusing names outside `allowed` and repeated names.
    fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::field("query", format!("malformed query string: {e}")))?;
        let mut out = HashMap::new();
        for (k, v) in pairs {
            // The reason for a read, taken by the access layer for every route.
            if k == "purpose" {
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                let hint = if allowed.is_empty() {
                    "this route takes no query parameters".to_string()
                } else {
                    format!("unknown query parameter; allowed: {}", allowed.join(", "))
                };
                return Err(ApiError::field(&k, hint));
            }
            if out.insert(k.clone(), v).is_some() {
                return Err(ApiError::field(&k, "given more than once"));
            }
        }
        Ok(Self(out))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.0.get(name)
    }

    /// Whether `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `name` as a non-negative integer, if given.
    pub fn number(&self, name: &str) -> ApiResult<Option<u64>> {
        self.0
            .get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::field(name, format!("{v:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }

    /// `name` as a non-negative integer; `missing` says what it is when absent.
    pub fn required_number(&self, name: &str, missing: &str) -> ApiResult<u64> {
        self.number(name)?
            .ok_or_else(|| ApiError::field(name, format!("is required: {missing}")))
    }

    /// `name` as an RFC 3339 time in microseconds since the epoch, if given.
    pub fn time(&self, name: &str) -> ApiResult<Option<i64>> {
        self.0
            .get(name)
            .map(|v| {
                Timestamp::parse(v)
                    .map(|t| t.unix_micros())
                    .ok_or_else(|| ApiError::field(name, format!("{v:?} is not an RFC 3339 time")))
            })
            .transpose()
    }

    /// Every given parameter, for the access log.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// What a route accepts in its query string.
pub trait QueryParams: Sized {
    /// The names the route accepts (besides `purpose`).
    const ALLOWED: &'static [&'static str];

    /// The typed parameters, from names already checked against [`QueryParams::ALLOWED`].
    fn from_params(params: &Params) -> ApiResult<Self>;
}

/// A route that takes no query parameters.
impl QueryParams for () {
    const ALLOWED: &'static [&'static str] = &[];

    fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(())
    }
}

/// A route's typed query parameters, with the raw ones kept for the access log.
#[derive(Debug, Clone)]
pub struct Query<T> {
    /// The typed parameters.
    pub value: T,
    /// The parameters as given.
    pub params: Params,
}

impl<T: QueryParams, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let params = Params::parse(parts.uri.query(), T::ALLOWED)?;
        Ok(Self {
            value: T::from_params(&params)?,
            params,
        })
    }
}

/// The media type of a request, lower-cased, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads a body up to `limit`, answering 413 beyond it.
pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

/// Parses JSON strictly: duplicate keys and integers beyond 2^53-1 are refused.
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    jcs::parse_strict(bytes).map_err(|e| ApiError::malformed(e.to_string()))
}

/// A JSON body (`application/json`, at most `LIMIT` bytes), strictly parsed into `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T, const LIMIT: usize = MAX_JSON_BYTES>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync, const LIMIT: usize> FromRequest<S>
    for JsonBody<T, LIMIT>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        let ct = content_type(req.headers());
        if ct != "application/json" {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        let value = parse_json(&read_body(req.into_body(), LIMIT).await?)?;
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| ApiError::field("", e.to_string()))
    }
}

/// A text body (`text/plain`, at most `LIMIT` bytes).
#[derive(Debug, Clone)]
pub struct TextBody<const LIMIT: usize>(pub String);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for TextBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        let ct = content_type(req.headers());
        if ct != "text/plain" {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        let bytes = read_body(req.into_body(), LIMIT).await?;
        String::from_utf8(bytes.to_vec())
            .map(Self)
            .map_err(|_| ApiError::field("checkpoint", "is not UTF-8 text"))
    }
}

/// Entries submitted for appending: one JSON object, a JSON array, or NDJSON, at most
/// [`MAX_BODY_BYTES`], strictly parsed.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The entries, as parsed.
    pub values: Vec<Value>,
    /// Whether the body was a single object (answered with one result, not a list).
    pub single: bool,
}

impl<S: Send + Sync> FromRequest<S> for Submission {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        let ct = content_type(req.headers());
        match ct.as_str() {
            "application/json" => {
                match parse_json(&read_body(req.into_body(), MAX_BODY_BYTES).await?)? {
                    Value::Array(values) => Ok(Self {
                        values,
                        single: false,
                    }),
                    v @ Value::Object(_) => Ok(Self {
                        values: vec![v],
                        single: true,
                    }),
                    _ => Err(ApiError::field(
                        "",
                        "send an entry object or an array of entry objects",
                    )),
                }
            }
            "application/x-ndjson" => {
                let bytes = read_body(req.into_body(), MAX_BODY_BYTES).await?;
                let mut values = Vec::new();
                for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    values.push(
                        jcs::parse_strict(line)
                            .map_err(|e| ApiError::malformed(format!("line {}: {e}", n + 1)))?,
                    );
                }
                Ok(Self {
                    values,
                    single: false,
                })
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// A validation error on one field, renamed: for values whose parser names its own field.
pub fn renamed(e: ValidationError, field: &str) -> ApiError {
    ApiError::validation(ValidationError {
        errors: e
            .errors
            .into_iter()
            .map(|mut f| {
                f.field = field.into();
                f
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_refused_and_purpose_is_left_alone() {
        let ok = Params::parse(Some("from=1&purpose=audit&to=2"), &["from", "to"]).unwrap();
        assert_eq!(ok.number("from").unwrap(), Some(1));
        assert!(!ok.has("purpose"));
        for (raw, field) in [("form=1", "form"), ("from=1&from=2", "from")] {
            let err = Params::parse(Some(raw), &["from", "to"]).unwrap_err();
            assert!(format!("{err:?}").contains(field), "{raw}: {err:?}");
        }
        assert!(Params::parse(Some("x=1"), &[]).is_err());
    }

    #[test]
    fn numbers_and_times_name_their_parameter() {
        let p = Params::parse(Some("limit=-1&since=yesterday"), &["limit", "since"]).unwrap();
        assert!(format!("{:?}", p.number("limit").unwrap_err()).contains("limit"));
        assert!(format!("{:?}", p.time("since").unwrap_err()).contains("since"));
        assert!(p.required_number("size", "the tree size").is_err());
    }
}
