//! The inference record of the evidence benchmarks: one NDJSON line as a credit-scoring
//! service would send it after answering a request, with the applicant's input features and
//! the model's output in the committed payload: about 370 bytes of payload, about 730 bytes
//! a line.

use crate::entry::Rng;

/// Type of a real inference record: checked against the serving state before it is appended.
pub const INFERENCE_TYPE: &str = "inference.recorded";

/// Type of the same record as a generic extension entry: appended without the serving check.
pub const GENERIC_TYPE: &str = "x.bench.inference";

/// What every record of one run shares.
#[derive(Debug, Clone)]
pub struct RecordSpec {
    /// `sha256:<hex>` of the weights that computed the records.
    pub version_hash: String,
    /// Deployment that served them (`related`, rel `served_by`).
    pub deployment: String,
    /// Send [`GENERIC_TYPE`] entries (subject kind `x_inference`) instead of inferences.
    pub generic: bool,
}

/// The request id of record number `seq` of a run whose ids start with `prefix`.
pub fn request_id(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq}")
}

const OWNERSHIP: [&str; 3] = ["rent", "mortgage", "own"];
const PURPOSE: [&str; 6] = [
    "debt_consolidation",
    "home_improvement",
    "car",
    "medical",
    "education",
    "small_business",
];
const REGION: [&str; 6] = ["DE-BY", "DE-BE", "DE-NW", "FR-IDF", "NL-NH", "AT-9"];
const CHANNEL: [&str; 3] = ["web", "branch", "partner"];
const TERMS: [&str; 5] = ["12", "24", "36", "48", "60"];
const REASONS: [&str; 6] = ["R03", "R07", "R12", "R19", "R22", "R31"];

/// One record as a JSON object on one line (no trailing newline). `client_time` is when the
/// request was served, RFC 3339.
pub fn line(spec: &RecordSpec, request_id: &str, client_time: &str, rng: &mut Rng) -> String {
    let (entry_type, subject_kind) = if spec.generic {
        (GENERIC_TYPE, "x_inference")
    } else {
        (INFERENCE_TYPE, "inference")
    };
    let income = 18_000 + rng.below(232_000);
    let amount = 1_000 + rng.below(59_000);
    let term = rng.pick(&TERMS);
    let age = 18 + rng.below(62);
    let employment = rng.below(40);
    let dti = rng.unit() * 0.6;
    let lines = rng.below(30);
    let delinquencies = rng.below(5);
    let inquiries = rng.below(8);
    let ownership = rng.pick(&OWNERSHIP);
    let purpose = rng.pick(&PURPOSE);
    let region = rng.pick(&REGION);
    let channel = rng.pick(&CHANNEL);
    let score = rng.unit();
    let decision = if score >= 0.62 {
        "approve"
    } else if score >= 0.45 {
        "refer"
    } else {
        "decline"
    };
    let (r1, r2) = (rng.pick(&REASONS), rng.pick(&REASONS));
    let latency = 3 + rng.below(40);
    let (hash, dep) = (&spec.version_hash, &spec.deployment);
    format!(
        concat!(
            r#"{{"type":"{entry_type}","#,
            r#""subject":{{"kind":"{subject_kind}","id":"{request_id}"}},"client_time":"{client_time}","#,
            r#""related":[{{"kind":"deployment","id":"{dep}","rel":"served_by"}}],"#,
            r#""body":{{"version_hash":"{hash}","latency_ms":{latency},"decision":"{decision}","model_name":"credit-risk"}},"#,
            r#""payload":{{"input":{{"income":{income},"loan_amount":{amount},"term_months":{term},"age":{age},"#,
            r#""employment_years":{employment},"debt_to_income":{dti:.4},"open_credit_lines":{lines},"#,
            r#""delinquencies_2y":{delinquencies},"inquiries_6m":{inquiries},"home_ownership":"{ownership}","#,
            r#""purpose":"{purpose}","region":"{region}","channel":"{channel}"}},"#,
            r#""output":{{"score":{score:.4},"decision":"{decision}","threshold":0.62,"reason_codes":["{r1}","{r2}"]}}}}}}"#
        ),
        entry_type = entry_type,
        subject_kind = subject_kind,
        request_id = request_id,
        client_time = client_time,
        dep = dep,
        hash = hash,
        latency = latency,
        decision = decision,
        income = income,
        amount = amount,
        term = term,
        age = age,
        employment = employment,
        dti = dti,
        lines = lines,
        delinquencies = delinquencies,
        inquiries = inquiries,
        ownership = ownership,
        purpose = purpose,
        region = region,
        channel = channel,
        score = score,
        r1 = r1,
        r2 = r2,
    )
}

/// Records `first..first + n` of a run as an NDJSON body, each line ending in a newline,
/// with the current time as their request time. Returns the body and its request ids.
pub fn ndjson(
    spec: &RecordSpec,
    prefix: &str,
    first: u64,
    n: u64,
    rng: &mut Rng,
) -> (String, Vec<String>) {
    let now = crate::entry::rfc3339_now();
    let mut body = String::with_capacity(n as usize * 560);
    let mut ids = Vec::with_capacity(n as usize);
    for seq in first..first + n {
        let id = request_id(prefix, seq);
        body.push_str(&line(spec, &id, &now, rng));
        body.push('\n');
        ids.push(id);
    }
    (body, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(generic: bool) -> RecordSpec {
        RecordSpec {
            version_hash: format!("sha256:{}", "ab".repeat(32)),
            deployment: "dep-1".into(),
            generic,
        }
    }

    #[test]
    fn records_are_json_of_realistic_size() {
        let mut rng = Rng::new(3);
        for generic in [false, true] {
            let l = line(
                &spec(generic),
                "req-7",
                "2026-11-23T10:00:00.000000Z",
                &mut rng,
            );
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            assert_eq!(v["subject"]["id"], "req-7");
            assert!(v.get("actor").is_none(), "custody fills in the actor");
            assert!(v["payload"]["output"]["score"].is_number());
            let payload = serde_json::to_string(&v["payload"]).unwrap();
            assert!(
                (300..=500).contains(&payload.len()),
                "{} bytes: {payload}",
                payload.len()
            );
            assert!(l.len() < 900, "{} bytes: {l}", l.len());
            assert_eq!(v["type"] == GENERIC_TYPE, generic);
        }
    }

    #[test]
    fn ndjson_has_one_line_per_record() {
        let mut rng = Rng::new(1);
        let (body, ids) = ndjson(&spec(false), "r-", 10, 3, &mut rng);
        assert_eq!(ids, ["r-10", "r-11", "r-12"]);
        assert_eq!(body.lines().count(), 3);
        assert!(body.ends_with('\n'));
    }
}
