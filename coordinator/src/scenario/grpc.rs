//! `grpc:`: one unary call whose request message is encoded here, once, so
//! agents send bytes. The payload is a protobuf file, JSON encoded through a
//! descriptor set (`prost-reflect`), or a KServe v2 `ModelInferRequest` built
//! from the scenario's tensors. With a `data:` file, `{{column}}`
//! placeholders in the JSON's strings or the tensors' `data` are filled from
//! each row, and one message is encoded per row.

use super::data::Data;
use super::file::{GrpcSection, KserveInputSection, KserveSection, ScenarioFile};
use super::validate::FieldError;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;
use stampede_agent::plan::GrpcSpec;
use stampede_agent::wire::is_grpc_method_path;
use stampede_proto::kserve;
use std::path::Path;

/// Largest payload, JSON or descriptor set file read.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Most bytes of messages made from data rows, all rows together.
const MAX_ROW_PAYLOAD_BYTES: usize = 64 << 20;

fn err<T>(field: impl Into<String>, why: impl Into<String>) -> Result<T, FieldError> {
    Err((field.into(), why.into()))
}

/// Checks `grpc:` against the rest of the scenario and encodes its payload.
pub fn check(
    raw: &ScenarioFile,
    url: &url::Url,
    base: &Path,
    data: Option<&Data>,
) -> Result<Option<GrpcSpec>, FieldError> {
    let Some(g) = &raw.grpc else {
        return Ok(None);
    };
    // gRPC replaces the HTTP request: say which part of the file clashes.
    let clashes = [
        ("requests", raw.requests.is_some()),
        ("llm", raw.llm.is_some()),
        ("target.method", raw.target.method.is_some()),
        ("target.body", raw.target.body.is_some()),
        ("target.headers", !raw.target.headers.is_empty()),
    ];
    if let Some((field, _)) = clashes.iter().find(|(_, set)| *set) {
        let hint = match *field {
            "target.headers" => "give gRPC request headers as grpc.metadata",
            _ => "a gRPC scenario makes one unary call (grpc:), not HTTP requests",
        };
        return err(*field, format!("cannot be used with grpc: {hint}"));
    }
    check_origin("target.url", url)?;
    let metadata = metadata(g)?;
    let sources = [
        ("grpc.payload_file", g.payload_file.is_some()),
        ("grpc.json", g.json.is_some()),
        ("grpc.json_file", g.json_file.is_some()),
        ("grpc.kserve", g.kserve.is_some()),
    ];
    let given: Vec<&str> = sources.iter().filter(|s| s.1).map(|s| s.0).collect();
    if given.len() != 1 {
        return err(
            "grpc",
            format!(
                "give exactly one payload: payload_file, json, json_file or kserve (found {})",
                if given.is_empty() {
                    "none".to_owned()
                } else {
                    given.join(", ")
                }
            ),
        );
    }
    if g.descriptor_set.is_some() && g.json.is_none() && g.json_file.is_none() {
        return err(
            "grpc.descriptor_set",
            "is only used to encode json or json_file",
        );
    }
    if data.is_some() && g.payload_file.is_some() {
        return err(
            "data",
            "data rows fill {{column}} placeholders in a json, json_file or kserve payload, \
             not in a payload_file",
        );
    }
    let (path, template) = if let Some(k) = &g.kserve {
        if let Some(m) = &g.method {
            if m != kserve::MODEL_INFER_PATH {
                return err(
                    "grpc.method",
                    format!(
                        "{m:?}: with kserve the method is {} (leave it out)",
                        kserve::MODEL_INFER_PATH
                    ),
                );
            }
        }
        (kserve::MODEL_INFER_PATH.to_owned(), Template::Kserve(k))
    } else {
        let Some(path) = &g.method else {
            return err("grpc.method", "missing: give /package.Service/Method");
        };
        if !is_grpc_method_path(path) {
            return err(
                "grpc.method",
                format!("{path:?} is not a method path: expected /package.Service/Method"),
            );
        }
        let template = match (&g.payload_file, &g.json, &g.json_file) {
            (Some(file), _, _) => Template::Bytes(read("grpc.payload_file", base, file)?),
            (None, json, json_file) => {
                let Some(set) = &g.descriptor_set else {
                    return err(
                        "grpc.descriptor_set",
                        "missing: JSON needs a FileDescriptorSet to be encoded \
                         (protoc --descriptor_set_out, buf build -o)",
                    );
                };
                let input = input_message(base, set, path)?;
                let (value, field) = match (json, json_file) {
                    (Some(value), _) => (value.clone(), "grpc.json".to_owned()),
                    (None, Some(file)) => {
                        let text = read("grpc.json_file", base, file)?;
                        let value: Value = serde_json::from_slice(&text)
                            .map_err(|e| ("grpc.json_file".to_owned(), format!("{file}: {e}")))?;
                        (value, format!("grpc.json_file ({file})"))
                    }
                    (None, None) => return err("grpc", "no payload"),
                };
                Template::Json {
                    input,
                    value,
                    field,
                    set: set.clone(),
                }
            }
        };
        (path.clone(), template)
    };
    // Unknown placeholders are named once, before any row is used.
    let columns: &[String] = data.map_or(&[], |d| &d.columns);
    template.check_placeholders(columns)?;
    let mut row_payloads: Vec<bytes::Bytes> = Vec::new();
    if let Some(d) = data.filter(|_| template.has_placeholders()) {
        let mut total = 0usize;
        for (i, row) in d.rows.iter().enumerate() {
            let bytes = template
                .encode(columns, Some(row))
                .map_err(|(field, why)| {
                    (field, format!("with row {} of {}: {why}", i + 1, d.file))
                })?;
            total += bytes.len();
            if total > MAX_ROW_PAYLOAD_BYTES {
                return err(
                    "data.file",
                    format!(
                        "{}: the gRPC messages made from its rows pass {} MiB",
                        d.file,
                        MAX_ROW_PAYLOAD_BYTES >> 20
                    ),
                );
            }
            row_payloads.push(bytes.into());
        }
    }
    let payload = match row_payloads.first() {
        // Sends take their row's; this one is never used.
        Some(first) => first.clone(),
        None => template.encode(columns, None)?.into(),
    };
    Ok(Some(GrpcSpec {
        path,
        payload,
        row_payloads,
        metadata,
    }))
}

