//! shaders/matmul.wgsl (both variants, all transposes, batches) against the CPU reference,
//! through `OpCheck` (poisoned outputs); the products' gradients are checked where they are
//! used, in tests/layers.rs (linear) and tests/conv2d.rs.

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, gpu};
use gradlens::kernels::matmul::{
    MatmulOptions, MatmulTile, MatmulVariant, SubgroupTile, matmul, subgroup_kernel_available,
};
use gradlens::{Error, Tensor, reference};

/// Tile shapes exercised besides the default: the bench's candidates.
const TILES: &[MatmulTile] = &[
    MatmulTile::DEFAULT,
    MatmulTile {
        workgroup_x: 8,
        workgroup_y: 8,
        rows: 8,
        column_vecs: 2,
    },
    MatmulTile {
        workgroup_x: 4,
        workgroup_y: 16,
        rows: 8,
        column_vecs: 1,
    },
    MatmulTile {
        workgroup_x: 16,
        workgroup_y: 4,
        rows: 4,
        column_vecs: 2,
    },
];

struct Case {
    batch: Option<usize>,
    shared_b: bool,
    m: usize,
    n: usize,
    k: usize,
}

fn check(rng: &mut Rng, case: &Case, transpose_a: bool, transpose_b: bool, variant: MatmulVariant) {
    let Case {
        batch,
        shared_b,
        m,
        n,
        k,
    } = *case;
    let count = batch.unwrap_or(1);
    let b_count = if shared_b { 1 } else { count };
    let a = rng.vec(count * m * k);
    let b = rng.vec(b_count * k * n);
    let a_dims = match (transpose_a, batch) {
        (false, None) => vec![m, k],
        (true, None) => vec![k, m],
        (false, Some(p)) => vec![p, m, k],
        (true, Some(p)) => vec![p, k, m],
    };
    let b_dims = match (transpose_b, batch.filter(|_| !shared_b)) {
        (false, None) => vec![k, n],
        (true, None) => vec![n, k],
        (false, Some(p)) => vec![p, k, n],
        (true, Some(p)) => vec![p, n, k],
    };
    let options = MatmulOptions {
        transpose_a,
        transpose_b,
        variant,
    };
    let want_dims = match batch {
        Some(p) => vec![p, m, n],
        None => vec![m, n],
    };
    // Sums of k products of values in [-1, 1]: f32 rounding grows like sqrt(k).
    let atol = 1e-5 * (k as f32).sqrt().max(1.0) * 4.0;
    let name = format!("{variant:?} ta={transpose_a} tb={transpose_b} batch={batch:?} {m}x{n}x{k}");
    OpCheck::new(&name, vec![(a_dims, a), (b_dims, b)])
        .output_shape(&want_dims)
        .tolerances(
            Tolerance { rtol: 1e-5, atol },
            Tolerance { rtol: 1e-5, atol },
        )
        .run_forward(
            |t| matmul(&t[0], &t[1], options),
            |v| {
                let b_stride = if shared_b { 0 } else { k * n };
                let (ta, tb) = (transpose_a, transpose_b);
                reference::matmul::matmul(v[0], v[1], count, m, n, k, ta, tb, m * k, b_stride)
            },
        );
}

const CASES: &[Case] = &[
    Case {
        batch: None,
        shared_b: false,
        m: 1,
        n: 1,
        k: 1,
    },
    Case {
        batch: None,
        shared_b: false,
        m: 1,
        n: 13,
        k: 7,
    },
    Case {
        batch: None,
        shared_b: false,
        m: 37,
        n: 41,
        k: 43,
    },
    Case {
        batch: None,
        shared_b: false,
        m: 64,
        n: 64,
        k: 64,
    },
    Case {
        batch: None,
        shared_b: false,
        m: 97,
        n: 3,
        k: 129,
    },
    Case {
        batch: None,
        shared_b: false,
        m: 5,
        n: 131,
        k: 2,
    },
    Case {
        batch: Some(3),
        shared_b: false,
        m: 17,
        n: 19,
        k: 23,
    },
    Case {
        batch: Some(2),
        shared_b: true,
        m: 33,
        n: 9,
        k: 31,
    },
];

