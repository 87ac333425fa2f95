//! The `gradlens` command line. Library errors become one line on stderr (with --full-errors,
//! followed by every problem the line summarises) and exit code 1.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let full_errors = args.full_errors;
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gradlens: {error}");
            if full_errors {
                for detail in error.details() {
                    eprintln!("  {detail}");
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}
