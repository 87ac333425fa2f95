//! Launcher for shaders/matmul.wgsl: batched C = op(A) · op(B).

use super::{Launch, as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::gpu::BufferRange;
use crate::kernels::reduce;
use crate::kernels::transpose::transpose;
use crate::shaders::{Kernel, Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        m: u32,
        n: u32,
        k: u32,
        batch_stride_a: u32,
        batch_stride_b: u32,
        batch_stride_c: u32,
        /// log2 of the widths in texels of A's and B's textures (`SubgroupTexture`; 0 otherwise).
        a_texture_width_log2: u32,
        b_texture_width_log2: u32,
        /// Whether the subgroup kernel's epilogue applies a ReLU (0 or 1).
        relu: u32,
        /// Whether the subgroup kernel's stores go through its epilogue (0 or 1).
        epilogue: u32,
    }
}

// The tiled entries' workgroups are WORKGROUP_X × WORKGROUP_Y, set from the tile (`with_tile`).
entries! {
    entries for Shader::Matmul, Params;
    bindings { a: read 1, b: read 2, c: read_write 3, a_vec4: read 4, b_vec4: read 5 }
    MATMUL_NAIVE = "matmul_naive", WorkgroupSize::TileOverrides, [a, b, c];
    MATMUL_TILED = "matmul", WorkgroupSize::TileOverrides, [a, b, c];
    MATMUL_VEC4 = "matmul_vec4", WorkgroupSize::TileOverrides, [c, a_vec4, b_vec4];
    MATMUL_FEW_ROWS_NT = "matmul_few_rows_nt", WorkgroupSize::TileOverrides, [c, a_vec4, b_vec4];
    /// REDUCE_LANES (64) lanes per column of C.
    MATMUL_FEW_ROWS_NT_WORKGROUP = "matmul_few_rows_nt_workgroup",
        WorkgroupSize::Literal([64, 1, 1]), [c, a_vec4, b_vec4];
    MATMUL_FEW_ROWS_NN = "matmul_few_rows_nn", WorkgroupSize::TileOverrides, [a, c, b_vec4];
}

entries! {
    subgroup_entries for Shader::MatmulSubgroup, Params;
    bindings { a: read 1, b: read 2, c: read_write 3, a_texture: texture 4, b_texture: texture 5,
        row_affine: read 6 }
    /// One 8-lane subgroup per workgroup; A and B are read from the buffers or, with TEXTURES,
    /// from the textures, and both are bound either way, as is the epilogue's affine.
    MATMUL_SUBGROUP = "matmul_subgroup", WorkgroupSize::Literal([8, 1, 1]),
        [a, b, c, a_texture, b_texture, row_affine];
}

/// Which kernel computes the product.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum MatmulVariant {
    /// The fastest variant the operands and the adapter allow (`resolve_variant`).
    #[default]
    Auto,
    /// 4×4 tiles with vec4 loads: untransposed operands, K and N multiples of 4.
    Vec4,
    /// `Vec4` with K split into this many equal slices (the number must divide K / 4), whose
    /// partial products are then summed: more workgroups where M and N give few tiles and K is
    /// long. `Auto` splits on GPUs (see `vec4_k_slices`).
    Vec4SplitK(u32),
    /// Values of A shared across an 8-lane subgroup: K and N multiples of 4 (and M, when A
    /// is transposed), on an adapter with subgroups of exactly 8 lanes (lavapipe). Either
    /// operand may be transposed at no extra cost.
    Subgroup(SubgroupTile),
    /// `Subgroup` with A and B copied into textures first (plain buffer-to-texture copies;
    /// A's copy is kept for later products while its buffer goes unwritten) and read from
    /// there: about half the cost per read on lavapipe (BENCHMARKS.md). `Auto` takes it
    /// whenever each operand (all its batches) fits one texture (16384² texels on lavapipe)
    /// and lies at a 16-byte offset.
    SubgroupTexture(SubgroupTile),
    /// One invocation per output element: the simple reference kernel.
    Naive,
    /// Register-tiled: each invocation computes a rows × (4·column_vecs) block.
    Tiled(MatmulTile),
    /// A · Bᵀ for at most four rows of A (a Linear layer at batch 1 to 4): B read once, in
    /// rows, untransposed, one invocation per column of C. Needs rank-2 operands and K a
    /// multiple of 4. `Auto` picks it on CPU adapters.
    FewRowsTransposedB,
    /// The same product with one workgroup per column of C, its lanes reading B's row side
    /// by side and summing in workgroup memory: `Auto` picks it on GPUs, which the other
    /// leaves short of threads (BENCHMARKS.md).
    FewRowsTransposedBWorkgroups,
    /// A · B for at most four rows of A and B untransposed (a Linear layer's input gradient at
    /// batch 1 to 4): one invocation per 4 columns of C, walking down K. Needs rank-2
    /// operands and N a multiple of 4. `Auto` picks it on CPU adapters; on GPUs it would leave
    /// most threads idle, and no GPU has measured it yet.
    FewRowsUntransposedB,
}