#[test]
fn tiled_matmul_matches_reference_for_every_transpose() {
    let mut rng = Rng::new(10);
    for case in CASES {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            check(&mut rng, case, ta, tb, MatmulVariant::default());
        }
    }
}

#[test]
fn every_tile_shape_matches_reference() {
    let mut rng = Rng::new(11);
    for &tile in TILES {
        for case in &CASES[2..] {
            check(&mut rng, case, false, false, MatmulVariant::Tiled(tile));
            check(&mut rng, case, true, true, MatmulVariant::Tiled(tile));
        }
    }
}

#[test]
fn vec4_matmul_matches_reference_where_it_applies() {
    let mut rng = Rng::new(14);
    let aligned = [
        Case {
            batch: None,
            shared_b: false,
            m: 1,
            n: 4,
            k: 4,
        },
        Case {
            batch: None,
            shared_b: false,
            m: 37,
            n: 44,
            k: 52,
        },
        Case {
            batch: Some(3),
            shared_b: false,
            m: 17,
            n: 20,
            k: 24,
        },
        Case {
            batch: Some(2),
            shared_b: true,
            m: 33,
            n: 8,
            k: 12,
        },
    ];
    for case in &aligned {
        check(&mut rng, case, false, false, MatmulVariant::Vec4);
        // K split into slices whose partial products are summed (Auto does this on GPUs).
        for slices in [1, 2, 3, 13] {
            if (case.k / 4) % slices == 0 {
                check(
                    &mut rng,
                    case,
                    false,
                    false,
                    MatmulVariant::Vec4SplitK(slices as u32),
                );
            }
        }
    }
    let a = Tensor::zeros(gpu(), [4, 8]).unwrap();
    let b = Tensor::zeros(gpu(), [8, 8]).unwrap();
    for slices in [0, 3] {
        let options = MatmulOptions {
            variant: MatmulVariant::Vec4SplitK(slices),
            ..MatmulOptions::default()
        };
        let error = matmul(&a, &b, options).unwrap_err().to_string();
        assert!(error.contains("divides K / 4"), "{error}");
    }
    let a = Tensor::zeros(gpu(), [4, 6]).unwrap();
    let b = Tensor::zeros(gpu(), [6, 8]).unwrap();
    let options = MatmulOptions {
        variant: MatmulVariant::Vec4,
        ..MatmulOptions::default()
    };
    let error = matmul(&a, &b, options).unwrap_err().to_string();
    assert!(error.contains("multiples of 4"), "{error}");
}

