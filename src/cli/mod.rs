//! Subcommands of the `gradlens` binary.

mod archive;
mod bench;
mod classify;
mod curves_plot;
mod demo;
mod evaluate_saliency;
mod info;
mod lesions;
mod manifest;
mod model;
mod run;
mod saliency;
mod slide;
mod train;

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
    /// After an error that summarises many problems (a weights file that does not fit the
    /// model), list every one of them.
    #[arg(long, global = true)]
    pub full_errors: bool,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter found and show the one gradlens would use.
    #[command(
        after_help = "Examples:\n  gradlens info\n  GRADLENS_BACKEND=gl gradlens info\n  \
                            GRADLENS_ADAPTER=llvmpipe gradlens info"
    )]
    Info,

    /// Time a model with random weights: forward, forward + backward to the input, a training
    /// step; optionally a per-layer profile and a Chrome trace.
    #[command(
        after_help = "Each timing is the median of --runs runs after one warm-up, each run \
                      ending with its result read back; the first run (pipelines compiled, \
                      buffers created) is reported apart. --profile prints per-layer and \
                      per-kernel tables from GPU timestamp queries (or, on adapters without \
                      them, from timing each kernel alone); --trace writes them as Chrome \
                      trace events for https://ui.perfetto.dev. --profile-first profiles the \
                      first forward instead (a cold start: on lavapipe each pipeline's compile \
                      falls in its first dispatch). --json prints one JSON object as the last \
                      line.\n\nExamples:\n  \
                      gradlens bench --arch resnet50\n  \
                      gradlens bench --arch densenet121 --batch 8 --backward --json\n  \
                      gradlens bench --arch resnet18 --train --batch 8 --profile --trace resnet18.json\n  \
                      MESA_SHADER_CACHE_DISABLE=true gradlens bench --arch vgg16 --profile-first"
    )]
    Bench(bench::BenchArgs),

    /// Generate a synthetic lesion data set, train a small ResNet on it, and write saliency
    /// overlays, the checkpoint and a timing table (the main job; about 15 s on lavapipe on 2
    /// cores).
    #[command(after_help = "Examples:\n  gradlens demo\n  gradlens demo --out /tmp/demo")]
    Demo {
        /// Folder for the overlays, the checkpoint, timings.txt and kernels.txt (created).
        #[arg(long, default_value = "gradlens-demo")]
        out: PathBuf,
    },

    /// Write the synthetic lesion set (textured gray tissue, small bright or dark lesions) as
    /// an ImageFolder with the lesions' masks: data for train, evaluate and evaluate-saliency.
    #[command(
        after_help = "DIR gets train/ and val/ folders of healthy/ and lesion/ PNGs, and \
                      masks/train/lesion/ and masks/val/lesion/ with each lesion image's mask \
                      (white on black) under the same name. The set is deterministic: image i \
                      depends only on the seed and i.\n\nExamples:\n  \
                      gradlens lesions --out lesions/ --count 600 --size 64\n  \
                      gradlens evaluate-saliency --weights w.safetensors --data lesions/ --masks lesions/masks/val"
    )]
    Lesions {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// Image side in pixels.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=4096))]
        size: u32,
        /// The share of images in val/.
        #[arg(long, default_value_t = 0.2)]
        validation: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },

    /// Train a classifier on an ImageFolder data set (transfer learning with --weights).
    #[command(
        after_help = "DIR holds train/<class>/ and val/<class>/ folders of PNG, JPEG, TIFF or DICOM \
                            images, or only <class>/ folders split by --val-split. Each image is \
                            resized whole to --size (no crop can cut a lesion away). Without \
                            --weights the normalisation comes from the training set; with them, \
                            it is the pretrained weights' own. The best checkpoint by validation \
                            accuracy is kept, with everything classify, saliency and evaluate need \
                            in its metadata.\n\nExamples:\n  \
                            gradlens train --arch resnet18 --data lesions/ --out lesions.safetensors --grayscale --size 128\n  \
                            gradlens train --arch resnet50 --weights resnet50.safetensors --grayscale --freeze conv1 --freeze layer1 --data xrays/ --out xrays.safetensors"
    )]
    Train(train::TrainArgs),

    /// Accuracy, per-class recall, confusion matrix and (two classes) ROC AUC of a checkpoint.
    #[command(
        after_help = "Examples:\n  gradlens evaluate --weights lesions.safetensors --data lesions/ --json"
    )]
    Evaluate {
        #[arg(long)]
        weights: PathBuf,
        /// An ImageFolder; its val/ folder when there is one.
        #[arg(long)]
        data: PathBuf,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },

    /// How faithful each saliency method's maps are over an ImageFolder: deletion, insertion,
    /// ROAD, the pointing games (with masks) and the cascading randomisation test.
    #[command(
        name = "evaluate-saliency",
        after_help = "Each image is explained for its labelled class (its folder). Deletion and \
                      insertion replace pixels by 0 (the normalised mean colour), ROAD fills \
                      them by noisy linear imputation (10% to 90% removed, noise 0.01); \
                      both report the mean class probability along the curve. With --masks, \
                      MASKS/<class>/<file> marks the object (pixels above half) for the \
                      pointing game (15 pixels of tolerance at 224, scaled) and its energy \
                      form. The randomisation test re-initialises the model's blocks from the \
                      output on the first --randomisation-images images and compares maps by \
                      rank correlation and SSIM. Means come with 95% confidence intervals \
                      (±1.96 standard errors; Wilson's interval for the pointing game's hit \
                      rate).\n\nExamples:\n  \
                      gradlens evaluate-saliency --weights lesions.safetensors --data lesions/ --masks lesion_masks/ --methods gradient,gradcam,occlusion --json eval.json --plot eval.svg\n  \
                      gradlens evaluate-saliency --weights xrays.safetensors --data xrays/ --methods all --limit 100"
    )]
    EvaluateSaliency {
        #[arg(long)]
        weights: PathBuf,
        /// An ImageFolder; its val/ folder when there is one.
        #[arg(long)]
        data: PathBuf,
        /// A folder of masks laid out as the images (same class folders and file names).
        #[arg(long)]
        masks: Option<PathBuf>,
        /// Method names separated by commas, or "all".
        #[arg(long, default_value = "gradient,gradcam", value_parser = evaluate_saliency::parse_methods)]
        methods: evaluate_saliency::MethodList,
        /// At most N images (a seeded shuffle of the folder).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Images explained per batch.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Deletion and insertion steps.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Images of the cascading randomisation test (0 skips it).
        #[arg(long, default_value_t = 8)]
        randomisation_images: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The CAM family's layer (as for saliency).
        #[arg(long, value_name = "NAME")]
        layer: Option<String>,
        /// Everything as JSON, curves included.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// The curves as an SVG.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },

    /// Classify and explain a whole-slide image tile by tile: a heat map of the slide as a
    /// Deep Zoom pyramid, in memory bounded by the batch, not the slide.
    #[command(
        after_help = "SLIDE is a tiled TIFF or BigTIFF (pyramidal or not; Aperio SVS included). \
                      Tissue is told from glass on a thumbnail (Otsu's threshold of saturation, \
                      of darkness for a gray slide); tiles with at least --min-tissue of it are \
                      resized to the model's input and explained --batch at a time. A tile's \
                      heat is its map's magnitude over the map's 99th percentile times the \
                      probability of the class explained, so tiles compare across the slide. \
                      DIR gets heatmap.dzi + heatmap_files/ (RGBA PNG tiles, transparent where \
                      nothing was analysed), slide.dzi + slide_files/ (JPEG), both the level \
                      read shrunk --downsample times; heatmap.png, an overview at most 2048 \
                      pixels a side; tiles.jsonl, one line per tissue tile (position in the \
                      level read, tissue share, class probabilities); slide.json, the run's \
                      figures (tiles, seconds, tiles/s, peak memory). Open DIR in the browser \
                      page's slide viewer, or heatmap.dzi in OpenSeadragon.\n\nExamples:\n  \
                      gradlens slide biopsy.svs --weights lesions.safetensors --out biopsy/ --class lesion\n  \
                      gradlens slide big.tif --weights w.safetensors --level 1 --tile 256 --method gradient --out maps/"
    )]
    Slide(slide::SlideArgs),

    /// Write a generated whole-slide image (tissue sections with lesions on glass) as a tiled,
    /// pyramidal TIFF: a slide to try `gradlens slide` on, of any size.
    #[command(
        name = "synthetic-slide",
        after_help = "Every pixel is a function of its position and the seed, so the slide is \
                      written a tile at a time in the memory of one tile.\n\nExamples:\n  \
                      gradlens synthetic-slide slide.tif --width 40000 --height 40000 --bigtiff"
    )]
    SyntheticSlide(slide::SyntheticArgs),

    /// Run a model on a tensor: logits and, optionally, the input gradient (for comparing with
    /// other frameworks and for scripts).
    #[command(
        after_help = "IN.safetensors holds `input` (f32, N×C×H×W). OUT.safetensors gets \
                            `logits` (N×K) and, with --grad-class C, `input_grad` = \
                            ∂(Σₙ logits[n, C]) / ∂input. --transform-input defaults to what \
                            torchvision does with its pretrained weights: on for googlenet and \
                            inception_v3. With --train --labels L.safetensors (`labels` [N]): \
                            train mode (batch statistics; running statistics updated as \
                            torchvision does), and OUT gets `loss` (the mean cross-entropy of \
                            the main head), `logits`, `grad.<name>` for every parameter the loss \
                            reaches, every buffer after the step under its own name, and with \
                            --input-grad `input_grad` = ∂loss/∂input. Dropout is active in train \
                            mode, as in torchvision: compare models without it (or with p = 0).\n\nExamples:\n  gradlens run --arch resnet50 --weights resnet50.safetensors --input x.safetensors --out y.safetensors --grad-class 281\n  gradlens run --arch resnet18 --weights r18.safetensors --input x.safetensors --train --labels y.safetensors --out grads.safetensors"
    )]
    Run {
        #[arg(long)]
        arch: String,
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        grad_class: Option<usize>,
        #[arg(long)]
        transform_input: Option<bool>,
        /// One training step's forward and backward instead of eval mode (needs --labels).
        #[arg(long, requires = "labels")]
        train: bool,
        /// With --train: a safetensors file holding `labels` [N] (integers, or whole floats).
        #[arg(long, value_name = "FILE", requires = "train")]
        labels: Option<PathBuf>,
        /// With --train: also write `input_grad`, the gradient of the loss to the input.
        #[arg(long)]
        input_grad: bool,
        /// Check every layer's output (and gradient) for NaN and Inf and name the first layer
        /// that produced one (slower: one extra pass per tensor).
        #[arg(long)]
        check_finite: bool,
    },

    /// Print the top classes of images with their probabilities.
    #[command(
        after_help = "Each image is resized (and cropped) as the weights record; with --tile, \
                            a big image is instead scored in tiles at full resolution and their \
                            logits pooled.\n\nExamples:\n  \
                            gradlens classify cat.jpg --weights resnet50.safetensors\n  \
                            gradlens classify a.png b.png --weights demo.safetensors --top 2 --json\n  \
                            gradlens classify slide.png --weights lesions.safetensors --tile 256 --stride 128"
    )]
    Classify {
        #[command(flatten)]
        model: ImagesAndModel,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
        /// Score the image tile by tile at full resolution: tiles of S×S image pixels, each
        /// resized to the model's input, their logits pooled (see --aggregate).
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..))]
        tile: Option<u32>,
        /// Pixels between tiles (default: half a tile, so tiles overlap by half).
        #[arg(long, value_name = "T", requires = "tile", value_parser = clap::value_parser!(u32).range(1..))]
        stride: Option<u32>,
        /// How tiles' logits become the image's.
        #[arg(long, value_enum, default_value = "max", requires = "tile")]
        aggregate: classify::Aggregate,
        /// Only shard K of N (0 ≤ K < N) of the images: a stable partition by file name (the
        /// path below a folder given), for N processes sharing an archive.
        #[arg(long, value_name = "K/N", value_parser = archive::parse_shard)]
        shard: Option<archive::Shard>,
        /// Append one JSON line per image to FILE; a rerun skips the images it holds.
        #[arg(long, value_name = "FILE")]
        jsonl: Option<PathBuf>,
        /// Check every layer's output (and gradient) for NaN and Inf and name the first layer
        /// that produced one (slower: one extra pass per tensor).
        #[arg(long)]
        check_finite: bool,
    },

    /// Explain a prediction: which pixels drive the class score.
    #[command(
        after_help = "The maps are at the model's input resolution (after its resize and \
                            crop), or with --tile at the image's own. A folder stands for every PNG and JPEG \
                            in it (and its sub-folders); images go through the model --batch at a time. With \
                            one image --out and --raw-out are files; with several they are folders holding \
                            <image name>.png / .safetensors. With --methods, --out is a grid of the image and \
                            every method's overlay, labelled, and --raw-out holds one tensor per method, by \
                            name. Each run with --out or --raw-out writes a manifest beside them (or to \
                            --manifest-out): the weights' and images' SHA-256, every method setting and seed, \
                            the adapter and driver; --manifest FILE runs it again (refusing changed files), \
                            with outputs where this run's flags say.\n\n\
                            Examples:\n  gradlens saliency xray.png --weights demo.safetensors --out heat.png\n  \
                            gradlens saliency a.png b.png --weights w.safetensors --method gradcam --out maps/\n  \
                            gradlens saliency scans/ --weights w.safetensors --method smoothgrad --batch 8 --raw-out maps/\n  \
                            gradlens saliency xray.png --weights w.safetensors --methods all --out grid.png --json metrics.json\n  \
                            gradlens saliency --manifest heat.manifest.json --raw-out again.safetensors\n  \
                            gradlens saliency cat.jpg --weights resnet50.safetensors --class tabby --method integrated-gradients --raw-out cat.safetensors\n  \
                            gradlens saliency scan.png --weights lesions.safetensors --tile 256 --out scan_map.png"
    )]
    Saliency {
        /// PNG, JPEG or TIFF files (8- or 16-bit; gray, RGB or RGBA), DICOM files (.dcm), or
        /// folders of them.
        #[arg(required_unless_present = "manifest")]
        images: Vec<PathBuf>,
        /// A safetensors file (tools/export_torchvision.py, or a gradlens checkpoint).
        #[arg(long, required_unless_present = "manifest")]
        weights: Option<PathBuf>,
        /// The architecture, when the file does not name it (torchvision's function name).
        #[arg(long)]
        arch: Option<String>,
        #[command(flatten)]
        dicom: DicomArgs,
        #[arg(long, default_value = "gradient", value_parser = method_parser())]
        method: gradlens::saliency::Method,
        /// Several methods (names separated by commas, or "all"), side by side in one grid.
        #[arg(long, conflicts_with = "method", value_parser = evaluate_saliency::parse_methods)]
        methods: Option<evaluate_saliency::MethodList>,
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
        /// Per image and method: deletion, insertion and ROAD areas (JSON; whole images, not
        /// --tile).
        #[arg(long, value_name = "FILE", conflicts_with = "tile")]
        json: Option<PathBuf>,
        /// Images explained per batch.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Explain tile by tile at full resolution (tiles of S×S image pixels) and stitch the
        /// maps into one of the whole image, overlaps averaged; the class is the tiles' logits
        /// max-pooled unless --class names one.
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..))]
        tile: Option<u32>,
        /// Pixels between tiles (default: half a tile).
        #[arg(long, value_name = "T", requires = "tile", value_parser = clap::value_parser!(u32).range(1..))]
        stride: Option<u32>,
        /// Check every layer's output (and gradient) for NaN and Inf and name the first layer
        /// that produced one (slower: one extra pass per tensor).
        #[arg(long)]
        check_finite: bool,
        /// The layer of gradcam, gradcam-plus-plus, hirescam, layercam, scorecam and
        /// guided-gradcam, by its torchvision name (layer3, features.28, Mixed_7c; default: the
        /// last convolutional block).
        #[arg(long, value_name = "NAME")]
        layer: Option<String>,
        /// Occlusion's window side in input pixels (16 by default).
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
        occlusion_patch: Option<u32>,
        /// Pixels between occlusion's windows, 1 to the window side (8 by default).
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..))]
        occlusion_stride: Option<u32>,
        /// The value occluded pixels take, in the model's normalised input (0, the mean, by
        /// default).
        #[arg(long, value_name = "V", allow_negative_numbers = true)]
        occlusion_baseline: Option<f32>,
        /// Where the run's manifest goes (default: beside --out or --raw-out).
        #[arg(long, value_name = "FILE")]
        manifest_out: Option<PathBuf>,
        /// For each DICOM image, also write the overlay as a DICOM Secondary Capture (.dcm
        /// beside the PNG) in the source's study, with its patient and study identifiers.
        #[arg(long, requires = "out")]
        secondary_capture: bool,
        /// With --secondary-capture: leave the patient and study identifiers out (a new study
        /// UID, no reference to the source).
        #[arg(long, requires = "secondary_capture")]
        anonymise: bool,
        /// Only shard K of N (0 ≤ K < N) of the images: a stable partition by file name (the
        /// path below a folder given), for N processes sharing an archive.
        #[arg(long, value_name = "K/N", value_parser = archive::parse_shard)]
        shard: Option<archive::Shard>,
        /// Append one JSON line per finished image to FILE; a rerun skips the images it holds
        /// (without it, a rerun skips images whose outputs all exist).
        #[arg(long, value_name = "FILE")]
        jsonl: Option<PathBuf>,
        /// Run again what a manifest records (images, weights, methods and every setting).
        #[arg(long, value_name = "FILE", conflicts_with_all = [
            "images", "weights", "arch", "method", "methods", "class", "batch", "tile", "stride",
            "layer", "occlusion_patch", "occlusion_stride", "occlusion_baseline", "shard"
        ])]
        manifest: Option<PathBuf>,
    },
}