/// The most rows of A the few-rows kernels take.
const FEW_ROWS: usize = 4;

/// Whether the few-rows kernels can compute this product (Auto picks one whenever they can).
fn few_rows_transposed_b_applies(a: &Tensor, b: &Tensor, options: MatmulOptions) -> bool {
    match (a.dims(), b.dims()) {
        (&[m, k], &[_, k_b]) => {
            options.transpose_b
                && !options.transpose_a
                && (1..=FEW_ROWS).contains(&m)
                && k == k_b
                && k % 4 == 0
        }
        _ => false,
    }
}

/// The tile shape of the tiled kernel: the shader's override constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulTile {
    pub workgroup_x: u32,
    pub workgroup_y: u32,
    /// Rows of C per invocation: 4 or 8.
    pub rows: u32,
    /// Groups of 4 columns of C per invocation: 1 or 2.
    pub column_vecs: u32,
}

impl MatmulTile {
    /// Among the tiles of the 1024³ bench on lavapipe (BENCHMARKS.md), the smallest of the
    /// fastest group: it wastes least work on matrices that are not multiples of the tile.
    pub const DEFAULT: MatmulTile = MatmulTile {
        workgroup_x: 8,
        workgroup_y: 8,
        rows: 4,
        column_vecs: 1,
    };
}

/// The tile of the subgroup kernel: the shader's override constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubgroupTile {
    /// Rows of C per subgroup, in eights: 1, 2 or 4.
    pub row_groups: u32,
    /// vec4 columns of C per lane: 1 or 2.
    pub column_vecs: u32,
}

impl SubgroupTile {
    /// 16 rows × 64 columns per subgroup: the fastest tile at 1024³ on lavapipe (BENCHMARKS.md).
    pub const DEFAULT: SubgroupTile = SubgroupTile {
        row_groups: 2,
        column_vecs: 2,
    };
}

/// Whether the subgroup kernel can run on this device.
pub fn subgroup_kernel_available(gpu: &crate::Gpu) -> bool {
    let info = gpu.adapter_info();
    gpu.features().contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == 8
        && info.subgroup_max_size == 8
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MatmulOptions {
    /// A is stored [K, M] (or [batch, K, M]) and used transposed.
    pub transpose_a: bool,
    /// B is stored [N, K] (or [batch, N, K]) and used transposed.
    pub transpose_b: bool,
    pub variant: MatmulVariant,
}

/// The product of A [M, K] and B [K, N] (as stored, before the optional transposes). Either
/// operand may carry a leading batch axis; a rank-2 operand is shared by every batch element.
pub fn matmul(a: &Tensor, b: &Tensor, options: MatmulOptions) -> Result<Tensor> {
    matmul_counted(a, b, options, None)
}

/// `matmul` whose profile entry counts `useful_flops` instead of 2·M·N·K: a convolution's
/// GEMM over zero-padded operands does the convolution's work, not the padding's.
pub(crate) fn matmul_counted(
    a: &Tensor,
    b: &Tensor,
    options: MatmulOptions,
    useful_flops: Option<u64>,
) -> Result<Tensor> {
    Ok(product_with(a, b, options, useful_flops, None)?.0)
}

/// What the subgroup kernel's stores apply to each row r of C (a convolution's output
/// channels): relu?(value · affine[0, r] + affine[1, r]).
#[derive(Clone, Copy)]
pub(crate) struct RowEpilogue<'a> {
    /// [2, M]: the scales, then the shifts.
    pub affine: &'a Tensor,
    pub relu: bool,
}