#[test]
fn subgroup_matmul_matches_reference_for_every_tile() {
    if common::skipped_without(
        subgroup_kernel_available(gpu()),
        "subgroup_matmul_matches_reference_for_every_tile",
        "8-lane subgroups",
    ) {
        return;
    }
    let mut rng = Rng::new(15);
    // Sizes off every tile in M and N (8·row_groups rows, 32·column_vecs columns per subgroup).
    let aligned = [
        Case {
            batch: None,
            shared_b: false,
            m: 1,
            n: 4,
            k: 4,
        },
        Case {
            batch: None,
            shared_b: false,
            m: 37,
            n: 44,
            k: 52,
        },
        Case {
            batch: None,
            shared_b: false,
            m: 70,
            n: 132,
            k: 36,
        },
        Case {
            batch: Some(3),
            shared_b: false,
            m: 17,
            n: 20,
            k: 24,
        },
        Case {
            batch: Some(2),
            shared_b: true,
            m: 33,
            n: 68,
            k: 12,
        },
    ];
    // A transposed is read as vec4s along M too: M a multiple of 4, still off the tiles.
    let m_aligned = [
        Case {
            batch: None,
            shared_b: false,
            m: 4,
            n: 4,
            k: 4,
        },
        Case {
            batch: None,
            shared_b: false,
            m: 36,
            n: 44,
            k: 52,
        },
        Case {
            batch: None,
            shared_b: false,
            m: 68,
            n: 132,
            k: 36,
        },
        Case {
            batch: Some(3),
            shared_b: false,
            m: 20,
            n: 20,
            k: 24,
        },
        Case {
            batch: Some(2),
            shared_b: true,
            m: 44,
            n: 68,
            k: 12,
        },
    ];
    for row_groups in [1, 2, 4] {
        for column_vecs in [1, 2] {
            let tile = SubgroupTile {
                row_groups,
                column_vecs,
            };
            // The operands read from buffers, and from textures (copies of their buffers,
            // batches and all).
            for variant in [
                MatmulVariant::Subgroup(tile),
                MatmulVariant::SubgroupTexture(tile),
            ] {
                for transpose_b in [false, true] {
                    for case in &aligned {
                        check(&mut rng, case, false, transpose_b, variant);
                    }
                    for case in &m_aligned {
                        check(&mut rng, case, true, transpose_b, variant);
                    }
                }
            }
        }
    }
    // Auto transposes A first when M is not a multiple of 4, then runs the subgroup kernel.
    check(&mut rng, &aligned[1], true, true, MatmulVariant::Auto);
    let a = Tensor::zeros(gpu(), [4, 8]).unwrap();
    let b = Tensor::zeros(gpu(), [8, 6]).unwrap();
    let options = MatmulOptions {
        variant: MatmulVariant::Subgroup(SubgroupTile::DEFAULT),
        ..MatmulOptions::default()
    };
    assert!(
        matmul(&a, &b, options).is_err(),
        "N = 6 is not a multiple of 4"
    );
    let a_stored_k_by_m = Tensor::zeros(gpu(), [8, 6]).unwrap();
    let b = Tensor::zeros(gpu(), [8, 8]).unwrap();
    let transposed = MatmulOptions {
        transpose_a: true,
        ..options
    };
    let error = matmul(&a_stored_k_by_m, &b, transposed)
        .unwrap_err()
        .to_string();
    assert!(error.contains("M too when A is transposed"), "{error}");
    let from_textures = MatmulOptions {
        variant: MatmulVariant::SubgroupTexture(SubgroupTile::DEFAULT),
        ..MatmulOptions::default()
    };
    let k_not_a_multiple_of_4 = Tensor::zeros(gpu(), [8, 6]).unwrap();
    let b_with_6_rows = Tensor::zeros(gpu(), [6, 8]).unwrap();
    let error = matmul(&k_not_a_multiple_of_4, &b_with_6_rows, from_textures)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("subgroup-texture kernel needs K and N multiples of 4"),
        "{error}"
    );
}

/// An operand's texture is its buffer laid row after row into texture rows of a power-of-two
/// width: 64 texels while the height fits the device, wider past that (past 64 × 16384 texels
/// on lavapipe, as here: 1028 × 4100 / 4 texels in 128-texel rows), for B and for A.
#[test]
fn operand_textures_wider_than_the_narrowest_layout_match_reference() {
    if common::skipped_without(
        subgroup_kernel_available(gpu()),
        "operand_textures_wider_than_the_narrowest_layout_match_reference",
        "8-lane subgroups",
    ) {
        return;
    }
    let mut rng = Rng::new(14);
    let variant = MatmulVariant::SubgroupTexture(SubgroupTile::DEFAULT);
    let wide_b = Case {
        batch: None,
        shared_b: false,
        m: 12,
        n: 4100,
        k: 1028,
    };
    check(&mut rng, &wide_b, false, false, variant);
    let wide_a = Case {
        batch: None,
        shared_b: false,
        m: 1028,
        n: 8,
        k: 4100,
    };
    check(&mut rng, &wide_a, false, false, variant);
}

#[test]
fn naive_matmul_matches_reference() {
    let mut rng = Rng::new(12);
    for case in CASES {
        for (ta, tb) in [(false, false), (true, true)] {
            check(&mut rng, case, ta, tb, MatmulVariant::Naive);
        }
    }
}