/// How DICOM images are read (`classify`, `saliency`).
#[derive(clap::Args, Clone, Copy)]
pub struct DicomArgs {
    /// DICOM: the VOI window, CENTER,WIDTH in rescaled values (Hounsfield units for CT), in
    /// place of the file's own; a file with neither has each frame's range stretched.
    #[arg(long, value_name = "CENTER,WIDTH", value_parser = parse_window, allow_hyphen_values = true)]
    window: Option<gradlens::imaging::Window>,
    /// DICOM: the frame of a multi-frame file to read, from 0, or "all": every frame, each an
    /// image of its own (named FILE#K in results, <name>_frameK for outputs).
    #[arg(long, value_name = "N|all", default_value = "0", value_parser = parse_frame)]
    frame: Frames,
}

/// `--frame`: one frame of every DICOM file, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frames {
    One(usize),
    Every,
}

impl DicomArgs {
    /// How each image is read (with `--frame all`, each frame's own index replaces the 0 here:
    /// `model::Source::dicom`).
    pub fn options(self) -> gradlens::imaging::DicomOptions {
        gradlens::imaging::DicomOptions {
            window: self.window,
            frame: match self.frame {
                Frames::One(frame) => frame,
                Frames::Every => 0,
            },
        }
    }

    pub fn every_frame(self) -> bool {
        self.frame == Frames::Every
    }
}

