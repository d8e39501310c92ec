//! `grpc:`: one unary call whose request message is encoded here, once, so
//! agents send bytes. The payload is a protobuf file, JSON encoded through a
//! descriptor set (`prost-reflect`), or a KServe v2 `ModelInferRequest` built
//! from the scenario's tensors.

use super::file::{GrpcSection, KserveInputSection, KserveSection, ScenarioFile};
use super::validate::FieldError;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use stampede_agent::plan::GrpcSpec;
use stampede_agent::wire::is_grpc_method_path;
use stampede_proto::kserve;
use std::path::Path;

/// Largest payload, JSON or descriptor set file read.
const MAX_FILE_BYTES: u64 = 16 << 20;

fn err<T>(field: impl Into<String>, why: impl Into<String>) -> Result<T, FieldError> {
    Err((field.into(), why.into()))
}

/// Checks `grpc:` against the rest of the scenario and encodes its payload.
pub fn check(
    raw: &ScenarioFile,
    url: &url::Url,
    base: &Path,
) -> Result<Option<GrpcSpec>, FieldError> {
    let Some(g) = &raw.grpc else {
        return Ok(None);
    };
    // gRPC replaces the HTTP request: say which part of the file clashes.
    let clashes = [
        ("requests", raw.requests.is_some()),
        ("llm", raw.llm.is_some()),
        ("data", raw.data.is_some()),
        ("target.method", raw.target.method.is_some()),
        ("target.body", raw.target.body.is_some()),
        ("target.headers", !raw.target.headers.is_empty()),
    ];
    if let Some((field, _)) = clashes.iter().find(|(_, set)| *set) {
        let hint = match *field {
            "data" => "feeder rows are not supported for gRPC calls yet",
            "target.headers" => "give gRPC request headers as grpc.metadata",
            _ => "a gRPC scenario makes one unary call (grpc:), not HTTP requests",
        };
        return err(*field, format!("cannot be used with grpc: {hint}"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return err(
            "target.url",
            format!(
                "{url}: a gRPC target is scheme, host and port only (the method is grpc.method)"
            ),
        );
    }
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
    let (path, payload) = if let Some(k) = &g.kserve {
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
        (kserve::MODEL_INFER_PATH.to_owned(), model_infer(k)?)
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
        let payload = match (&g.payload_file, &g.json, &g.json_file) {
            (Some(file), _, _) => read("grpc.payload_file", base, file)?,
            (None, json, json_file) => {
                let Some(set) = &g.descriptor_set else {
                    return err(
                        "grpc.descriptor_set",
                        "missing: JSON needs a FileDescriptorSet to be encoded \
                         (protoc --descriptor_set_out, buf build -o)",
                    );
                };
                let input = input_message(base, set, path)?;
                match (json, json_file) {
                    (Some(value), _) => encode_json(&input, value.clone(), "grpc.json", set)?,
                    (None, Some(file)) => {
                        let text = read("grpc.json_file", base, file)?;
                        let value: serde_json::Value = serde_json::from_slice(&text)
                            .map_err(|e| ("grpc.json_file".to_owned(), format!("{file}: {e}")))?;
                        encode_json(&input, value, &format!("grpc.json_file ({file})"), set)?
                    }
                    (None, None) => unreachable_payload()?,
                }
            }
        };
        (path.clone(), payload)
    };
    Ok(Some(GrpcSpec {
        path,
        payload: payload.into(),
        metadata,
    }))
}

/// Only reachable if the one-source check above is wrong.
fn unreachable_payload() -> Result<Vec<u8>, FieldError> {
    err("grpc", "no payload")
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

/// Builds and encodes the KServe v2 `ModelInferRequest`.
fn model_infer(k: &KserveSection) -> Result<Vec<u8>, FieldError> {
    if k.model.trim().is_empty() {
        return err("grpc.kserve.model", "must not be empty");
    }
    if k.inputs.is_empty() {
        return err("grpc.kserve.inputs", "list at least one input tensor");
    }
    let mut inputs = Vec::with_capacity(k.inputs.len());
    for (i, input) in k.inputs.iter().enumerate() {
        inputs.push(tensor(&format!("grpc.kserve.inputs[{i}]"), input)?);
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
    let value_err = |i: usize, what: &str| -> FieldError {
        (
            format!("{at}.data[{i}]"),
            format!("{}: expected {what} for {datatype}", t.data[i]),
        )
    };
    let int = |i: usize, min: i64, max: i64| -> Result<i64, FieldError> {
        t.data[i]
            .as_i64()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| value_err(i, &format!("an integer in {min}..={max}")))
    };
    let uint = |i: usize, max: u64| -> Result<u64, FieldError> {
        t.data[i]
            .as_u64()
            .filter(|v| *v <= max)
            .ok_or_else(|| value_err(i, &format!("an integer in 0..={max}")))
    };
    let float = |i: usize| -> Result<f64, FieldError> {
        t.data[i].as_f64().ok_or_else(|| value_err(i, "a number"))
    };
    for i in 0..t.data.len() {
        match datatype.as_str() {
            "BOOL" => contents.bool_contents.push(
                t.data[i]
                    .as_bool()
                    .ok_or_else(|| value_err(i, "true or false"))?,
            ),
            "INT8" => contents.int_contents.push(int(i, -128, 127)? as i32),
            "INT16" => contents.int_contents.push(int(i, -32768, 32767)? as i32),
            "INT32" => contents
                .int_contents
                .push(int(i, i32::MIN.into(), i32::MAX.into())? as i32),
            "INT64" => contents.int64_contents.push(int(i, i64::MIN, i64::MAX)?),
            "UINT8" => contents.uint_contents.push(uint(i, 255)? as u32),
            "UINT16" => contents.uint_contents.push(uint(i, 65535)? as u32),
            "UINT32" => contents
                .uint_contents
                .push(uint(i, u32::MAX.into())? as u32),
            "UINT64" => contents.uint64_contents.push(uint(i, u64::MAX)?),
            "FP32" => contents.fp32_contents.push(float(i)? as f32),
            "FP64" => contents.fp64_contents.push(float(i)?),
            "BYTES" => contents.bytes_contents.push(
                t.data[i]
                    .as_str()
                    .ok_or_else(|| value_err(i, "a string"))?
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
    if t.data.is_empty()
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
