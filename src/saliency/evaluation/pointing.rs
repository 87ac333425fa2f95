//! The pointing game (Zhang et al. 2016) and its energy-based form (Wang et al. 2020,
//! Score-CAM's evaluation): does the map put its peak, or its mass, on the object (here, the
//! lesion's mask)?

/// Whether the map's maximum lies within `tolerance` pixels (Euclidean) of a mask pixel (the
/// lesion). `map` and `mask` are one image's [H, W]; mask pixels are those > 0.5. Where the
/// maximum is a plateau (a perturbation mask clamped at 0 over a region), the point is the
/// plateau's pixel nearest its centroid, not its first pixel in scan order.
pub fn pointing_game_hit(map: &[f32], mask: &[f32], width: usize, tolerance: f32) -> bool {
    let peak = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !peak.is_finite() || width == 0 {
        return false;
    }
    let position = |i: usize| ((i / width) as f32, (i % width) as f32);
    let plateau: Vec<usize> = (0..map.len()).filter(|&i| map[i] == peak).collect();
    let count = plateau.len() as f32;
    let (cy, cx) = plateau.iter().fold((0.0, 0.0), |(sy, sx), &i| {
        let (y, x) = position(i);
        (sy + y / count, sx + x / count)
    });
    let distance =
        |(y, x): (f32, f32), (py, px): (f32, f32)| ((y - py).powi(2) + (x - px).powi(2)).sqrt();
    let point = plateau
        .iter()
        .map(|&i| position(i))
        .min_by(|&a, &b| distance(a, (cy, cx)).total_cmp(&distance(b, (cy, cx))))
        .expect("the peak is attained");
    mask.iter()
        .enumerate()
        .any(|(i, &m)| m > 0.5 && distance(position(i), point) <= tolerance)
}

/// The energy-based pointing game of one image's map: the share of the map's positive mass
/// that falls on the mask (pixels > 0.5), Σ_mask max(map, 0) / Σ max(map, 0); 0 for a map
/// with no positive value. `map` and `mask` are one image's [H, W]. Unlike the pointing game
/// it rewards a map for how much of its attention, not only its peak, lies on the object.
pub fn energy_pointing_game(map: &[f32], mask: &[f32]) -> f32 {
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for (&value, &m) in map.iter().zip(mask) {
        let energy = f64::from(value.max(0.0));
        total += energy;
        if m > 0.5 {
            inside += energy;
        }
    }
    if total > 0.0 {
        (inside / total) as f32
    } else {
        0.0
    }
}