fn parse_frame(text: &str) -> Result<Frames, String> {
    match text {
        "all" => Ok(Frames::Every),
        _ => text
            .parse()
            .map(Frames::One)
            .map_err(|_| format!("{text:?}: a frame index from 0, or \"all\"")),
    }
}

fn parse_window(text: &str) -> Result<gradlens::imaging::Window, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [center, width] = parts[..] else {
        return Err(format!("{text:?}: CENTER,WIDTH, e.g. 40,400"));
    };
    let number = |part: &str| part.parse::<f64>().ok().filter(|v| v.is_finite());
    match (number(center), number(width)) {
        (Some(center), Some(width)) if width >= 1.0 => {
            Ok(gradlens::imaging::Window { center, width })
        }
        _ => Err(format!(
            "{text:?}: CENTER,WIDTH as numbers, the width at least 1"
        )),
    }
}

/// The images and the model that `classify` and `saliency` run on.
#[derive(clap::Args)]
pub struct ImagesAndModel {
    /// PNG, JPEG or TIFF files (8- or 16-bit; gray, RGB or RGBA), DICOM files (.dcm), or folders of
    /// them.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A safetensors file (tools/export_torchvision.py, or a gradlens checkpoint).
    #[arg(long)]
    weights: PathBuf,
    /// The architecture, when the file does not name it (torchvision's function name).
    #[arg(long)]
    arch: Option<String>,
    #[command(flatten)]
    dicom: DicomArgs,
}

