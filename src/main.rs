//! The `gradlens` command line. Library errors become one line on stderr and exit code 1.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gradlens: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
