//! The `stampede` binary: parses the command line and calls the library.

use clap::Parser;
use stampede_coordinator::cli::{Cli, Command};
use stampede_coordinator::commands;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("stampede-control")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => commands::demo(args).await,
            Command::Bench(args) => commands::bench(args).await,
            Command::Coordinator(args) => commands::coordinator(args).await,
            Command::Agent(args) => commands::agent(args).await,
            Command::Target(args) => commands::target(args).await,
            Command::Report(args) => commands::report(args),
            Command::Compare(args) => commands::compare(args),
            Command::Validate(args) => commands::validate(args),
            Command::Run(args) => commands::run(args).await,
            Command::History(args) => commands::history(args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<commands::ThresholdsFailed>().is_some()
                || e.downcast_ref::<commands::SloViolatedAtMin>().is_some()
            {
                std::process::ExitCode::from(commands::THRESHOLDS_FAILED_EXIT)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
