//! The `stampede` binary: parses the command line and calls the library.

use clap::Parser;
use stampede_coordinator::cli::{Cli, Command};
use stampede_coordinator::commands;

fn main() -> std::process::ExitCode {
    stampede_coordinator::allocator::return_large_blocks_to_the_kernel();
    let cli = Cli::parse();
    commands::init_logging();
    // Two workers, but never more than the CPUs this process may run on:
    // on one CPU (a pinned coordinator) a second worker only adds thread
    // wake-ups and context switches between the two.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.min(2))
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
    // The command runs as a task on the workers, not on this thread: a
    // coordinator's run actor then runs on the worker whose agent session
    // just handed it a report, instead of being woken on another thread
    // once per report.
    let command = runtime.spawn(async {
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
    let result = match runtime.block_on(command) {
        Ok(result) => result,
        // A panic ends the process as it did on this thread.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(anyhow::anyhow!("the command's task failed: {e}")),
    };
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