/// A gRPC target's URL (`target.url`, a region's or an endpoint's) is
/// where calls go, nothing more: a path would be silently dropped, since the
/// method is `grpc.method`.
pub fn check_origin(field: &str, url: &url::Url) -> Result<(), FieldError> {
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return err(
            field,
            format!(
                "{url}: a gRPC target is scheme, host and port only (the method is grpc.method)"
            ),
        );
    }
    Ok(())
}

/// What a call's message is made from.
enum Template<'a> {
    Bytes(Vec<u8>),
    Json {
        input: MessageDescriptor,
        value: Value,
        field: String,
        set: String,
    },
    Kserve(&'a KserveSection),
}

impl Template<'_> {
    /// Encodes the message, its placeholders filled from `row`.
    fn encode(&self, columns: &[String], row: Option<&[String]>) -> Result<Vec<u8>, FieldError> {
        match self {
            Template::Bytes(bytes) => Ok(bytes.clone()),
            Template::Json {
                input,
                value,
                field,
                set,
            } => {
                let filled = fill(value, columns, row).map_err(|why| (field.clone(), why))?;
                encode_json(input, filled, field, set)
            }
            Template::Kserve(k) => model_infer(k, columns, row),
        }
    }

    /// Every placeholder names a column of the data (there is none without
    /// a data file).
    fn check_placeholders(&self, columns: &[String]) -> Result<(), FieldError> {
        match self {
            Template::Bytes(_) => Ok(()),
            Template::Json { value, field, .. } => fill(value, columns, None)
                .map(drop)
                .map_err(|why| (field.clone(), why)),
            Template::Kserve(k) => {
                for (i, input) in k.inputs.iter().enumerate() {
                    for (j, v) in input.data.iter().enumerate() {
                        if let Value::String(s) = v {
                            fill_str(s, columns, None).map_err(|why| {
                                (format!("grpc.kserve.inputs[{i}].data[{j}]"), why)
                            })?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn has_placeholders(&self) -> bool {
        match self {
            Template::Bytes(_) => false,
            Template::Json { value, .. } => has_placeholder(value),
            Template::Kserve(k) => k.inputs.iter().flat_map(|i| &i.data).any(has_placeholder),
        }
    }
}

fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{"),
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(map) => map.values().any(has_placeholder),
        _ => false,
    }
}

/// `value` with every `{{column}}` in its strings replaced by the row's
/// value (by nothing without a row, once the column is known to exist).
fn fill(value: &Value, columns: &[String], row: Option<&[String]>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.contains("{{") => Value::String(fill_str(s, columns, row)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(v, columns, row))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, columns, row)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn fill_str(text: &str, columns: &[String], row: Option<&[String]>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("{text:?}: a {{{{ without its }}}}"));
        };
        let name = after[..close].trim();
        let Some(column) = columns.iter().position(|c| c == name) else {
            return Err(if columns.is_empty() {
                format!("{{{{{name}}}}} needs a data: file with a column {name:?}")
            } else {
                format!(
                    "{{{{{name}}}}} names no column of the data file (columns: {})",
                    columns.join(", ")
                )
            });
        };
        if let Some(row) = row {
            out.push_str(row.get(column).map_or("", String::as_str));
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn metadata(g: &GrpcSection) -> Result<Vec<(String, String)>, FieldError> {
    let mut out = Vec::with_capacity(g.metadata.len());
    for (name, value) in &g.metadata {
        let field = format!("grpc.metadata.{name}");
        let lower = name.to_ascii_lowercase();
        let name_ok = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !name_ok {
            return err(
                field,
                "is not a metadata name (ASCII letters, digits, '-', '_', '.')",
            );
        }
        if lower.ends_with("-bin") || lower.starts_with("grpc-") {
            return err(
                field,
                "binary (-bin) and reserved (grpc-) metadata are not supported",
            );
        }
        if lower == stampede_plan_region() {
            return err(field, "is set by each agent to its region; leave it out");
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return err(field, "the value must be printable ASCII");
        }
        out.push((lower, value.clone()));
    }
    Ok(out)
}

fn stampede_plan_region() -> &'static str {
    crate::plan::REGION_METADATA
}

fn read(field: &str, base: &Path, file: &str) -> Result<Vec<u8>, FieldError> {
    let path = base.join(file);
    let size = std::fs::metadata(&path)
        .map_err(|e| (field.to_owned(), format!("{file}: cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return err(
            field,
            format!("{file} is {size} bytes; at most {MAX_FILE_BYTES}"),
        );
    }
    std::fs::read(&path).map_err(|e| (field.to_owned(), format!("{file}: cannot read: {e}")))
}

/// The input message of `path`, from the descriptor set file `set`.
fn input_message(base: &Path, set: &str, path: &str) -> Result<MessageDescriptor, FieldError> {
    let bytes = read("grpc.descriptor_set", base, set)?;
    let pool = DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
        (
            "grpc.descriptor_set".to_owned(),
            format!("{set} is not a FileDescriptorSet: {e}"),
        )
    })?;
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or_default();
    let Some(service_desc) = pool.get_service_by_name(service) else {
        return err(
            "grpc.method",
            format!("service {service:?} is not in the descriptor set {set}"),
        );
    };
    match service_desc.methods().find(|m| m.name() == method) {
        Some(m) if m.is_client_streaming() || m.is_server_streaming() => err(
            "grpc.method",
            format!("{path} is a streaming method; only unary calls are supported"),
        ),
        Some(m) => Ok(m.input()),
        None => err(
            "grpc.method",
            format!("service {service} in {set} has no method {method:?}"),
        ),
    }
}

/// Encodes JSON (protobuf's JSON mapping) as `input`; an error names the
/// JSON path of the offending field.
fn encode_json(
    input: &MessageDescriptor,
    value: serde_json::Value,
    field: &str,
    set: &str,
) -> Result<Vec<u8>, FieldError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    match DynamicMessage::deserialize(input.clone(), de) {
        Ok(message) => Ok(message.encode_to_vec()),
        Err(e) => {
            let at = track.path().to_string();
            let field = if at == "." || at.is_empty() {
                field.to_owned()
            } else {
                format!("{field}.{at}")
            };
            err(
                field,
                format!("not a valid {} (from {set}): {e}", input.full_name()),
            )
        }
    }
}

/// Builds and encodes the KServe v2 `ModelInferRequest` (its tensors' data
/// filled from `row`, see [`Template::encode`]).
fn model_infer(
    k: &KserveSection,
    columns: &[String],
    row: Option<&[String]>,
) -> Result<Vec<u8>, FieldError> {
    if k.model.trim().is_empty() {
        return err("grpc.kserve.model", "must not be empty");
    }
    if k.inputs.is_empty() {
        return err("grpc.kserve.inputs", "list at least one input tensor");
    }
    let mut inputs = Vec::with_capacity(k.inputs.len());
    for (i, input) in k.inputs.iter().enumerate() {
        inputs.push(tensor(
            &format!("grpc.kserve.inputs[{i}]"),
            input,
            columns,
            row,
        )?);
    }
    let outputs = k
        .outputs
        .iter()
        .flatten()
        .map(
            |name| kserve::model_infer_request::InferRequestedOutputTensor {
                name: name.clone(),
                parameters: Default::default(),
            },
        )
        .collect();
    Ok(kserve::ModelInferRequest {
        model_name: k.model.clone(),
        model_version: k.version.clone().unwrap_or_default(),
        id: String::new(),
        parameters: Default::default(),
        inputs,
        outputs,
        raw_input_contents: Vec::new(),
    }
    .encode_to_vec())
}

fn tensor(
    at: &str,
    t: &KserveInputSection,
    columns: &[String],
    row: Option<&[String]>,
) -> Result<kserve::model_infer_request::InferInputTensor, FieldError> {
    if t.name.is_empty() {
        return err(format!("{at}.name"), "must not be empty");
    }
    if let Some(d) = t.shape.iter().find(|d| **d < 0) {
        return err(
            format!("{at}.shape"),
            format!("{d}: a request's dimensions are known (0 or more)"),
        );
    }
    let elements = t
        .shape
        .iter()
        .try_fold(1u64, |n, d| n.checked_mul(*d as u64))
        .unwrap_or(u64::MAX);
    if elements != t.data.len() as u64 {
        return err(
            format!("{at}.data"),
            format!(
                "{} values, but shape {:?} holds {elements}",
                t.data.len(),
                t.shape
            ),
        );
    }
    let mut contents = kserve::InferTensorContents::default();
    let datatype = t.datatype.to_ascii_uppercase();
    // Placeholders filled; a filled (or quoted) number or bool is read as
    // one, except for BYTES, whose elements are strings.
    let mut values = Vec::with_capacity(t.data.len());
    for (i, v) in t.data.iter().enumerate() {
        let filled = match v {
            Value::String(s) if s.contains("{{") => match fill_str(s, columns, row) {
                Ok(text) => Value::String(text),
                Err(why) => return err(format!("{at}.data[{i}]"), why),
            },
            other => other.clone(),
        };
        values.push(match filled {
            Value::String(s) if datatype != "BYTES" => {
                serde_json::from_str(s.trim()).unwrap_or(Value::String(s))
            }
            other => other,
        });
    }
    let value_err = |i: usize, v: &Value, what: &str| -> FieldError {
        (
            format!("{at}.data[{i}]"),
            format!("{v}: expected {what} for {datatype}"),
        )
    };
    let int = |i: usize, v: &Value, min: i64, max: i64| -> Result<i64, FieldError> {
        v.as_i64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| value_err(i, v, &format!("an integer in {min}..={max}")))
    };
    let uint = |i: usize, v: &Value, max: u64| -> Result<u64, FieldError> {
        v.as_u64()
            .filter(|n| *n <= max)
            .ok_or_else(|| value_err(i, v, &format!("an integer in 0..={max}")))
    };
    let float = |i: usize, v: &Value| -> Result<f64, FieldError> {
        v.as_f64().ok_or_else(|| value_err(i, v, "a number"))
    };
    for (i, v) in values.iter().enumerate() {
        match datatype.as_str() {
            "BOOL" => contents.bool_contents.push(
                v.as_bool()
                    .ok_or_else(|| value_err(i, v, "true or false"))?,
            ),
            "INT8" => contents.int_contents.push(int(i, v, -128, 127)? as i32),
            "INT16" => contents.int_contents.push(int(i, v, -32768, 32767)? as i32),
            "INT32" => contents
                .int_contents
                .push(int(i, v, i32::MIN.into(), i32::MAX.into())? as i32),
            "INT64" => contents.int64_contents.push(int(i, v, i64::MIN, i64::MAX)?),
            "UINT8" => contents.uint_contents.push(uint(i, v, 255)? as u32),
            "UINT16" => contents.uint_contents.push(uint(i, v, 65535)? as u32),
            "UINT32" => contents
                .uint_contents
                .push(uint(i, v, u32::MAX.into())? as u32),
            "UINT64" => contents.uint64_contents.push(uint(i, v, u64::MAX)?),
            "FP32" => contents.fp32_contents.push(float(i, v)? as f32),
            "FP64" => contents.fp64_contents.push(float(i, v)?),
            "BYTES" => contents.bytes_contents.push(
                v.as_str()
                    .ok_or_else(|| value_err(i, v, "a string"))?
                    .as_bytes()
                    .to_vec(),
            ),
            other => {
                return err(
                    format!("{at}.datatype"),
                    format!(
                        "{other:?}: expected BOOL, INT8, INT16, INT32, INT64, UINT8, UINT16, \
                         UINT32, UINT64, FP32, FP64 or BYTES (FP16/BF16 need raw contents, \
                         not supported)"
                    ),
                );
            }
        }
    }
    if values.is_empty()
        && !matches!(
            datatype.as_str(),
            "BOOL"
                | "INT8"
                | "INT16"
                | "INT32"
                | "INT64"
                | "UINT8"
                | "UINT16"
                | "UINT32"
                | "UINT64"
                | "FP32"
                | "FP64"
                | "BYTES"
        )
    {
        return err(
            format!("{at}.datatype"),
            format!("{datatype:?} is not a KServe v2 datatype"),
        );
    }
    Ok(kserve::model_infer_request::InferInputTensor {
        name: t.name.clone(),
        datatype,
        shape: t.shape.clone(),
        parameters: Default::default(),
        contents: Some(contents),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        vec!["x".into(), "label".into()]
    }

    #[test]
    fn placeholders_are_filled_from_the_row_and_checked_without_one() {
        let row = vec!["1.5".to_owned(), "cat".to_owned()];
        assert_eq!(
            fill_str("a {{ label }}-{{x}}!", &cols(), Some(&row)).as_deref(),
            Ok("a cat-1.5!")
        );
        assert_eq!(fill_str("{{x}}", &cols(), None).as_deref(), Ok(""));
        let unknown = fill_str("{{nope}}", &cols(), None).expect_err("unknown column");
        assert!(unknown.contains("x, label"), "{unknown}");
        let no_data = fill_str("{{x}}", &[], None).expect_err("no data file");
        assert!(no_data.contains("data: file"), "{no_data}");
        assert!(fill_str("{{x", &cols(), None).is_err());
        let json = serde_json::json!({ "a": ["{{x}}", 2], "b": { "c": "{{label}}" } });
        assert!(has_placeholder(&json));
        assert_eq!(
            fill(&json, &cols(), Some(&row)),
            Ok(serde_json::json!({ "a": ["1.5", 2], "b": { "c": "cat" } }))
        );
        assert!(!has_placeholder(&serde_json::json!({ "a": "{ not one }" })));
    }
}
