//! Compiles `proto/stampede/v1/*.proto` with `protox` (pure Rust), so building
//! never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const FILES: [&str; 5] = [
        "proto/stampede/v1/agent.proto",
        "proto/stampede/v1/control.proto",
        "proto/stampede/v1/load.proto",
        "proto/stampede/v1/report.proto",
        "proto/kserve/grpc_predict_v2.proto",
    ];
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(FILES, ["proto"])?;
    // The KServe file as a descriptor set too: the coordinator checks and
    // encodes `kserve:` scenarios with it, tests encode JSON with it.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("kserve_descriptor_set.bin"),
        prost::Message::encode_to_vec(&protox::compile(
            ["proto/kserve/grpc_predict_v2.proto"],
            ["proto"],
        )?),
    )?;
    tonic_prost_build::configure()
        // Report histograms as `Bytes`: decoded as slices of the message
        // received, not copied out of it (the coordinator takes a thousand
        // agents' reports a second).
        .bytes(".stampede.v1.IntervalReport")
        .bytes(".stampede.v1.PhaseFigures")
        .bytes(".stampede.v1.LlmFigures")
        .bytes(".stampede.v1.RequestFigures")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
