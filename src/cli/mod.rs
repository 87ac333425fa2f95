//! Subcommands of the `gradlens` binary.

mod classify;
mod demo;
mod info;
mod model;
mod saliency;

use std::path::PathBuf;

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

    /// Generate a synthetic lesion data set, train a small ResNet on it, and write saliency
    /// overlays, the checkpoint and a timing table (the main job; a few minutes on a CPU
    /// adapter).
    #[command(after_help = "Examples:\n  gradlens demo\n  gradlens demo --out /tmp/demo")]
    Demo {
        /// Folder for the overlays, the checkpoint and timings.txt (created).
        #[arg(long, default_value = "gradlens-demo")]
        out: PathBuf,
    },

    /// Print the top classes of images with their probabilities.
    #[command(
        after_help = "Examples:\n  gradlens classify cat.jpg --weights resnet50.safetensors\n  \
                            gradlens classify a.png b.png --weights demo.safetensors --top 2 --json"
    )]
    Classify {
        /// PNG or JPEG files (8- or 16-bit; gray, RGB or RGBA).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// A safetensors file (tools/export_torchvision.py, or a gradlens checkpoint).
        #[arg(long)]
        weights: PathBuf,
        /// The architecture, when the file does not name it (torchvision's function name).
        #[arg(long)]
        arch: Option<String>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Explain a prediction: which pixels drive the class score.
    #[command(
        after_help = "The maps are at the model's input resolution (after its resize and \
                            crop). With one image --out and --raw-out are files; with several \
                            they are folders holding <image name>.png / .safetensors.\n\n\
                            Examples:\n  gradlens saliency xray.png --weights demo.safetensors --out heat.png\n  \
                            gradlens saliency a.png b.png --weights w.safetensors --method gradcam --out maps/\n  \
                            gradlens saliency cat.jpg --weights resnet50.safetensors --class tabby --method integrated-gradients --raw-out cat.safetensors"
    )]
    Saliency {
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long, value_enum, default_value = "gradient")]
        method: saliency::Method,
        /// A class index, a class name stored with the weights, or "top" (each image's
        /// predicted class).
        #[arg(long, default_value = "top")]
        class: String,
        /// The heat-map overlay (PNG).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The raw map (safetensors, one tensor "saliency" [H, W]).
        #[arg(long)]
        raw_out: Option<PathBuf>,
    },
}

pub fn run(cli: Cli) -> gradlens::Result<()> {
    match cli.command {
        Command::Info => info::run(),
        Command::Demo { out } => demo::run(&out),
        Command::Classify {
            images,
            weights,
            arch,
            top,
            json,
        } => classify::run(&images, &weights, arch.as_deref(), top, json),
        Command::Saliency {
            images,
            weights,
            arch,
            method,
            class,
            out,
            raw_out,
        } => saliency::run(&saliency::Request {
            images: &images,
            weights: &weights,
            arch: arch.as_deref(),
            method,
            class: &class,
            out: out.as_deref(),
            raw_out: raw_out.as_deref(),
        }),
    }
}
