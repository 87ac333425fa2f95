//! The roofline as an SVG picture: on the left the roofs and each layer's kernels that count
//! FLOPs as a circle (log-log: FLOP/byte against GFLOP/s, area by its share of the time), on the
//! right the slowest kernels over all layers as bars of the fraction of their bound.
//! Hand-written SVG: a few shapes need no plotting library.

use std::fmt::Write;

use super::{Peaks, Placed};
use crate::gpu::Phase;

const WIDTH: f64 = 1120.0;
const HEIGHT: f64 = 480.0;
/// The roofline panel's plotting area.
const PLOT: Area = Area {
    left: 70.0,
    top: 40.0,
    right: 480.0,
    bottom: 400.0,
};
/// Where the bars start and how long 100% is.
const BARS_LEFT: f64 = 790.0;
const BAR_FULL: f64 = 150.0;
/// Bars shown, slowest kernels first.
const BARS: usize = 16;

struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

/// Decades spanned by the log axes: [10^low, 10^high].
struct LogAxis {
    low: i32,
    high: i32,
}

impl LogAxis {
    /// The decades around every value (positive, finite ones only).
    fn around(values: impl Iterator<Item = f64>) -> Self {
        let (low, high) = values
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
                (low.min(v), high.max(v))
            });
        Self {
            low: low.log10().floor() as i32,
            high: (high.log10().ceil() as i32).max(low.log10().floor() as i32 + 1),
        }
    }

    /// Where `value` falls between `from` (10^low) and `to` (10^high).
    fn place(&self, value: f64, from: f64, to: f64) -> f64 {
        let t = (value.log10() - f64::from(self.low)) / f64::from(self.high - self.low);
        from + t * (to - from)
    }
}