#[test]
fn a_resnet_sized_gemm_matches_reference() {
    // ResNet-50's 3×3 64→64 conv at 56×56 as a GEMM: 3136 × 64 × 576.
    let mut rng = Rng::new(13);
    let case = Case {
        batch: None,
        shared_b: false,
        m: 3136,
        n: 64,
        k: 576,
    };
    check(&mut rng, &case, false, false, MatmulVariant::default());
}

#[test]
fn mismatched_inner_dimensions_are_refused() {
    let a = Tensor::zeros(gpu(), [4, 5]).unwrap();
    let b = Tensor::zeros(gpu(), [6, 7]).unwrap();
    let error = matmul(&a, &b, MatmulOptions::default()).unwrap_err();
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
    assert!(error.to_string().contains("[4, 5]"), "{error}");

    let rank4 = Tensor::zeros(gpu(), [1, 2, 3, 4]).unwrap();
    assert!(matmul(&rank4, &b, MatmulOptions::default()).is_err());

    let bad_tile = MatmulVariant::Tiled(MatmulTile {
        rows: 9,
        ..MatmulTile::DEFAULT
    });
    let options = MatmulOptions {
        variant: bad_tile,
        ..MatmulOptions::default()
    };
    let c = Tensor::zeros(gpu(), [5, 6]).unwrap();
    assert!(matmul(&a, &c, options).is_err());
}

#[test]
fn an_empty_inner_dimension_gives_zeros() {
    let a = Tensor::from_slice(gpu(), [3, 0], &[]).unwrap();
    let b = Tensor::from_slice(gpu(), [0, 2], &[]).unwrap();
    let c = matmul(&a, &b, MatmulOptions::default()).unwrap();
    assert_eq!(c.to_vec().unwrap(), vec![0.0; 6]);
}

#[test]
fn transpose_swaps_the_last_two_axes() {
    use gradlens::kernels::transpose::transpose;
    let mut rng = Rng::new(16);
    for (batch, rows, cols) in [(1, 1, 1), (1, 3, 7), (4, 17, 5), (2, 64, 36)] {
        let input = vec![(vec![batch, rows, cols], rng.vec(batch * rows * cols))];
        OpCheck::new(&format!("transpose {batch}×{rows}×{cols}"), input)
            .output_shape(&[batch, cols, rows])
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run_forward(
                |t| transpose(&t[0]),
                |v| gradlens::reference::transpose::transpose(v[0], [batch, rows, cols]),
            );
    }
    let rank4 = Tensor::zeros(gpu(), [1, 1, 2, 2]).unwrap();
    assert!(transpose(&rank4).is_err());
}

#[test]
fn swap_leading_axes_moves_contiguous_runs() {
    use gradlens::kernels::transpose::swap_leading_axes;
    let mut rng = Rng::new(17);
    // Runs of single values and of vec4s; more rows than workgroups (each loops over several).
    for (batch, rows, cols) in [
        (1, 1, 1),
        (2, 3, 7),
        (3, 5, 16),
        (4, 1, 9),
        (8, 300, 4),
        (3, 400, 5),
    ] {
        let input = vec![(vec![batch, rows, cols], rng.vec(batch * rows * cols))];
        OpCheck::new(&format!("swap_leading_axes {batch}×{rows}×{cols}"), input)
            .output_shape(&[rows, batch, cols])
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run_forward(
                |t| swap_leading_axes(&t[0]),
                |v| gradlens::reference::transpose::swap_leading_axes(v[0], [batch, rows, cols]),
            );
    }
    let rank2 = Tensor::zeros(gpu(), [2, 2]).unwrap();
    assert!(swap_leading_axes(&rank2).is_err());
}

