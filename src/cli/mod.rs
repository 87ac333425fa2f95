//! Subcommands of the `gradlens` binary.

mod info;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gradlens",
    version,
    about = "A GPU compute engine for convolutional networks: inference, backprop, saliency.",
    after_help = "The adapter is chosen automatically (discrete GPU, then integrated, then a CPU \
                  adapter such as lavapipe); override with GRADLENS_BACKEND=vulkan|metal|dx12|gl \
                  and GRADLENS_ADAPTER=<part of the adapter's name>."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter found and show the one gradlens would use.
    #[command(
        after_help = "Examples:\n  gradlens info\n  GRADLENS_BACKEND=gl gradlens info\n  \
                            GRADLENS_ADAPTER=llvmpipe gradlens info"
    )]
    Info,
}

pub fn run(cli: Cli) -> gradlens::Result<()> {
    match cli.command {
        Command::Info => info::run(),
    }
}
