//! The one error type of the library. Every variant names the thing that went wrong (the kernel,
//! the tensor, the shapes); the command line turns it into a one-line message and an exit code.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{detail}; install a Vulkan driver (on Debian/Ubuntu without a GPU: \
         `apt-get install mesa-vulkan-drivers` for the lavapipe software adapter), or set \
         GRADLENS_BACKEND=gl to use OpenGL"
    )]
    NoAdapter { detail: String },

    #[error("GRADLENS_ADAPTER={wanted:?} matches none of the adapters found: {available}")]
    AdapterNotFound { wanted: String, available: String },

    #[error("GRADLENS_BACKEND={0:?} is not one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    #[error("could not open a device on adapter {adapter:?}: {message}")]
    RequestDevice { adapter: String, message: String },

    #[error("{op}: shape mismatch: {left:?} vs {right:?}")]
    ShapeMismatch {
        op: &'static str,
        left: Vec<usize>,
        right: Vec<usize>,
    },

    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },

    #[error(
        "kernel {kernel}: {tensor} ({bytes} bytes) exceeds the adapter's storage binding limit \
         of {limit} bytes, and this op cannot split it"
    )]
    BindingTooLarge {
        kernel: String,
        /// What the binding holds: "a tensor of shape [..]".
        tensor: String,
        bytes: u64,
        limit: u64,
    },

    #[error("GPU validation error in kernel {kernel}: {message}")]
    Validation { kernel: String, message: String },

    #[error("GPU out of memory while {during}")]
    OutOfMemory { during: String },

    #[error("GPU device lost: {reason}")]
    DeviceLost { reason: String },

    #[error("{path}: {message}")]
    Weights { path: String, message: String },

    /// A weights file whose tensors do not fit the model: a short summary, and every problem
    /// in `details` (printed by `gradlens --full-errors`).
    #[error("{path}: {summary}")]
    WeightsMismatch {
        path: String,
        summary: String,
        details: Vec<String>,
    },

    #[error("{path}: {message}")]
    Image { path: String, message: String },

    #[error("--check-finite: {0}")]
    NonFinite(crate::gpu::NonFinite),

    #[error(
        "the loss became {loss} in epoch {epoch} step {step}; stopped before the weights were \
         updated"
    )]
    LossNotFinite {
        loss: f32,
        epoch: usize,
        step: usize,
    },

    /// Any other file gradlens writes (traces, reports).
    #[error("{path}: {message}")]
    Output { path: String, message: String },

    #[error("reading back {what} from the GPU failed: {message}")]
    Readback { what: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Every problem behind an error that summarises many (a weights mismatch); empty for
    /// the others.
    pub fn details(&self) -> &[String] {
        match self {
            Error::WeightsMismatch { details, .. } => details,
            _ => &[],
        }
    }

    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            message: message.into(),
        }
    }
}