/// `matmul_counted` of untransposed operands whose product C is stored through `epilogue`
/// where `Auto` runs the subgroup kernels; the product and whether the epilogue was applied
/// (else the caller applies it).
pub(crate) fn matmul_then(
    a: &Tensor,
    b: &Tensor,
    useful_flops: Option<u64>,
    epilogue: RowEpilogue,
) -> Result<(Tensor, bool)> {
    product_with(a, b, MatmulOptions::default(), useful_flops, Some(epilogue))
}

/// Validates, resolves the variant (`resolve_variant`), and records the one function per
/// variant below; the product and whether `epilogue` was applied (the subgroup kernels' only).
fn product_with(
    a: &Tensor,
    b: &Tensor,
    options: MatmulOptions,
    useful_flops: Option<u64>,
    epilogue: Option<RowEpilogue>,
) -> Result<(Tensor, bool)> {
    let transposed_a;
    let (a, options) = match untransposed_a_for_subgroup_kernel(a, b, options)? {
        Some(a_t) => {
            transposed_a = a_t;
            let plain = MatmulOptions {
                transpose_a: false,
                ..options
            };
            (&transposed_a, plain)
        }
        None => (a, options),
    };
    const OP: &str = "matmul";
    let (batch_a, rows_a, cols_a) = split_batch(a, "A")?;
    let (batch_b, rows_b, cols_b) = split_batch(b, "B")?;
    let (m, k_a) = if options.transpose_a {
        (cols_a, rows_a)
    } else {
        (rows_a, cols_a)
    };
    let (k_b, n) = if options.transpose_b {
        (cols_b, rows_b)
    } else {
        (rows_b, cols_b)
    };
    if k_a != k_b {
        return Err(Error::ShapeMismatch {
            op: "matmul (inner dimensions)",
            left: a.dims().to_vec(),
            right: b.dims().to_vec(),
        });
    }
    let batch = match (batch_a, batch_b) {
        (Some(x), Some(y)) if x != y => {
            return Err(Error::ShapeMismatch {
                op: "matmul (batch sizes)",
                left: a.dims().to_vec(),
                right: b.dims().to_vec(),
            });
        }
        (Some(x), _) | (None, Some(x)) => Some(x),
        (None, None) => None,
    };
    let out_dims = match batch {
        Some(batch) => vec![batch, m, n],
        None => vec![m, n],
    };
    if let Some(epilogue) = epilogue.filter(|e| e.affine.dims() != [2, m]) {
        return Err(Error::invalid(
            OP,
            format!(
                "the epilogue's affine must be [2, {m}], got {:?}",
                epilogue.affine.dims()
            ),
        ));
    }
    let gpu = a.gpu();
    if batch.unwrap_or(1) * m * n == 0 {
        return Ok((Tensor::empty(gpu, out_dims)?, false));
    }
    let (Some(a_range), Some(b_range)) = (a.binding(), b.binding()) else {
        // K = 0: the empty sum.
        let out = Tensor::empty(gpu, out_dims)?;
        crate::kernels::fill::fill_into(&out, 0.0)?;
        return Ok((out, false));
    };
    let batch_count = as_u32(OP, "batch", batch.unwrap_or(1))?;
    let product = Product {
        gpu,
        params: Params {
            m: as_u32(OP, "M", m)?,
            n: as_u32(OP, "N", n)?,
            k: as_u32(OP, "K", k_a)?,
            batch_stride_a: if batch_a.is_some() {
                as_u32(OP, "A's batch stride", rows_a * cols_a)?
            } else {
                0
            },
            batch_stride_b: if batch_b.is_some() {
                as_u32(OP, "B's batch stride", rows_b * cols_b)?
            } else {
                0
            },
            batch_stride_c: as_u32(OP, "C's batch stride", m * n)?,
            a_texture_width_log2: 0,
            b_texture_width_log2: 0,
            relu: u32::from(epilogue.is_some_and(|e| e.relu)),
            epilogue: u32::from(epilogue.is_some()),
        },
        options,
        batch: batch_count,
        flops: useful_flops.unwrap_or(2 * u64::from(batch_count) * (m * n * k_a) as u64),
    };
    let texture_shapes = [&a_range, &b_range].map(|range| texture_shape_of(gpu, range));
    let layout = Layout {
        few_rows_preferred: few_rows_transposed_b_applies(a, b, options),
        few_rows: options.transpose_b
            && !options.transpose_a
            && batch_count == 1
            && (1..=FEW_ROWS).contains(&m)
            && k_a % 4 == 0,
        few_rows_untransposed_b: !options.transpose_b
            && !options.transpose_a
            && batch_count == 1
            && (1..=FEW_ROWS).contains(&m)
            && n % 4 == 0,
        vec4: !options.transpose_a && !options.transpose_b && k_a % 4 == 0 && n % 4 == 0,
        subgroup: subgroup_layout(options, [m, n, k_a]),
        textures: texture_shapes.iter().all(Option::is_some),
    };
    let variant = resolve_variant(options.variant, layout, a, b, [m, n, k_a], batch_count)?;
    let operands = [a_range, b_range];
    let subgroup_kernel = matches!(
        variant,
        MatmulVariant::Subgroup(_) | MatmulVariant::SubgroupTexture(_)
    );
    let applied = epilogue.is_some() && subgroup_kernel;
    let out = match variant {
        MatmulVariant::Auto => unreachable!("resolve_variant never returns Auto"),
        MatmulVariant::Subgroup(tile) => subgroup(&product, operands, tile, None, epilogue)?,
        MatmulVariant::SubgroupTexture(tile) => {
            let shapes = texture_shapes.map(|shape| shape.expect("resolved: both fit textures"));
            subgroup(&product, operands, tile, Some(shapes), epilogue)?
        }
        MatmulVariant::Vec4 => vec4(&product, operands, 1)?,
        MatmulVariant::Vec4SplitK(slices) => vec4(&product, operands, slices)?,
        MatmulVariant::FewRowsTransposedB => few_rows_transposed_b(&product, operands, false)?,
        MatmulVariant::FewRowsTransposedBWorkgroups => {
            few_rows_transposed_b(&product, operands, true)?
        }
        MatmulVariant::FewRowsUntransposedB => few_rows_untransposed_b(&product, operands)?,
        MatmulVariant::Naive => naive(&product, operands)?,
        MatmulVariant::Tiled(tile) => tiled(&product, operands, tile)?,
    };
    Ok((out.reshape(out_dims)?, applied))
}

