//! Line plots of curves as one SVG of side-by-side panels: `evaluate-saliency`'s deletion,
//! insertion, ROAD and randomisation curves, one line per method in the same colour in every
//! panel.

use std::fmt::Write;

/// Ten colours told apart by most readers (Tableau 10), cycled past the tenth method.
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const PANEL_WIDTH: f32 = 320.0;
const PANEL_HEIGHT: f32 = 240.0;
const MARGIN: f32 = 48.0;
const COLUMNS: usize = 3;

pub struct Series {
    pub name: String,
    /// An index into the palette.
    pub colour: usize,
    pub points: Vec<(f32, f32)>,
}

pub struct Panel {
    title: String,
    x_label: String,
    y_label: String,
    pub series: Vec<Series>,
}

impl Panel {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            series: Vec::new(),
        }
    }
}

/// The panels in rows of three, each with its axes scaled to its points (y from
/// min(0, lowest) to max(1, highest)), and a legend of the first panel's series.
pub fn curves_svg(panels: &[Panel]) -> String {
    let rows = panels.len().div_ceil(COLUMNS);
    let (cell_w, cell_h) = (PANEL_WIDTH + 2.0 * MARGIN, PANEL_HEIGHT + 2.0 * MARGIN);
    let legend_height = 20.0 * panels.first().map_or(0, |p| p.series.len()) as f32 + 20.0;
    let (width, height) = (
        cell_w * COLUMNS as f32,
        cell_h * rows as f32 + legend_height,
    );
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, panel) in panels.iter().enumerate() {
        let left = (i % COLUMNS) as f32 * cell_w + MARGIN;
        let top = (i / COLUMNS) as f32 * cell_h + MARGIN;
        draw_panel(&mut svg, panel, left, top);
    }
    if let Some(first) = panels.first() {
        for (k, series) in first.series.iter().enumerate() {
            let y = cell_h * rows as f32 + 14.0 + 20.0 * k as f32;
            let colour = COLOURS[series.colour % COLOURS.len()];
            let _ = writeln!(
                svg,
                "<line x1=\"{MARGIN}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text>",
                MARGIN + 24.0,
                MARGIN + 30.0,
                y + 4.0,
                escape(&series.name)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(svg: &mut String, panel: &Panel, left: f32, top: f32) {
    let points = || panel.series.iter().flat_map(|s| s.points.iter().copied());
    let x_low = points().map(|p| p.0).fold(f32::INFINITY, f32::min);
    let x_high = points().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max);
    let y_low = points().map(|p| p.1).fold(0.0, f32::min);
    let y_high = points().map(|p| p.1).fold(1.0, f32::max);
    let (x_low, x_high) = if x_low < x_high {
        (x_low, x_high)
    } else {
        (0.0, 1.0)
    };
    let x = |v: f32| left + (v - x_low) / (x_high - x_low) * PANEL_WIDTH;
    let y = |v: f32| top + PANEL_HEIGHT - (v - y_low) / (y_high - y_low) * PANEL_HEIGHT;
    let _ = writeln!(
        svg,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{PANEL_WIDTH}\" height=\"{PANEL_HEIGHT}\" fill=\"none\" stroke=\"#888\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        left + PANEL_WIDTH / 2.0,
        top - 10.0,
        escape(&panel.title),
        left + PANEL_WIDTH / 2.0,
        top + PANEL_HEIGHT + 34.0,
        escape(&panel.x_label),
        left - 34.0,
        top + PANEL_HEIGHT / 2.0,
        escape(&panel.y_label),
    );
    for (value, anchor_x, anchor_y, anchor) in [
        (x_low, x(x_low), top + PANEL_HEIGHT + 16.0, "start"),
        (x_high, x(x_high), top + PANEL_HEIGHT + 16.0, "end"),
    ] {
        let _ = writeln!(
            svg,
            "<text x=\"{anchor_x}\" y=\"{anchor_y}\" text-anchor=\"{anchor}\">{}</text>",
            tick(value)
        );
    }
    for value in [y_low, y_high] {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            y(value) + 4.0,
            tick(value)
        );
    }
    for series in &panel.series {
        let path: Vec<String> = series
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            path.join(" "),
            COLOURS[series.colour % COLOURS.len()]
        );
    }
}

fn tick(value: f32) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
