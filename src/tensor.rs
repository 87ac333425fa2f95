//! Tensor: an f32, contiguous, row-major (NCHW for images) array in a pooled GPU buffer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::kept_copies::KeptCopyLease;
use crate::gpu::{BufferRange, FirstWrite, Gpu, PooledBuffer};

/// A tensor's shape. Scalars have rank 0 and one element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Self(dims.into())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Self(dims.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Self(dims.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Self(dims)
    }
}

/// A GPU tensor. Cloning shares the buffer, as do views from `rows`. Kernels write only into
/// tensors they create or are explicitly handed as outputs (conv2d_into's destination, the
/// optimisers' parameters).
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    shape: Shape,
    /// None for tensors with no elements: nothing to bind, nothing to allocate.
    buffer: Option<Arc<PooledBuffer>>,
    /// Where the tensor starts in the buffer, in bytes: 0 except for row views.
    offset: u64,
    /// Tensors computed from this one's values and kept for reuse (`derived`); shared by every
    /// clone and view of the buffer.
    derived: Arc<Mutex<HashMap<DerivedKey, Derived>>>,
}

/// A derived tensor's key: the source's byte offset and size (views share the map) and what
/// was computed.
type DerivedKey = (u64, u64, &'static str);

/// A derived tensor, the source buffer's write generation it was computed from (and the other
/// sources', `Stamps`), and its place in the kept copies' budget.
struct Derived {
    generation: u64,
    others: Stamps,
    tensor: Tensor,
    _kept: KeptCopyLease,
}

/// What a derived tensor's other sources and parameter were when it was computed: each
/// source's buffer, offset, size and write generation, and the parameter. A kept tensor is
/// reused only where they are all the same again. The sources are held too: a released buffer
/// loses its write generation, and a new tensor in it would count from 0 again.
struct Stamps {
    sources: Vec<(Option<wgpu::Buffer>, u64, u64, u64)>,
    parameter: u64,
    _held: Vec<Tensor>,
}

impl PartialEq for Stamps {
    fn eq(&self, other: &Self) -> bool {
        self.sources == other.sources && self.parameter == other.parameter
    }
}

impl Stamps {
    fn of(sources: &[&Tensor], parameter: u64) -> Self {
        let stamp = |t: &&Tensor| match &t.buffer {
            Some(buffer) => {
                let generation = t.gpu.write_generation(buffer.buffer());
                (
                    Some(buffer.buffer().clone()),
                    t.offset,
                    t.byte_size(),
                    generation,
                )
            }
            None => (None, 0, 0, 0),
        };
        Self {
            sources: sources.iter().map(stamp).collect(),
            parameter,
            _held: sources.iter().map(|&t| t.clone()).collect(),
        }
    }
}

impl Tensor {
    /// An uninitialised tensor (NaN-filled when the context poisons allocations, by a recorded
    /// copy, so that poisoned contexts reuse buffers as others do).
    pub fn empty(gpu: &Gpu, shape: impl Into<Shape>) -> Result<Self> {
        let tensor = Self::allocate(gpu, shape.into(), FirstWrite::Recorded)?;
        if let Some(buffer) = tensor.buffer.as_ref().filter(|_| gpu.poisons_allocations()) {
            gpu.poison(buffer.buffer())?;
        }
        Ok(tensor)
    }

    /// A tensor of `value`s. An upload, not a fill kernel (`kernels::fill::fill_into` fills an
    /// existing tensor): tensors sit below the kernels, it works for any size the buffer
    /// allows, and the error of an oversized op then names that op, not the filling. Zeros
    /// (+0.0) are a clear on the GPU, with no host copy (one optimiser state of VGG16's 138 M
    /// parameters is 553 MB); other values are uploaded, and every caller of those fills small
    /// tensors.
    pub fn full(gpu: &Gpu, shape: impl Into<Shape>, value: f32) -> Result<Self> {
        let zeros = value.to_bits() == 0;
        let first_write = match zeros {
            true => FirstWrite::Recorded,
            false => FirstWrite::Upload,
        };
        let tensor = Self::allocate(gpu, shape.into(), first_write)?;
        match &tensor.buffer {
            Some(buffer) if zeros => gpu.clear(buffer.buffer())?,
            Some(buffer) => {
                let values = vec![value; tensor.numel()];
                gpu.upload(buffer.buffer(), bytemuck::cast_slice(&values));
            }
            None => {}
        }
        Ok(tensor)
    }

    pub fn zeros(gpu: &Gpu, shape: impl Into<Shape>) -> Result<Self> {
        Self::full(gpu, shape, 0.0)
    }

    /// Uploads `data`; its length must equal the shape's element count.
    pub fn from_slice(gpu: &Gpu, shape: impl Into<Shape>, data: &[f32]) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::invalid(
                "Tensor::from_slice",
                format!(
                    "{} values given for shape {:?} ({} elements)",
                    data.len(),
                    shape.dims(),
                    shape.numel()
                ),
            ));
        }
        let tensor = Self::allocate(gpu, shape, FirstWrite::Upload)?;
        if let Some(buffer) = &tensor.buffer {
            gpu.upload(buffer.buffer(), bytemuck::cast_slice(data));
        }
        Ok(tensor)
    }

    /// A tensor in a leased buffer, first written as `first_write` says.
    fn allocate(gpu: &Gpu, shape: Shape, first_write: FirstWrite) -> Result<Self> {
        let bytes = byte_count(&shape)?;
        let buffer = if bytes == 0 {
            None
        } else {
            let what = format!("a tensor of shape {:?}", shape.dims());
            Some(Arc::new(gpu.allocate(bytes, &what, first_write)?))
        };
        Ok(Self {
            gpu: gpu.clone(),
            shape,
            buffer,
            offset: 0,
            derived: Arc::default(),
        })
    }

    /// `what` computed from this tensor by `compute`, kept with the tensor and reused while
    /// its buffer goes unwritten (no kernel has bound it for writing, nothing was uploaded
    /// into it): for transforms of weights, such as the Winograd-domain filters, that would
    /// otherwise be recomputed on every forward pass. Kept only where the kept copies' budget
    /// has room (`gpu::kept_copies`); otherwise computed for this call alone.
    pub(crate) fn derived(
        &self,
        what: &'static str,
        compute: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        self.derived_with(&[], 0, what, compute)
    }

    /// `derived` from this tensor, `others` and a `parameter` (a constant's bits): kept with
    /// this tensor and reused while none of the tensors is written and the parameter agrees.
    pub(crate) fn derived_with(
        &self,
        others: &[&Tensor],
        parameter: u64,
        what: &'static str,
        compute: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let Some(buffer) = &self.buffer else {
            return compute(self);
        };
        let key = (self.offset, self.byte_size(), what);
        // Read before computing: a write recorded meanwhile makes the result stale.
        let generation = self.gpu.write_generation(buffer.buffer());
        let others = Stamps::of(others, parameter);
        let stale = {
            let mut derived = self.derived.lock().expect("derived lock");
            match derived.get(&key) {
                Some(kept) if kept.generation == generation && kept.others == others => {
                    return Ok(kept.tensor.clone());
                }
                // Gone before the new copy asks for room in the budget.
                _ => derived.remove(&key),
            }
        };
        // Dropped here, outside the lock (a tensor's drop takes the pool's lock).
        drop(stale);
        let tensor = compute(self)?;
        let Some(kept) = self.gpu.keep_copy(tensor.byte_size()) else {
            return Ok(tensor);
        };
        let replaced = self.derived.lock().expect("derived lock").insert(
            key,
            Derived {
                generation,
                others,
                tensor: tensor.clone(),
                _kept: kept,
            },
        );
        drop(replaced);
        Ok(tensor)
    }

    /// Overwrites the contents with `data` (same element count), after all pending work.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "Tensor::write",
                left: self.dims().to_vec(),
                right: vec![data.len()],
            });
        }
        match &self.buffer {
            Some(buffer) => {
                self.gpu
                    .overwrite(buffer.buffer(), self.offset, bytemuck::cast_slice(data))
            }
            None => Ok(()),
        }
    }

    /// Waits for every recorded kernel and copies the values to the host. Natively only: in a
    /// browser, await [`Tensor::read`].
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.gpu.wait_for(&self.describe(), self.read())
    }

    /// The values on the host once every recorded kernel has run (the readback that works in
    /// a browser too).
    pub async fn read(&self) -> Result<Vec<f32>> {
        let Some(buffer) = &self.buffer else {
            return Ok(Vec::new());
        };
        let bytes = self
            .gpu
            .read_async(
                buffer.buffer(),
                self.offset,
                self.byte_size(),
                &self.describe(),
            )
            .await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// "a tensor of shape [..]", for readback errors.
    fn describe(&self) -> String {
        format!("a tensor of shape {:?}", self.dims())
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn byte_size(&self) -> u64 {
        self.numel() as u64 * 4
    }

    /// The same buffer seen with another shape of the same element count.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                left: self.dims().to_vec(),
                right: shape.dims().to_vec(),
            });
        }
        Ok(Self {
            shape,
            ..self.clone()
        })
    }

    /// Rows `start .. start + count` of the first axis, sharing this tensor's buffer: how a
    /// tensor larger than one storage binding (VGG's 411 MB classifier.0.weight) is bound in
    /// parts. The view must start at a multiple of the adapter's storage offset alignment.
    pub fn rows(&self, start: usize, count: usize) -> Result<Self> {
        const OP: &str = "Tensor::rows";
        let Some((&first, rest)) = self.dims().split_first() else {
            return Err(Error::invalid(OP, "a scalar has no rows"));
        };
        if start.checked_add(count).is_none_or(|end| end > first) {
            return Err(Error::invalid(
                OP,
                format!(
                    "{count} rows from row {start} of a tensor of shape {:?}",
                    self.dims()
                ),
            ));
        }
        let row_bytes = rest.iter().product::<usize>() as u64 * 4;
        let offset = self.offset + start as u64 * row_bytes;
        let alignment = u64::from(self.gpu.limits().min_storage_buffer_offset_alignment);
        if !offset.is_multiple_of(alignment) {
            return Err(Error::invalid(
                OP,
                format!(
                    "a view at byte {offset} is not aligned to the adapter's {alignment} bytes"
                ),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[0] = count;
        let shape = Shape::from(dims);
        Ok(Self {
            buffer: if shape.numel() == 0 {
                None
            } else {
                self.buffer.clone()
            },
            shape,
            offset,
            gpu: self.gpu.clone(),
            derived: self.derived.clone(),
        })
    }

    /// The tensor as a binding; None when it has no elements.
    pub(crate) fn binding(&self) -> Option<BufferRange> {
        self.buffer.as_ref().map(|buffer| BufferRange {
            buffer: buffer.buffer().clone(),
            offset: self.offset,
            size: self.byte_size(),
            dims: self.dims().to_vec(),
        })
    }

    /// Errors unless `other` has the same shape (naming both).
    pub fn expect_same_shape(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::ShapeMismatch {
                op,
                left: self.dims().to_vec(),
                right: other.dims().to_vec(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.dims())
    }
}

/// Bytes of an f32 tensor of this shape, or an error when the count overflows.
fn byte_count(shape: &Shape) -> Result<u64> {
    shape
        .dims()
        .iter()
        .try_fold(4u64, |bytes, &dim| bytes.checked_mul(dim as u64))
        .ok_or_else(|| {
            Error::invalid(
                "Tensor",
                format!("shape {:?} is too large to address", shape.dims()),
            )
        })
}