/// A validated product: what every variant's launch needs.
struct Product<'g> {
    gpu: &'g crate::Gpu,
    params: Params,
    options: MatmulOptions,
    batch: u32,
    /// What the profile counts.
    flops: u64,
}

impl Product<'_> {
    /// C [batch, M, N], uninitialised.
    fn output(&self) -> Result<Tensor> {
        let [m, n] = [self.params.m, self.params.n].map(|d| d as usize);
        Tensor::empty(self.gpu, [self.batch as usize, m, n])
    }

    /// A launch of `kernel` reading A and B at `slots` and writing C.
    fn launch(
        &self,
        kernel: Kernel<Params>,
        [a, b]: [BufferRange; 2],
        slots: [u32; 2],
        out: &Tensor,
    ) -> Launch<'_, Params> {
        Launch::of(self.gpu, kernel, self.params)
            .bind_range(slots[0], Some(a))
            .bind_range(slots[1], Some(b))
            .bind(3, out)
            .flops(self.flops)
    }
}

/// The scalar kernels' operand slots, and the vec4 kernels'.
const SCALAR_SLOTS: [u32; 2] = [1, 2];
const VEC4_SLOTS: [u32; 2] = [4, 5];

/// `Subgroup` (`textures` None) or `SubgroupTexture` (the operands' texture shapes): A (a
/// layer's weights, as a rule) is copied once and the copy kept while its buffer goes
/// unwritten; B is copied for this product, into a texture leased until it is recorded. C is
/// stored through `epilogue` when there is one.
fn subgroup(
    product: &Product,
    operands: [BufferRange; 2],
    tile: SubgroupTile,
    textures: Option<[[u32; 2]; 2]>,
    epilogue: Option<RowEpilogue>,
) -> Result<Tensor> {
    if !matches!(tile.row_groups, 1 | 2 | 4) || !matches!(tile.column_vecs, 1 | 2) {
        return Err(Error::invalid(
            "matmul",
            format!("tile {tile:?}: row_groups must be 1, 2 or 4 and column_vecs 1 or 2"),
        ));
    }
    let gpu = product.gpu;
    let options = product.options;
    let kernel = MATMUL_SUBGROUP
        .kernel()
        .with_override("ROW_GROUPS", f64::from(tile.row_groups))
        .with_override("COLUMN_VECS", f64::from(tile.column_vecs))
        .with_override("TRANSPOSE_A", f64::from(u8::from(options.transpose_a)))
        .with_override("TRANSPOSE_B", f64::from(u8::from(options.transpose_b)))
        .with_override("TEXTURES", f64::from(u8::from(textures.is_some())));
    let params = product.params;
    let workgroups = [
        params.n.div_ceil(32 * tile.column_vecs),
        params.m.div_ceil(8 * tile.row_groups),
        product.batch,
    ];
    let out = product.output()?;
    // The kernel declares the operands both as buffers and as textures, and the epilogue's
    // affine; the ones it does not read are bound all the same (a 1×1 texture stands in for
    // each texture, A for the affine).
    let [a_range, b_range] = &operands;
    let affine = epilogue.and_then(|e| e.affine.binding());
    let affine = Some(affine.unwrap_or_else(|| a_range.clone()));
    let launch = match textures {
        Some([[a_width, a_height], [b_width, b_height]]) => {
            let a_texture = gpu.operand_texture(a_range, a_width, a_height)?;
            let b_texture = gpu.scratch_texture(b_width, b_height)?;
            gpu.copy_into_texture(b_range, b_texture.texture())?;
            let with_widths = Product {
                params: Params {
                    a_texture_width_log2: a_texture.width().ilog2(),
                    b_texture_width_log2: b_texture.size().0.ilog2(),
                    ..params
                },
                ..*product
            };
            with_widths
                .launch(kernel, operands, SCALAR_SLOTS, &out)
                .bind_texture(4, a_texture.view().clone())
                .bind_texture(5, b_texture.view().clone())
                .bind_range(6, affine)
                .on(workgroups)
        }
        None => product
            .launch(kernel, operands, SCALAR_SLOTS, &out)
            .bind_texture(4, gpu.placeholder_texture())
            .bind_texture(5, gpu.placeholder_texture())
            .bind_range(6, affine)
            .on(workgroups),
    };
    launch?;
    Ok(out)
}