fn phase_colour(phase: Phase) -> &'static str {
    match phase {
        Phase::Forward => "#1f77b4",
        Phase::Backward => "#ff7f0e",
        Phase::Update => "#2ca02c",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// "1000", "10", "0.01": a decade's label.
fn decade(power: i32) -> String {
    let value = 10f64.powi(power);
    match power {
        0.. => format!("{value:.0}"),
        _ => format!("{value:.*}", (-power) as usize),
    }
}

/// The picture of a step under `peaks`: `layers` placed by layer (`place_layers`) as circles,
/// `kernels` placed over all layers (`place_kernels`, slowest first) as bars; `title` names the
/// model and workload.
pub fn svg(layers: &[Placed], kernels: &[Placed], peaks: &Peaks, title: &str) -> String {
    let total_ns: f64 = kernels.iter().map(|p| p.row.ns).sum::<f64>().max(1.0);
    // Slowest first, so that the small circles are drawn over the large ones.
    let mut with_flops: Vec<&Placed> = layers.iter().filter(|p| p.intensity.is_some()).collect();
    with_flops.sort_by(|a, b| b.row.ns.total_cmp(&a.row.ns));
    let achieved = |p: &Placed| p.row.gflops_per_s().unwrap_or(0.0);

    let x_axis = LogAxis::around(
        with_flops
            .iter()
            .filter_map(|p| p.intensity)
            .chain([peaks.ridge() / 16.0, peaks.ridge() * 16.0]),
    );
    let y_axis = LogAxis::around(
        with_flops
            .iter()
            .map(|p| achieved(p))
            .chain([peaks.gflops_per_s * 1.5, peaks.gflops_per_s / 1000.0]),
    );
    let x = |intensity: f64| x_axis.place(intensity, PLOT.left, PLOT.right);
    let y = |gflops: f64| y_axis.place(gflops, PLOT.bottom, PLOT.top);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" font-size="14">{}</text>"#,
        PLOT.left,
        escape(title)
    );

    // Axes and decade grid lines.
    for power in x_axis.low..=x_axis.high {
        let at = x(10f64.powi(power));
        let _ = writeln!(
            svg,
            r##"<line x1="{at:.1}" y1="{}" x2="{at:.1}" y2="{}" stroke="#ddd"/><text x="{at:.1}" y="{}" text-anchor="middle">{}</text>"##,
            PLOT.top,
            PLOT.bottom,
            PLOT.bottom + 15.0,
            decade(power)
        );
    }
    for power in y_axis.low..=y_axis.high {
        let at = y(10f64.powi(power));
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{at:.1}" x2="{}" y2="{at:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            PLOT.left,
            PLOT.right,
            PLOT.left - 5.0,
            at + 4.0,
            decade(power)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">arithmetic intensity (FLOP/byte)</text>"#,
        (PLOT.left + PLOT.right) / 2.0,
        PLOT.bottom + 35.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(20 {}) rotate(-90)" text-anchor="middle">GFLOP/s</text>"#,
        (PLOT.top + PLOT.bottom) / 2.0
    );

    // The roofs: bandwidth up to the ridge, then the arithmetic peak.
    let low_intensity = 10f64.powi(x_axis.low);
    let high_intensity = 10f64.powi(x_axis.high);
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="black" stroke-width="2" points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
        x(low_intensity),
        y(low_intensity * peaks.gbytes_per_s),
        x(peaks.ridge()),
        y(peaks.gflops_per_s),
        x(high_intensity),
        y(peaks.gflops_per_s)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.1} GFLOP/s, {:.1} GB/s</text>"#,
        PLOT.right,
        y(peaks.gflops_per_s) - 6.0,
        peaks.gflops_per_s,
        peaks.gbytes_per_s
    );

    // One circle per layer's kernel that counts FLOPs, area by its share of the time; the
    // layer and figures are its tooltip (labels would cover each other where layers cluster).
    for p in &with_flops {
        let (Some(intensity), gflops) = (p.intensity, achieved(p)) else {
            continue;
        };
        if gflops <= 0.0 {
            continue;
        }
        let radius = 3.0 + 25.0 * (p.row.ns / total_ns).sqrt();
        let (cx, cy) = (x(intensity), y(gflops));
        let _ = writeln!(
            svg,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{radius:.1}" fill="{}" fill-opacity="0.4" stroke="{}"><title>{} {} {}: {:.2} ms, {:.1} GFLOP/s, {:.2} FLOP/byte</title></circle>"#,
            phase_colour(p.row.phase),
            phase_colour(p.row.phase),
            p.row.phase.name(),
            escape(&p.row.layer),
            escape(&p.row.kernel),
            p.row.ns / 1e6,
            gflops,
            intensity
        );
    }

    // Bars: the slowest kernels, by the fraction of their bound.
    let bars_top = PLOT.top;
    let _ = writeln!(
        svg,
        r#"<text x="{BARS_LEFT}" y="{}" font-size="12">fraction of the bound (line: 100%)</text>"#,
        bars_top - 6.0
    );
    let step = (PLOT.bottom - bars_top) / BARS as f64;
    for (index, p) in kernels.iter().take(BARS).enumerate() {
        let top = bars_top + index as f64 * step;
        let length = BAR_FULL * p.fraction.clamp(0.0, 1.5);
        let bound = match p.intensity {
            Some(_) => p.limit.name(),
            None => "bandwidth",
        };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{} {} · {:.1} ms ({:.0}%)</text>"#,
            BARS_LEFT - 5.0,
            top + step * 0.6,
            p.row.phase.name(),
            escape(short_name(&p.row.kernel)),
            p.row.ns / 1e6,
            100.0 * p.row.ns / total_ns
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{BARS_LEFT}" y="{:.1}" width="{length:.1}" height="{:.1}" fill="{}"><title>{:.1}% of the {bound} bound</title></rect>"#,
            top + step * 0.15,
            step * 0.7,
            phase_colour(p.row.phase),
            100.0 * p.fraction
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10">{:.0}% {bound}</text>"#,
            BARS_LEFT + length + 4.0,
            top + step * 0.6,
            100.0 * p.fraction
        );
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="black" stroke-dasharray="3,3"/>"#,
        BARS_LEFT + BAR_FULL,
        bars_top,
        PLOT.bottom
    );

    // The legend.
    for (index, phase) in [Phase::Forward, Phase::Backward, Phase::Update]
        .into_iter()
        .enumerate()
    {
        let left = PLOT.left + 110.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{left}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            HEIGHT - 20.0,
            phase_colour(phase),
            left + 14.0,
            HEIGHT - 11.0,
            phase.name()
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="10">A convolution counts its direct algorithm's FLOPs: Winograd layers, doing fewer, can pass the roof. Bytes: each binding once.</text>"#,
        PLOT.left + 330.0,
        HEIGHT - 11.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The entry point of `shader::entry`, the part that tells kernels apart in a small space.
fn short_name(kernel: &str) -> &str {
    kernel.rsplit("::").next().unwrap_or(kernel)
}
