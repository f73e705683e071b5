//! Entries: appending, reading, listing and exporting. Every read of entries is recorded in
//! the access log before it is answered.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64ct::{Base64, Encoding};
use custody_api as api;
use custody_governance::{Backend, Caller, ReadRecord};
use custody_ledger::{AppendOutcome, EntryView};
use custody_store::EntryFilter;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{EntryPath, LogPath, Params, Query, QueryParams, Submission};
use crate::state::AppState;

/// Most leaves one export request returns; page with `from`.
pub const MAX_EXPORT_PAGE: u64 = 10_000;

fn results(outcome: &AppendOutcome) -> Vec<api::AppendResult> {
    outcome
        .results
        .iter()
        .map(|a| api::AppendResult {
            index: a.index,
            leaf_hash: a.leaf_hash.to_hex(),
            id: a.id.to_string(),
            checkpoint_size: outcome.checkpoint_size,
            existing: a.existing,
            security: None,
        })
        .collect()
}

/// Appends one entry (a JSON object), several atomically (a JSON array), or a bulk NDJSON
/// stream (also atomic). Answers 201 once the entries are durable and covered by a signed
/// checkpoint.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/logs/{log}/entries",
    params(("tenant" = String, Path), ("log" = String, Path, description = "governance, inference or access")),
    request_body(content = api::EntrySubmission, description = "One entry, a JSON array of entries, or NDJSON (application/x-ndjson)"),
    responses(
        (status = 201, description = "Appended (an array or NDJSON answers AppendResults)", body = api::AppendResult),
        (status = 200, description = "Every entry was already logged with the same content: an idempotent retry", body = api::AppendResult),
        (status = 400, body = api::Problem), (status = 404, body = api::Problem),
        (status = 409, description = "An id was reused with different content", body = api::Problem),
        (status = 413, body = api::Problem), (status = 415, body = api::Problem),
        (status = 503, body = api::Problem)))]
pub async fn append<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    LogPath(key): LogPath,
    submission: Submission,
) -> ApiResult<Response> {
    let Submission { values, single } = submission;
    let ingested = st
        .governance()
        .submit(&key, values, !single, &caller.principal)
        .await?;
    let outcome = ingested.outcome;
    let mut results = results(&outcome);
    for (r, notice) in results.iter_mut().zip(ingested.notices) {
        r.security = notice;
    }
    // A retry that created nothing is not a creation.
    let status = if results.iter().all(|r| r.existing) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let resp = if single {
        (status, Json(results.remove(0))).into_response()
    } else {
        (
            status,
            Json(api::AppendResults {
                results,
                checkpoint_size: outcome.checkpoint_size,
            }),
        )
            .into_response()
    };
    Ok(resp)
}

/// An entry as returned; its payload only when the caller gave a purpose.
fn record(v: EntryView, with_payload: bool) -> api::EntryRecord {
    let commitment = v.envelope.get("payload_commitment").is_some();
    let (payload_status, payload, salt) = match v.payload {
        Some(_) if !with_payload => (api::PayloadStatus::Withheld, None, None),
        Some((p, s)) => (api::PayloadStatus::Present, Some(p), Some(s.to_hex())),
        None if commitment => (api::PayloadStatus::Erased, None, None),
        None => (api::PayloadStatus::None, None, None),
    };
    api::EntryRecord {
        index: v.index,
        leaf_hash: v.leaf_hash.to_hex(),
        envelope: v.envelope,
        payload_status,
        payload,
        salt,
    }
}

/// The filters of a listing.
pub struct ListParams(EntryFilter);

impl QueryParams for ListParams {
    const ALLOWED: &'static [&'static str] = &[
        "type", "actor", "subject", "related", "since", "until", "cursor", "limit",
    ];

    fn from_params(q: &Params) -> ApiResult<Self> {
        let limit = match q.number("limit")? {
            None => 100,
            Some(l) if (1..=u64::from(custody_ledger::MAX_PAGE)).contains(&l) => l as u32,
            Some(l) => {
                return Err(ApiError::field(
                    "limit",
                    format!("{l} is out of range: use 1 to {}", custody_ledger::MAX_PAGE),
                ));
            }
        };
        Ok(Self(EntryFilter {
            entry_type: q.get("type").cloned(),
            actor_id: q.get("actor").cloned(),
            subject_id: q.get("subject").cloned(),
            related_id: q.get("related").cloned(),
            since_micros: q.time("since")?,
            until_micros: q.time("until")?,
            from_index: q.number("cursor")?.unwrap_or(0),
            below_index: 0,
            limit,
        }))
    }
}