#[test]
fn resize_last_axis_pads_with_zeros_and_crops() {
    use gradlens::kernels::transpose::resize_last_axis;
    let mut rng = Rng::new(18);
    for (dims, length) in [
        (vec![7], 8),
        (vec![3, 49], 52),
        (vec![2, 5, 52], 49),
        (vec![2, 3, 4], 4),
        (vec![4, 1], 4),
        (vec![3000, 7], 12),
        (vec![2, 700], 603),
        (vec![3, 300], 601),
    ] {
        let last = *dims.last().unwrap();
        let rows = dims.iter().product::<usize>() / last;
        let mut want_dims = dims.clone();
        *want_dims.last_mut().unwrap() = length;
        let input = vec![(dims.clone(), rng.vec(rows * last))];
        OpCheck::new(&format!("resize_last_axis {dims:?} → {length}"), input)
            .output_shape(&want_dims)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run_forward(
                |t| resize_last_axis(&t[0], length),
                |v| gradlens::reference::transpose::resize_last_axis(v[0], rows, last, length),
            );
    }
    let empty = Tensor::from_slice(gpu(), [3, 0], &[]).unwrap();
    assert_eq!(
        resize_last_axis(&empty, 2).unwrap().to_vec().unwrap(),
        gradlens::reference::transpose::resize_last_axis::<f32>(&[], 3, 0, 2)
    );
}

/// A [M, K] · B (stored [N, K] with `transpose_b`, else [K, N]) for each (M, N, K) of `cases`
/// and each of `variants`, against the reference.
fn few_rows_products_match_reference(
    seed: u64,
    transpose_b: bool,
    cases: &[(usize, usize, usize)],
    variants: &[MatmulVariant],
) {
    let mut rng = Rng::new(seed);
    for &(m, n, k) in cases {
        let b_dims = if transpose_b { vec![n, k] } else { vec![k, n] };
        let inputs = vec![(vec![m, k], rng.vec(m * k)), (b_dims, rng.vec(n * k))];
        let tolerance = Tolerance {
            rtol: 1e-5,
            atol: 1e-5 * (k as f32).sqrt(),
        };
        for &variant in variants {
            let options = MatmulOptions {
                transpose_b,
                variant,
                ..MatmulOptions::default()
            };
            OpCheck::new(&format!("{variant:?} {m}x{n}x{k}"), inputs.clone())
                .output_shape(&[m, n])
                .tolerances(tolerance, tolerance)
                .run_forward(
                    |t| matmul(&t[0], &t[1], options),
                    |v| reference::matmul::matmul(v[0], v[1], 1, m, n, k, false, transpose_b, 0, 0),
                );
        }
    }
}

/// A · Bᵀ with one to four rows of A (Linear at small batch): both few-rows kernels, and
/// Auto's pick, against the reference; refused where they do not apply. 70000 columns fold
/// the per-column workgroups into two rows of the grid, the second partly past N.
#[test]
fn few_rows_transposed_b_matches_reference() {
    few_rows_products_match_reference(
        19,
        true,
        &[
            (1, 1, 4),
            (1, 1000, 2048),
            (2, 37, 12),
            (3, 130, 64),
            (4, 65, 256),
            (2, 70000, 8),
        ],
        &[
            MatmulVariant::Auto,
            MatmulVariant::FewRowsTransposedB,
            MatmulVariant::FewRowsTransposedBWorkgroups,
        ],
    );
    let five = Tensor::zeros(gpu(), [5, 8]).unwrap();
    let b = Tensor::zeros(gpu(), [3, 8]).unwrap();
    for variant in [
        MatmulVariant::FewRowsTransposedB,
        MatmulVariant::FewRowsTransposedBWorkgroups,
    ] {
        let options = MatmulOptions {
            transpose_b: true,
            variant,
            ..MatmulOptions::default()
        };
        assert!(matmul(&five, &b, options).is_err());
    }
}

