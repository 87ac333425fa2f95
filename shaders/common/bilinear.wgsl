
// common/bilinear.wgsl — bilinear resampling at pixel centres (align_corners = false, as
// torch's F.interpolate), appended by src/shaders/mod.rs to the shaders that resize maps.

// The input index below output index o on an axis scaled by in/out, the next one, and the
// next one's weight.
struct Source {
    low: u32,
    high: u32,
    weight: f32,
}

fn bilinear_source(o: u32, size_in: u32, size_out: u32) -> Source {
    let s = max((f32(o) + 0.5) * (f32(size_in) / f32(size_out)) - 0.5, 0.0);
    let low = min(u32(floor(s)), size_in - 1u);
    return Source(low, min(low + 1u, size_in - 1u), s - f32(low));
}