/// Lists entries matching every given filter, in index order, one page at a time. Payloads
/// are included only when a purpose is given.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/entries",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("type" = Option<String>, Query, description = "Exact entry type"),
        ("actor" = Option<String>, Query, description = "Exact actor id"),
        ("subject" = Option<String>, Query, description = "Exact subject id"),
        ("related" = Option<String>, Query, description = "An id among the related links"),
        ("since" = Option<String>, Query, description = "RFC 3339: time >= since"),
        ("until" = Option<String>, Query, description = "RFC 3339: time < until"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-1000 (default 100)")),
    responses((status = 200, body = api::EntryList), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn list_entries<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    LogPath(key): LogPath,
    query: Query<ListParams>,
) -> ApiResult<Json<api::EntryList>> {
    let Query {
        value: ListParams(filter),
        params,
    } = query;
    let page = st.ledger().list(&key, filter).await?;
    let entries: Vec<api::EntryRecord> = page
        .entries
        .into_iter()
        .map(|v| record(v, caller.purpose.is_some()))
        .collect();
    let read = ReadRecord::about("log", key.log.as_str())
        .query(params.pairs())
        .entries(key.log, &entries);
    st.governance()
        .record_read(&caller, &key.tenant, read)
        .await?;
    Ok(Json(api::EntryList {
        entries,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
        checkpoint_size: page.checkpoint_size,
    }))
}

/// One entry: envelope, leaf hash, and payload with salt when present and a purpose is given
/// (`Custody-Purpose` header or `purpose` parameter); without a purpose the payload is
/// `withheld`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/entries/{index}",
    params(("tenant" = String, Path), ("log" = String, Path), ("index" = u64, Path)),
    responses((status = 200, body = api::EntryRecord), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn get_entry<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    _: Query<()>,
    EntryPath { key, index }: EntryPath,
) -> ApiResult<Json<api::EntryRecord>> {
    let entry = record(
        st.ledger().entry(&key, index).await?,
        caller.purpose.is_some(),
    );
    let id = entry
        .envelope
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let read = ReadRecord::about("entry", id).entries(key.log, std::slice::from_ref(&entry));
    st.governance()
        .record_read(&caller, &key.tenant, read)
        .await?;
    Ok(Json(entry))
}

/// The range of an export.
pub struct ExportRange {
    from: u64,
    to: u64,
}

impl QueryParams for ExportRange {
    const ALLOWED: &'static [&'static str] = &["from", "to"];

    fn from_params(q: &Params) -> ApiResult<Self> {
        Ok(Self {
            from: q.required_number("from", "the first index")?,
            to: q.required_number("to", "one past the last index")?,
        })
    }
}

/// Leaves `[from, to)` as stored (NDJSON of `ExportedLeaf`), bounded by the latest checkpoint
/// and at most 10,000 per request: the raw material of `custody verify`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/export",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("from" = u64, Query), ("to" = u64, Query)),
    responses((status = 200, content_type = "application/x-ndjson", body = api::ExportedLeaf), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn export<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    LogPath(key): LogPath,
    query: Query<ExportRange>,
) -> ApiResult<Response> {
    let Query {
        value: ExportRange { from, to },
        params,
    } = query;
    let size = st.ledger().checkpoint(&key).await?.size;
    if from > to || to > size {
        return Err(ApiError::field(
            "to",
            format!("range {from}..{to} is not within the log's {size} entries"),
        ));
    }
    if to - from > MAX_EXPORT_PAGE {
        return Err(ApiError::field(
            "to",
            format!("at most {MAX_EXPORT_PAGE} leaves per request; page with from"),
        ));
    }
    let entries = st.ledger().export(&key, from, to).await?;
    let read = ReadRecord::about("log", key.log.as_str())
        .query(params.pairs())
        .leaves(
            key.log,
            entries
                .iter()
                .map(|e| (e.id.to_string(), e.leaf_hash.to_hex())),
        );
    st.governance()
        .record_read(&caller, &key.tenant, read)
        .await?;
    let mut out = Vec::with_capacity(entries.len() * 512);
    for e in entries {
        let line = api::ExportedLeaf {
            index: e.index,
            recorded_leaf_hash: e.leaf_hash.to_hex(),
            leaf_data: Base64::encode_string(&e.envelope),
        };
        serde_json::to_writer(&mut out, &line)
            .map_err(|e| ApiError::from(custody_ledger::LedgerError::Corrupt(e.to_string())))?;
        out.push(b'\n');
    }
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(api::NDJSON))],
        out,
    )
        .into_response())
}
