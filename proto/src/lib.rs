//! Stampede's wire protocol.
//!
//! The `.proto` files under `proto/stampede/v1/` are the source of truth; this
//! crate compiles them (with `protox`, no system `protoc`) and re-exports the
//! generated types. It also owns the one wire concern that is not protobuf:
//! how latency histograms are encoded ([`histogram`]), and what both ends need
//! to trust each other ([`security`]: PEM files, the shared token).
//!
//! Other crates convert these wire types into their own domain types at their
//! edges; nothing deeper than a session module should name `v1::*`.

pub mod histogram;
pub mod security;

/// Generated code for package `stampede.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("stampede.v1");
}

/// Generated code for package `inference`: the KServe v2 / Triton
/// inference protocol (`GRPCInferenceService`), for the ModelInfer client and
/// the built-in target's mock. Not part of Stampede's own wire protocol.
#[allow(clippy::all, missing_docs)]
pub mod kserve {
    tonic::include_proto!("inference");

    /// `kserve/grpc_predict_v2.proto` as a `FileDescriptorSet` (encoded).
    pub const DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/kserve_descriptor_set.bin"));

    /// The full method path of ModelInfer.
    pub const MODEL_INFER_PATH: &str = "/inference.GRPCInferenceService/ModelInfer";
}

/// Version of the wire protocol spoken by this build (the package suffix).
pub const PROTOCOL_VERSION: &str = "v1";