/// The vec4 kernel, with K in `slices` slices whose partial products [batch, slices, M, N]
/// are summed afterwards.
fn vec4(product: &Product, operands: [BufferRange; 2], slices: u32) -> Result<Tensor> {
    let params = product.params;
    let tile = MatmulTile::DEFAULT;
    let kernel = MATMUL_VEC4
        .kernel()
        .with_override("K_SLICES", f64::from(slices));
    let workgroups = [
        params.n.div_ceil(4 * tile.workgroup_x),
        params.m.div_ceil(4 * tile.workgroup_y),
        product.batch * slices,
    ];
    let sliced = Product {
        batch: product.batch * slices,
        ..*product
    };
    let partial = sliced.output()?;
    product
        .launch(
            with_tile(kernel, tile, product.options),
            operands,
            VEC4_SLOTS,
            &partial,
        )
        .on(workgroups)?;
    if slices == 1 {
        return Ok(partial);
    }
    let [batch, slices, m, n] = [product.batch, slices, params.m, params.n].map(|d| d as usize);
    reduce::sum(&partial.reshape([batch, slices, m, n])?, &[1], false)
}

/// A · Bᵀ for at most FEW_ROWS rows of A: an invocation per column of C, or (`workgroup_per_
/// column`, on GPUs) a workgroup per column.
fn few_rows_transposed_b(
    product: &Product,
    operands: [BufferRange; 2],
    workgroup_per_column: bool,
) -> Result<Tensor> {
    let (params, options) = (product.params, product.options);
    let tile = MatmulTile::DEFAULT;
    let (entry, columns_per_workgroup) = match workgroup_per_column {
        false => (&MATMUL_FEW_ROWS_NT, tile.workgroup_x * tile.workgroup_y),
        true => (&MATMUL_FEW_ROWS_NT_WORKGROUP, 1),
    };
    let workgroups = grid_1d(
        product.gpu,
        u64::from(params.n.div_ceil(columns_per_workgroup)),
    );
    let out = product.output()?;
    product
        .launch(
            with_tile(entry.kernel(), tile, options),
            operands,
            VEC4_SLOTS,
            &out,
        )
        .on(workgroups)?;
    Ok(out)
}

