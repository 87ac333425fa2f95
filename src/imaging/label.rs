//! Short text labels drawn into RGB images (the method names over a saliency grid's tiles),
//! from a 5 × 7 pixel font of lowercase letters, digits and a little punctuation: a font
//! renderer would be a dependency for a dozen words.

/// Glyph rows, top to bottom; '#' is ink. Characters outside the font draw as blanks.
const FONT: &[(char, [&str; 7])] = &[
    (
        'a',
        [
            ".....", ".....", ".###.", "....#", ".####", "#...#", ".####",
        ],
    ),
    (
        'b',
        [
            "#....", "#....", "####.", "#...#", "#...#", "#...#", "####.",
        ],
    ),
    (
        'c',
        [
            ".....", ".....", ".###.", "#....", "#....", "#...#", ".###.",
        ],
    ),
    (
        'd',
        [
            "....#", "....#", ".####", "#...#", "#...#", "#...#", ".####",
        ],
    ),
    (
        'e',
        [
            ".....", ".....", ".###.", "#...#", "#####", "#....", ".###.",
        ],
    ),
    (
        'f',
        [
            "..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...",
        ],
    ),
    (
        'g',
        [
            ".....", ".####", "#...#", "#...#", ".####", "....#", ".###.",
        ],
    ),
    (
        'h',
        [
            "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'i',
        [
            "..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        'j',
        [
            "...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##..",
        ],
    ),
    (
        'k',
        [
            "#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.",
        ],
    ),
    (
        'l',
        [
            ".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        'm',
        [
            ".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#",
        ],
    ),
    (
        'n',
        [
            ".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'o',
        [
            ".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.",
        ],
    ),
    (
        'p',
        [
            ".....", ".....", "####.", "#...#", "####.", "#....", "#....",
        ],
    ),
    (
        'q',
        [
            ".....", ".....", ".####", "#...#", ".####", "....#", "....#",
        ],
    ),
    (
        'r',
        [
            ".....", ".....", "#.##.", "##..#", "#....", "#....", "#....",
        ],
    ),
    (
        's',
        [
            ".....", ".....", ".####", "#....", ".###.", "....#", "####.",
        ],
    ),
    (
        't',
        [
            ".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.",
        ],
    ),
    (
        'u',
        [
            ".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#",
        ],
    ),
    (
        'v',
        [
            ".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..",
        ],
    ),
    (
        'w',
        [
            ".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.",
        ],
    ),
    (
        'x',
        [
            ".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#",
        ],
    ),
    (
        'y',
        [
            ".....", ".....", "#...#", "#...#", ".####", "....#", ".###.",
        ],
    ),
    (
        'z',
        [
            ".....", ".....", "#####", "...#.", "..#..", ".#...", "#####",
        ],
    ),
    (
        '0',
        [
            ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.",
        ],
    ),
    (
        '1',
        [
            "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        '2',
        [
            ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####",
        ],
    ),
    (
        '3',
        [
            "#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.",
        ],
    ),
    (
        '4',
        [
            "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.",
        ],
    ),
    (
        '5',
        [
            "#####", "#....", "####.", "....#", "....#", "#...#", ".###.",
        ],
    ),
    (
        '6',
        [
            "..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '7',
        [
            "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...",
        ],
    ),
    (
        '8',
        [
            ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '9',
        [
            ".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..",
        ],
    ),
    (
        '-',
        [
            ".....", ".....", ".....", "#####", ".....", ".....", ".....",
        ],
    ),
    (
        '+',
        [
            ".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....",
        ],
    ),
    (
        '.',
        [
            ".....", ".....", ".....", ".....", ".....", ".##..", ".##..",
        ],
    ),
    (
        ':',
        [
            ".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....",
        ],
    ),
];

/// A glyph's width and height in font pixels, and the advance between glyphs.
pub const GLYPH: (usize, usize) = (5, 7);
const ADVANCE: usize = 6;

/// The width in image pixels of `text` drawn at `scale`.
pub fn label_width(text: &str, scale: usize) -> usize {
    text.chars().count() * ADVANCE * scale
}

/// Draws `text` into `pixels` (RGB, `width` wide) with its top-left corner at (x, y), each
/// font pixel a `scale` × `scale` square of `colour`; what falls outside the image is clipped.
pub fn draw_label(
    pixels: &mut [u8],
    width: usize,
    (x, y): (usize, usize),
    text: &str,
    scale: usize,
    colour: [u8; 3],
) {
    let height = pixels.len() / (3 * width);
    for (index, character) in text.chars().enumerate() {
        let Some((_, rows)) = FONT
            .iter()
            .find(|(c, _)| *c == character.to_ascii_lowercase())
        else {
            continue;
        };
        let left = x + index * ADVANCE * scale;
        for (row, line) in rows.iter().enumerate() {
            for (column, ink) in line.bytes().enumerate() {
                if ink != b'#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (left + column * scale + dx, y + row * scale + dy);
                        if px < width && py < height {
                            pixels[(py * width + px) * 3..][..3].copy_from_slice(&colour);
                        }
                    }
                }
            }
        }
    }
}

/// Tiles of one size (RGB, `tile` = (width, height)) laid out in rows of `columns`, each under
/// a strip with its label: (width, height, RGB) of the whole grid. Tiles narrower than
/// `MIN_TILE_WIDTH` are enlarged by a whole factor (nearest neighbour) so that a label of 21
/// characters fits; a longer one is cut at the tile's edge.
pub fn labelled_grid(
    tiles: &[(String, Vec<u8>)],
    (width, height): (usize, usize),
    columns: usize,
) -> (usize, usize, Vec<u8>) {
    let factor = MIN_TILE_WIDTH.div_ceil(width.max(1)).max(1);
    let enlarged: Vec<(String, Vec<u8>)> = tiles
        .iter()
        .map(|(label, rgb)| (label.clone(), enlarge(rgb, width, height, factor)))
        .collect();
    grid_of(&enlarged, (width * factor, height * factor), columns)
}

/// Labels of up to 21 characters fit a tile of this width at the font's own size.
const MIN_TILE_WIDTH: usize = 128;

/// `rgb` (width × height) with each pixel repeated `factor` × `factor` times.
fn enlarge(rgb: &[u8], width: usize, height: usize, factor: usize) -> Vec<u8> {
    if factor == 1 {
        return rgb.to_vec();
    }
    let mut out = Vec::with_capacity(rgb.len() * factor * factor);
    for y in 0..height * factor {
        for x in 0..width * factor {
            let source = ((y / factor) * width + x / factor) * 3;
            out.extend_from_slice(&rgb[source..source + 3]);
        }
    }
    out
}

fn grid_of(
    tiles: &[(String, Vec<u8>)],
    (tile_width, tile_height): (usize, usize),
    columns: usize,
) -> (usize, usize, Vec<u8>) {
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns);
    // Labels at twice the font's size where tiles are wide enough for names of ~20 letters.
    let scale = if tile_width >= 240 { 2 } else { 1 };
    let strip = (GLYPH.1 + 4) * scale;
    let (width, cell_height) = (columns * tile_width, strip + tile_height);
    let height = rows * cell_height;
    let mut pixels = vec![24u8; width * height * 3];
    for (index, (label, rgb)) in tiles.iter().enumerate() {
        let (left, top) = (
            (index % columns) * tile_width,
            (index / columns) * cell_height,
        );
        let fits = (tile_width - 2 * scale) / (ADVANCE * scale);
        let label: String = label.chars().take(fits).collect();
        draw_label(
            &mut pixels,
            width,
            (left + 2 * scale, top + 2 * scale),
            &label,
            scale,
            [255; 3],
        );
        for row in 0..tile_height {
            let source = &rgb[row * tile_width * 3..(row + 1) * tile_width * 3];
            let start = ((top + strip + row) * width + left) * 3;
            pixels[start..start + tile_width * 3].copy_from_slice(source);
        }
    }
    (width, height, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_five_by_seven_and_drawn_where_asked() {
        for (character, rows) in FONT {
            assert!(
                rows.iter().all(|r| r.len() == GLYPH.0),
                "{character}: a row is not 5 wide"
            );
            assert!(rows.iter().any(|r| r.contains('#')), "{character}: empty");
        }
        let (width, height) = (20, 10);
        let mut pixels = vec![0u8; width * height * 3];
        draw_label(&mut pixels, width, (1, 2), "-", 1, [255, 0, 0]);
        // '-' is row 3 of the glyph, columns 0..5: pixels (1..6, 5).
        let lit: Vec<(usize, usize)> = (0..width * height)
            .filter(|&p| pixels[p * 3] == 255)
            .map(|p| (p % width, p / width))
            .collect();
        assert_eq!(lit, (1..6).map(|x| (x, 5)).collect::<Vec<_>>());
        assert_eq!(label_width("grad", 2), 48);
    }
}
