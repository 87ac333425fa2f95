
// common/counter_rng.wgsl — a counter-based normal generator, appended by src/shaders/mod.rs
// to the shaders that draw noise. Each normal comes from two 32-bit hashes of (seed, sample,
// element, stream) (Wellons' "lowbias32" chained over the words), turned into uniforms in
// (0, 1) from their top 24 bits and into a normal by Box–Muller. A value depends only on its
// counters, not on the batch or the dispatch order, so a run is reproducible on any adapter up
// to the last bits of log and cos. The host's twin is src/reference/attribution.rs.

fn lowbias32(value: u32) -> u32 {
    var h = value;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// A uniform in (0, 1) from the counters (seed = its low then high 32 bits): never 0, so that
// log() is finite.
fn unit_uniform(seed: vec2<u32>, sample: u32, element: u32, stream: u32) -> f32 {
    var h = lowbias32(seed.y ^ (stream * 0x9e3779b9u));
    h = lowbias32(seed.x ^ h);
    h = lowbias32(sample ^ h);
    h = lowbias32(element ^ h);
    return (f32(h >> 8u) + 0.5) / 16777216.0;
}

fn standard_normal(seed: vec2<u32>, sample: u32, element: u32) -> f32 {
    let radius = sqrt(-2.0 * log(unit_uniform(seed, sample, element, 0u)));
    return radius * cos(6.2831853071795862 * unit_uniform(seed, sample, element, 1u));
}