/// A · B for at most FEW_ROWS rows of A: an invocation per 4 columns of C.
fn few_rows_untransposed_b(product: &Product, operands: [BufferRange; 2]) -> Result<Tensor> {
    let tile = MatmulTile::DEFAULT;
    let columns_per_workgroup = 4 * tile.workgroup_x * tile.workgroup_y;
    let workgroups = grid_1d(
        product.gpu,
        u64::from(product.params.n.div_ceil(columns_per_workgroup)),
    );
    let out = product.output()?;
    let kernel = with_tile(MATMUL_FEW_ROWS_NN.kernel(), tile, product.options);
    product
        .launch(kernel, operands, [1, 5], &out)
        .on(workgroups)?;
    Ok(out)
}

/// One invocation per element of C: the simple reference kernel.
fn naive(product: &Product, operands: [BufferRange; 2]) -> Result<Tensor> {
    let params = product.params;
    let tile = MatmulTile::DEFAULT;
    let workgroups = [
        params.n.div_ceil(tile.workgroup_x),
        params.m.div_ceil(tile.workgroup_y),
        product.batch,
    ];
    let out = product.output()?;
    let kernel = with_tile(MATMUL_NAIVE.kernel(), tile, product.options);
    product
        .launch(kernel, operands, SCALAR_SLOTS, &out)
        .on(workgroups)?;
    Ok(out)
}

/// The register-tiled kernel: each invocation a rows × (4·column_vecs) block of C.
fn tiled(product: &Product, operands: [BufferRange; 2], tile: MatmulTile) -> Result<Tensor> {
    validate_tile(tile)?;
    let params = product.params;
    let workgroups = [
        params.n.div_ceil(tile.workgroup_x * 4 * tile.column_vecs),
        params.m.div_ceil(tile.workgroup_y * tile.rows),
        product.batch,
    ];
    let out = product.output()?;
    let kernel = with_tile(MATMUL_TILED.kernel(), tile, product.options);
    product
        .launch(kernel, operands, SCALAR_SLOTS, &out)
        .on(workgroups)?;
    Ok(out)
}

/// K slices for the vec4 kernel: on GPUs, enough to give about 512 workgroups where M and N
/// give few (an H200 ran ResNet-18's layer1 weight gradients, 36 workgroups with K = 25088,
/// at 1.0 TFLOP/s against 19 for its forward), each slice at least 256 of K. CPU adapters
/// never split: a few cores are kept busy by a few workgroups.
fn vec4_k_slices(gpu: &crate::Gpu, [m, n, k]: [usize; 3], batch: u32) -> u32 {
    const WORKGROUPS_WANTED: usize = 512;
    const MIN_SLICE: usize = 256;
    if gpu.chooses_for_cpu() {
        return 1;
    }
    let tile = MatmulTile::DEFAULT;
    let workgroups = n.div_ceil(4 * tile.workgroup_x as usize)
        * m.div_ceil(4 * tile.workgroup_y as usize)
        * batch as usize;
    let mut slices = 1;
    while workgroups * slices * 2 <= WORKGROUPS_WANTED
        && (k / 4).is_multiple_of(slices * 2)
        && k / (slices * 2) >= MIN_SLICE
    {
        slices *= 2;
    }
    slices as u32
}

/// Whether the subgroup kernel reads these operands: K and N multiples of 4, and M too when A
/// is transposed (it is read as vec4s along M).
fn subgroup_layout(options: MatmulOptions, [m, n, k]: [usize; 3]) -> bool {
    k % 4 == 0 && n % 4 == 0 && (!options.transpose_a || m % 4 == 0)
}

/// Which layout conditions of the kernels hold.
#[derive(Clone, Copy)]
struct Layout {
    /// A rank-2 A · Bᵀ of at most FEW_ROWS rows of A: `Auto` takes a few-rows kernel.
    few_rows_preferred: bool,
    /// What the few-rows kernels take: A · Bᵀ, 1 to FEW_ROWS rows, K a multiple of 4, no batch.
    few_rows: bool,
    /// What `FewRowsUntransposedB` takes: A · B, 1 to FEW_ROWS rows, N a multiple of 4, no
    /// batch. `Auto` picks it on CPU adapters.
    few_rows_untransposed_b: bool,
    vec4: bool,
    subgroup: bool,
    /// A and B each fit one texture (`SubgroupTexture`).
    textures: bool,
}

/// The subgroup variant `Auto` runs for an untransposed, unbatched product A [M, K] · B [K, N]
/// that the subgroup kernel takes (what the tuner must time).
pub(crate) fn auto_subgroup_variant(
    gpu: &crate::Gpu,
    [m, n, k]: [usize; 3],
    tile: SubgroupTile,
) -> MatmulVariant {
    let fits = |values: usize| texture_shape(gpu, values / 4).is_some();
    subgroup_variant(tile, fits(m * k) && fits(k * n))
}