/// A · B with one to four rows of A and B untransposed (a Linear layer's input gradient at
/// small batch): the few-rows kernel, and Auto's pick, against the reference; refused where it
/// does not apply. 280000 columns take 1094 workgroups, folded in tools/test.sh's 64-per-
/// dimension pass.
#[test]
fn few_rows_untransposed_b_matches_reference() {
    few_rows_products_match_reference(
        21,
        false,
        &[
            (1, 4, 1),
            (1, 2048, 1000),
            (2, 36, 13),
            (3, 132, 64),
            (4, 68, 257),
            (2, 280_000, 3),
        ],
        &[MatmulVariant::Auto, MatmulVariant::FewRowsUntransposedB],
    );
    let options = |transpose_b| MatmulOptions {
        transpose_b,
        variant: MatmulVariant::FewRowsUntransposedB,
        ..MatmulOptions::default()
    };
    let zeros = |dims: [usize; 2]| Tensor::zeros(gpu(), dims).unwrap();
    assert!(
        matmul(&zeros([5, 8]), &zeros([8, 4]), options(false)).is_err(),
        "five rows"
    );
    assert!(
        matmul(&zeros([2, 8]), &zeros([8, 6]), options(false)).is_err(),
        "N of 6"
    );
    assert!(
        matmul(&zeros([2, 8]), &zeros([4, 8]), options(true)).is_err(),
        "B transposed"
    );
    let batched = Tensor::zeros(gpu(), [2, 2, 8]).unwrap();
    assert!(
        matmul(&batched, &zeros([8, 4]), options(false)).is_err(),
        "a batch"
    );
}

/// `Auto`'s kernel for A · Bᵀ with a few rows of A goes by the adapter's type: an invocation
/// per column of C on CPU adapters, a workgroup per column on GPUs. tools/test.sh runs this
/// binary a second time choosing as for a GPU (`GRADLENS_TEST_CHOOSE_AS=gpu`), so that CI
/// runs, and checks the numbers of, what `Auto` picks on GPUs too.
#[test]
fn auto_picks_the_few_rows_kernel_for_the_adapter_type() {
    // A context of its own: the profile must hold this test's dispatches only.
    let gpu = &common::private_gpu();
    let mut rng = Rng::new(20);
    let (m, n, k) = (2, 300, 64);
    let (a, b) = (rng.vec(m * k), rng.vec(n * k));
    let ta = Tensor::from_slice(gpu, [m, k], &a).unwrap();
    let tb = Tensor::from_slice(gpu, [n, k], &b).unwrap();
    gpu.start_profiling().unwrap();
    let options = MatmulOptions {
        transpose_b: true,
        ..MatmulOptions::default()
    };
    let c = matmul(&ta, &tb, options).unwrap().to_vec().unwrap();
    let profile = pollster::block_on(gpu.finish_profiling()).unwrap();
    // The test context fills C with NaN before the product (a recorded copy, profiled too).
    let kernels: Vec<&str> = profile
        .kernels
        .iter()
        .map(|k| k.kernel.as_str())
        .filter(|&kernel| kernel != "poison_buffer")
        .collect();
    let want = match gpu.chooses_for_cpu() {
        true => "matmul::matmul_few_rows_nt",
        false => "matmul::matmul_few_rows_nt_workgroup",
    };
    assert_eq!(kernels, [want]);
    let reference = reference::matmul::matmul(&a, &b, 1, m, n, k, false, true, 0, 0);
    common::assert_close(want, &c, &reference, 1e-5, 1e-4);

    // A · B untransposed (Linear's input gradient): its few-rows kernel on CPU adapters only.
    let tb = Tensor::from_slice(gpu, [k, n], &b).unwrap();
    gpu.start_profiling().unwrap();
    let c = matmul(&ta, &tb, MatmulOptions::default())
        .unwrap()
        .to_vec()
        .unwrap();
    let profile = pollster::block_on(gpu.finish_profiling()).unwrap();
    let picked_few_rows = profile
        .kernels
        .iter()
        .any(|kernel| kernel.kernel == "matmul::matmul_few_rows_nn");
    assert_eq!(
        picked_few_rows,
        gpu.chooses_for_cpu(),
        "{:?}",
        profile.kernels
    );
    let reference = reference::matmul::matmul(&a, &b, 1, m, n, k, false, false, 0, 0);
    common::assert_close("A · B", &c, &reference, 1e-5, 1e-4);
}
