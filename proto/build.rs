//! Compiles `proto/stampede/v1/*.proto` with `protox` (pure Rust), so building
//! never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const FILES: [&str; 4] = [
        "proto/stampede/v1/agent.proto",
        "proto/stampede/v1/control.proto",
        "proto/stampede/v1/load.proto",
        "proto/stampede/v1/report.proto",
    ];
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(FILES, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