/// The subgroup variant: the operands from textures when they fit. The copies there run at
/// several GB/s on lavapipe, so they pay even for small products.
fn subgroup_variant(tile: SubgroupTile, operands_fit_textures: bool) -> MatmulVariant {
    match operands_fit_textures {
        true => MatmulVariant::SubgroupTexture(tile),
        false => MatmulVariant::Subgroup(tile),
    }
}

/// The shape of the texture that takes a copy of `range` (`texture_shape`), if it lies at a
/// 16-byte offset (copies into textures start at whole texels).
fn texture_shape_of(gpu: &crate::Gpu, range: &crate::gpu::BufferRange) -> Option<[u32; 2]> {
    match range.offset.is_multiple_of(16) && range.size.is_multiple_of(16) {
        true => texture_shape(gpu, (range.size / 16) as usize),
        false => None,
    }
}

/// The [width, height] of the texture that holds `texels` texels row after row: the
/// narrowest power-of-two width from 64 texels (1 KiB rows, which `copy_into_texture` needs
/// in multiples of 256 bytes) whose height fits the device; None when nothing fits.
fn texture_shape(gpu: &crate::Gpu, texels: usize) -> Option<[u32; 2]> {
    let max = gpu.limits().max_texture_dimension_2d as usize;
    let width = texels.div_ceil(max).next_power_of_two().max(64);
    let height = texels.div_ceil(width);
    (texels > 0 && width <= max && height <= max).then_some([width as u32, height as u32])
}

/// For `Auto` with a transposed A whose M is not a multiple of 4, on an adapter with the
/// subgroup kernel: A transposed explicitly, when that lets the subgroup kernel run. On
/// lavapipe a transpose costs far less than the scalar-load kernel's slowness (BENCHMARKS.md);
/// elsewhere nothing changes.
fn untransposed_a_for_subgroup_kernel(
    a: &Tensor,
    b: &Tensor,
    options: MatmulOptions,
) -> Result<Option<Tensor>> {
    if options.variant != MatmulVariant::Auto
        || !options.transpose_a
        || !subgroup_kernel_available(a.gpu())
    {
        return Ok(None);
    }
    // Rank 2 or 3 only (anything else is matmul's error to report).
    let matrix = |t: &Tensor| match *t.dims() {
        [rows, cols] | [_, rows, cols] => Some((rows, cols)),
        _ => None,
    };
    let (Some((k, m)), Some((b_rows, b_cols))) = (matrix(a), matrix(b)) else {
        return Ok(None);
    };
    let n = if options.transpose_b { b_rows } else { b_cols };
    let untransposed = MatmulOptions {
        transpose_a: false,
        ..options
    };
    if subgroup_layout(options, [m, n, k]) || !subgroup_layout(untransposed, [m, n, k]) {
        return Ok(None);
    }
    Ok(Some(transpose(a)?))
}