pub fn run(cli: Cli) -> gradlens::Result<()> {
    match cli.command {
        Command::Info => info::run(),
        Command::Bench(args) => bench::run(&args),
        Command::Demo { out } => demo::run(&out),
        Command::Classify {
            model,
            top,
            json,
            tile,
            stride,
            aggregate,
            shard,
            jsonl,
            check_finite,
        } => classify::run(&classify::Request {
            model: &model,
            top,
            json,
            shard,
            jsonl: jsonl.as_deref(),
            tile: tile.map(|tile| (tile as usize, stride.map(|s| s as usize), aggregate)),
            check_finite,
        }),
        Command::Train(args) => train::run(&args),
        Command::Slide(args) => slide::run(&args),
        Command::SyntheticSlide(args) => slide::synthetic(&args),
        Command::Evaluate {
            weights,
            data,
            json,
        } => train::evaluate(&weights, &data, json),
        Command::Run {
            arch,
            weights,
            input,
            out,
            grad_class,
            transform_input,
            train: _,
            labels,
            input_grad,
            check_finite,
        } => run::run(&run::Request {
            arch: &arch,
            weights: &weights,
            input: &input,
            out: &out,
            grad_class,
            train_labels: labels.as_deref(),
            input_grad,
            transform_input,
            check_finite,
        }),
        Command::Lesions {
            out,
            count,
            size,
            validation,
            seed,
        } => {
            if !(0.0..=1.0).contains(&validation) {
                return Err(gradlens::Error::InvalidArgument {
                    op: "lesions",
                    message: format!("--validation {validation} is not a share between 0 and 1"),
                });
            }
            lesions::run(&out, count as usize, size as usize, validation, seed)
        }
        Command::EvaluateSaliency {
            weights,
            data,
            masks,
            methods,
            limit,
            batch,
            steps,
            randomisation_images,
            seed,
            layer,
            json,
            plot,
        } => evaluate_saliency::run(&evaluate_saliency::Request {
            weights: &weights,
            data: &data,
            masks: masks.as_deref(),
            methods: methods.0,
            settings: gradlens::saliency::MethodSettings {
                layer,
                ..Default::default()
            },
            limit: limit.map(|l| l as usize),
            batch: batch as usize,
            steps: steps as usize,
            randomisation_images: randomisation_images as usize,
            seed,
            json: json.as_deref(),
            plot: plot.as_deref(),
        }),
        Command::Saliency {
            images,
            weights,
            arch,
            dicom,
            method,
            methods,
            class,
            out,
            raw_out,
            json,
            batch,
            tile,
            stride,
            check_finite,
            layer,
            occlusion_patch,
            occlusion_stride,
            occlusion_baseline,
            manifest_out,
            secondary_capture,
            anonymise,
            shard,
            jsonl,
            manifest,
        } => {
            let run = match manifest {
                Some(path) => manifest::read(&path)?,
                None => manifest::Run {
                    images,
                    listed: None,
                    weights: weights.expect("clap requires --weights without --manifest"),
                    arch,
                    grid: methods.is_some(),
                    methods: methods.map_or_else(|| vec![method], |list| list.0),
                    settings: gradlens::saliency::MethodSettings {
                        layer,
                        occlusion: occlusion_settings(
                            occlusion_patch,
                            occlusion_stride,
                            occlusion_baseline,
                        ),
                        ..Default::default()
                    },
                    class,
                    tile: tile.map(|tile| (tile as usize, stride.map(|s| s as usize))),
                    batch: batch as usize,
                    dicom: dicom.options(),
                    every_frame: dicom.every_frame(),
                },
            };
            saliency::run(&saliency::Request {
                run,
                out: out.as_deref(),
                raw_out: raw_out.as_deref(),
                json: json.as_deref(),
                manifest_out: manifest_out.as_deref(),
                capture: secondary_capture.then_some(saliency::Capture { anonymise }),
                shard,
                jsonl: jsonl.as_deref(),
                check_finite,
            })
        }
    }
}

/// `--occlusion-*` over occlusion's defaults.
fn occlusion_settings(
    patch: Option<u32>,
    stride: Option<u32>,
    baseline: Option<f32>,
) -> gradlens::saliency::Occlusion {
    let defaults = gradlens::saliency::Occlusion::default();
    gradlens::saliency::Occlusion {
        patch: patch.map_or(defaults.patch, |p| p as usize),
        stride: stride.map_or(defaults.stride, |s| s as usize),
        baseline: baseline.unwrap_or(defaults.baseline),
        ..defaults
    }
}

/// `--method`: the saliency methods by name, listed in --help and in clap's errors.
fn method_parser() -> impl clap::builder::TypedValueParser<Value = gradlens::saliency::Method> {
    use clap::builder::TypedValueParser;
    use gradlens::saliency::Method;
    clap::builder::PossibleValuesParser::new(Method::ALL.map(Method::name))
        .map(|name| Method::from_name(&name).expect("clap accepts only listed names"))
}