/// The concrete kernel for a request: `Auto` becomes the fastest variant the layout and the
/// device allow; an explicit variant whose conditions fail is an error.
fn resolve_variant(
    requested: MatmulVariant,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    [m, n, k]: [usize; 3],
    batch: u32,
) -> Result<MatmulVariant> {
    let gpu = a.gpu();
    let subgroup_fits = layout.subgroup && subgroup_kernel_available(gpu);
    let refuse = |what: &str, needs: &str| {
        Err(Error::invalid(
            "matmul",
            format!(
                "the {what} kernel needs {needs}, got A {:?}, B {:?}",
                a.dims(),
                b.dims()
            ),
        ))
    };
    match requested {
        // A Linear layer at batch 1 to 4: one invocation per column of C on CPU adapters, a
        // workgroup per column on GPUs (BENCHMARKS.md).
        MatmulVariant::Auto if layout.few_rows_preferred => Ok(match gpu.chooses_for_cpu() {
            true => MatmulVariant::FewRowsTransposedB,
            false => MatmulVariant::FewRowsTransposedBWorkgroups,
        }),
        // A Linear layer's input gradient at batch 1 to 4, on CPU adapters (BENCHMARKS.md).
        MatmulVariant::Auto if layout.few_rows_untransposed_b && gpu.chooses_for_cpu() => {
            Ok(MatmulVariant::FewRowsUntransposedB)
        }
        MatmulVariant::Auto if subgroup_fits => {
            let tile = crate::kernels::tuning::subgroup_tile(gpu, m, n, k);
            Ok(subgroup_variant(tile, layout.textures))
        }
        MatmulVariant::Auto if layout.vec4 => Ok(match vec4_k_slices(gpu, [m, n, k], batch) {
            1 => MatmulVariant::Vec4,
            slices => MatmulVariant::Vec4SplitK(slices),
        }),
        MatmulVariant::Auto => Ok(MatmulVariant::Tiled(MatmulTile::DEFAULT)),
        MatmulVariant::Subgroup(_) | MatmulVariant::SubgroupTexture(_)
            if !subgroup_kernel_available(gpu) =>
        {
            Err(Error::invalid(
                "matmul",
                format!(
                    "the subgroup kernel needs 8-lane subgroups, which {} lacks",
                    gpu.describe()
                ),
            ))
        }
        MatmulVariant::Subgroup(_) if !layout.subgroup => refuse(
            "subgroup",
            "K and N multiples of 4, and M too when A is transposed",
        ),
        MatmulVariant::SubgroupTexture(_) if !layout.subgroup || !layout.textures => refuse(
            "subgroup-texture",
            "K and N multiples of 4 (M too when A is transposed) and operands within the \
             device's texture size at 16-byte offsets",
        ),
        MatmulVariant::Vec4 | MatmulVariant::Vec4SplitK(_) if !layout.vec4 => {
            refuse("vec4", "untransposed operands with K and N multiples of 4")
        }
        MatmulVariant::Vec4SplitK(slices)
            if slices == 0 || !(k / 4).is_multiple_of(slices as usize) =>
        {
            refuse(
                "split-K vec4",
                &format!("a slice count that divides K / 4 (got {slices})"),
            )
        }
        MatmulVariant::FewRowsTransposedB | MatmulVariant::FewRowsTransposedBWorkgroups
            if !layout.few_rows =>
        {
            Err(Error::invalid(
                "matmul",
                format!(
                    "the few-rows kernel takes A · Bᵀ with 1 to {FEW_ROWS} rows of A, K a \
                     multiple of 4 and no batch; got M {m}, K {k}, batch {batch}"
                ),
            ))
        }
        MatmulVariant::FewRowsUntransposedB if !layout.few_rows_untransposed_b => {
            Err(Error::invalid(
                "matmul",
                format!(
                    "the few-rows kernel for an untransposed B takes A · B with 1 to {FEW_ROWS} \
                     rows of A, N a multiple of 4 and no batch; got M {m}, N {n}, batch {batch}"
                ),
            ))
        }
        chosen => Ok(chosen),
    }
}

fn with_tile(kernel: Kernel<Params>, tile: MatmulTile, options: MatmulOptions) -> Kernel<Params> {
    kernel
        .with_override("TRANSPOSE_A", f64::from(u8::from(options.transpose_a)))
        .with_override("TRANSPOSE_B", f64::from(u8::from(options.transpose_b)))
        .with_override("WORKGROUP_X", f64::from(tile.workgroup_x))
        .with_override("WORKGROUP_Y", f64::from(tile.workgroup_y))
        .with_override("ROWS", f64::from(tile.rows))
        .with_override("COLUMN_VECS", f64::from(tile.column_vecs))
}

fn validate_tile(tile: MatmulTile) -> Result<()> {
    if !matches!(tile.rows, 4 | 8) || !matches!(tile.column_vecs, 1 | 2) {
        return Err(Error::invalid(
            "matmul",
            format!("tile {tile:?}: rows must be 4 or 8 and column_vecs 1 or 2"),
        ));
    }
    if tile.workgroup_x == 0 || tile.workgroup_y == 0 {
        return Err(Error::invalid(
            "matmul",
            format!("tile {tile:?}: empty workgroup"),
        ));
    }
    Ok(())
}

/// (batch, rows, cols) of a rank-2 or rank-3 operand.
fn split_batch(t: &Tensor, name: &str) -> Result<(Option<usize>, usize, usize)> {
    match *t.dims() {
        [rows, cols] => Ok((None, rows, cols)),
        [batch, rows, cols] => Ok((Some(batch), rows, cols)),
        ref dims => Err(Error::invalid(
            "matmul",
            format!("{name} must have rank 2 or 3, got shape {dims:?}"),
        )),
    }
}
