//! Text detection: the page resized for the DB (differentiable binarization) network, and its
//! probability map turned into text-line rectangles (threshold, connected regions, minimum-area
//! rectangle, box score, unclip).

use image::RgbImage;

use crate::geometry::{min_area_rect, Point, RotatedRect};

/// The share of the unclip offset applied along a line (see [`unclip`]).
const ALONG_TEXT: f32 = 0.6;

/// Settings of detection post-processing (PaddleOCR's defaults for PP-OCR).
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// A probability above this is text.
    pub thresh: f32,
    /// A region whose mean probability inside its rectangle is below this is dropped.
    pub box_thresh: f32,
    /// How far a shrunk text kernel is grown back: area × ratio / perimeter on each side.
    pub unclip_ratio: f32,
    /// Regions whose shorter side is below this (map pixels) are noise.
    pub min_size: f32,
    /// At most this many text boxes are kept (noise regions that are dropped do not count);
    /// a page with more is read up to them and says so ([`crate::Page::cut_off`]).
    pub max_candidates: usize,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            min_size: 3.0,
            max_candidates: 1000,
        }
    }
}

/// The most pixels a detection input may hold, whatever the options say: 2048² bounds the
/// input tensor at 48 MiB and the network's feature maps at a few hundred MiB.
pub const MAX_INPUT_PIXELS: u64 = 2048 * 2048;

/// The network's input size for an image `w` × `h`: the longer side brought down to `max_side`
/// (never up), the shorter grown towards `min_side` only as far as the longer side's limit
/// allows, the whole held to [`MAX_INPUT_PIXELS`], both rounded to multiples of 32 (at least
/// 32). A strip 60000 × 1 or a one-line screenshot 2000 × 60 so stays near its own size
/// instead of being blown up by its short side.
pub fn input_size(w: u32, h: u32, max_side: u32, min_side: u32) -> (u32, u32) {
    // In f64: every u32 is exact, and no product of two can overflow.
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let (long, short) = (w.max(h), w.min(h));
    let max_side = f64::from(max_side.max(1));
    let long_limit = (max_side / long).min(1.0);
    let mut scale = long_limit;
    if short * scale < f64::from(min_side) {
        scale = (f64::from(min_side) / short)
            .min(max_side / long)
            .max(long_limit);
    }
    let cap = MAX_INPUT_PIXELS as f64;
    let area = w * scale * h * scale;
    if area > cap {
        scale *= (cap / area).sqrt();
    }
    let steps_max = f64::from((MAX_INPUT_PIXELS / 32 / 32) as u32);
    let round32 = |v: f64| ((v * scale / 32.0).round().clamp(1.0, steps_max) as u32) * 32;
    let (mut iw, mut ih) = (round32(w), round32(h));
    // Rounding up can pass the cap by a row of 32: trim the longer side to fit.
    let fit = |other: u32| ((MAX_INPUT_PIXELS / u64::from(other)) / 32 * 32).max(32) as u32;
    if u64::from(iw) * u64::from(ih) > MAX_INPUT_PIXELS {
        if iw >= ih {
            iw = fit(ih);
        } else {
            ih = fit(iw);
        }
    }
    (iw, ih)
}

/// The image as the network wants it: resized to `w` × `h`, channels in BGR order (the models
/// were trained on OpenCV's images), scaled to -1..1, CHW.
pub fn to_input(img: &RgbImage, w: u32, h: u32) -> Vec<f32> {
    let resized = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
    // usize from each side first: `w * h` in u32 wraps past 4 G pixels.
    let plane = w as usize * h as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in resized.pixels().enumerate() {
        for c in 0..3 {
            // BGR: plane 0 is blue.
            out[(2 - c) * plane + i] = px[c] as f32 / 127.5 - 1.0;
        }
    }
    out
}

/// Box scoring may visit at most this many map pixels per pixel of the map: the labelling is
/// linear in the map, but each region is scored over its bounding box, and many long diagonal
/// regions could otherwise cost the map's area each.
const SCORE_WORK_PER_PIXEL: usize = 16;

/// What detection found in one map.
#[derive(Debug)]
pub struct Detected {
    /// Text regions as rectangles in map coordinates, with their box scores.
    pub boxes: Vec<(RotatedRect, f32)>,
    /// Whether detection stopped before the end of the map (more boxes than
    /// [`DetectOptions::max_candidates`], or the scoring budget spent): text below the last
    /// box may be missing.
    pub cut_off: bool,
}

/// Text regions in the probability map `prob` (`w` × `h`, row-major).
pub fn boxes_from_map(prob: &[f32], w: usize, h: usize, opts: &DetectOptions) -> Detected {
    // Threshold, then dilate by a 2 × 2 square (PaddleOCR's `use_dilation`), which joins the
    // kernels of letters that the shrunk map left a pixel apart.
    let mut mask = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let on = |xx: usize, yy: usize| prob[yy * w + xx] > opts.thresh;
            mask[y * w + x] = on(x, y)
                || (x > 0 && on(x - 1, y))
                || (y > 0 && on(x, y - 1))
                || (x > 0 && y > 0 && on(x - 1, y - 1));
        }
    }
    let mut label = vec![0u32; w * h];
    let mut next = 0u32;
    let mut out = Vec::new();
    let mut stack = Vec::new();
    let mut cut_off = false;
    let mut score_budget = (w * h).saturating_mul(SCORE_WORK_PER_PIXEL);
    for start in 0..w * h {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        // Only kept boxes count: a field of specks (dust, halftone) above the text must not
        // use the limit up before the text is reached.
        if out.len() >= opts.max_candidates {
            cut_off = true;
            break;
        }
        next += 1;
        // Flood fill (8-connected), keeping each row's leftmost and rightmost pixel: the hull,
        // and so the minimum-area rectangle, depends only on those.
        let mut rows: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        label[start] = next;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let e = rows.entry(y).or_insert((x, x));
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
        }
        let mut pts = Vec::with_capacity(rows.len() * 4);
        for (&y, &(x0, x1)) in &rows {
            // Pixel squares' corners, so a one-pixel-high region still has an area.
            for x in [x0 as f32, x1 as f32 + 1.0] {
                pts.push(Point { x, y: y as f32 });
                pts.push(Point {
                    x,
                    y: y as f32 + 1.0,
                });
            }
        }
        let Some(rect) = min_area_rect(pts) else {
            continue;
        };
        if rect.width.min(rect.height) < opts.min_size {
            continue;
        }
        let b = rect.bounds();
        let work = ((b.x1 - b.x0).max(0.0) as usize + 1) * ((b.y1 - b.y0).max(0.0) as usize + 1);
        if work > score_budget {
            cut_off = true;
            break;
        }
        score_budget -= work;
        let score = box_score(prob, w, h, &rect);
        if score < opts.box_thresh {
            continue;
        }
        let grown = unclip(&rect, opts.unclip_ratio);
        if grown.width.min(grown.height) < opts.min_size + 2.0 {
            continue;
        }
        out.push((grown, score));
    }
    Detected {
        boxes: out,
        cut_off,
    }
}

/// The mean probability inside `rect`.
fn box_score(prob: &[f32], w: usize, h: usize, rect: &RotatedRect) -> f32 {
    let b = rect.bounds();
    let x0 = b.x0.floor().max(0.0) as usize;
    let y0 = b.y0.floor().max(0.0) as usize;
    let x1 = (b.x1.ceil() as usize).min(w);
    let y1 = (b.y1.ceil() as usize).min(h);
    let (mut sum, mut n) = (0.0f64, 0usize);
    for y in y0..y1 {
        for x in x0..x1 {
            let centre = Point {
                x: x as f32 + 0.5,
                y: y as f32 + 0.5,
            };
            if rect.contains(centre) {
                sum += prob[y * w + x] as f64;
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

/// Grows the shrunk text kernel back to the text's extent: DB shrank each training polygon by
/// `area × (1 − r²) / perimeter`; the offset `area × ratio / perimeter` on every side undoes it.
/// For a rectangle, offsetting its outline gives a rectangle (up to the rounded corners, which
/// the minimum-area rectangle of the offset outline discards anyway).
///
/// Along the text the offset is cut to [`ALONG_TEXT`] of it: the full offset overshoots the
/// shrink by about 0.4 line heights at each end, which across a narrow gutter (0.6 cm in a
/// two-column paper, under a line height at 300 dpi) takes the neighbouring column's first
/// letter into the line. Across the text the overshoot is kept: it holds ascenders and
/// descenders.
fn unclip(rect: &RotatedRect, ratio: f32) -> RotatedRect {
    let area = rect.width * rect.height;
    let perimeter = 2.0 * (rect.width + rect.height);
    let d = if perimeter > 0.0 {
        area * ratio / perimeter
    } else {
        0.0
    };
    let (dw, dh) = if rect.width >= rect.height {
        (d * ALONG_TEXT, d)
    } else {
        (d, d * ALONG_TEXT)
    };
    RotatedRect {
        width: rect.width + 2.0 * dw,
        height: rect.height + 2.0 * dh,
        ..*rect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_size_shrinks_long_pages_and_rounds_to_32() {
        assert_eq!(input_size(2550, 3300, 2000, 736), (1536, 2016));
        assert_eq!(input_size(1000, 800, 2000, 736), (992, 800));
        // Grown only until the long side meets its limit: 5×, not the 7.36× the short side
        // alone asks for.
        assert_eq!(input_size(400, 100, 2000, 736), (2016, 512));
    }

    #[test]
    fn extreme_aspect_ratios_give_a_bounded_input() {
        // A one-line screenshot stays its own size, not 24,544 × 736.
        assert_eq!(input_size(2000, 60, 2000, 736), (2016, 64));
        for (w, h) in [
            (60_000, 1),
            (1, 60_000),
            (u32::MAX, 1),
            (1, u32::MAX),
            (u32::MAX, u32::MAX),
            (0, 0),
        ] {
            for (max_side, min_side) in [(2000, 736), (u32::MAX, u32::MAX), (1, 1)] {
                let (iw, ih) = input_size(w, h, max_side, min_side);
                assert!(iw >= 32 && ih >= 32, "{w}×{h} → {iw}×{ih}");
                assert!(
                    iw as u64 * ih as u64 <= MAX_INPUT_PIXELS,
                    "{w}×{h} (max {max_side}, min {min_side}) → {iw}×{ih}"
                );
                assert!(iw % 32 == 0 && ih % 32 == 0, "{iw}×{ih}");
            }
        }
        // The long side keeps its limit even when the short side is far below its minimum.
        assert_eq!(input_size(60_000, 1, 2000, 736), (2016, 32));
        assert_eq!(input_size(1, 60_000, 2000, 736), (32, 2016));
    }

    #[test]
    fn one_bright_bar_becomes_one_grown_box() {
        let (w, h) = (100, 40);
        let mut prob = vec![0.0f32; w * h];
        for y in 15..25 {
            for x in 10..90 {
                prob[y * w + x] = 0.9;
            }
        }
        let found = boxes_from_map(&prob, w, h, &DetectOptions::default());
        assert!(!found.cut_off);
        let boxes = found.boxes;
        assert_eq!(boxes.len(), 1);
        let (r, score) = boxes[0];
        assert!(score > 0.8, "{score}");
        // The dilated kernel is 81 × 11; unclip adds 81·11·1.6 / 184 ≈ 7.7 on each side, 0.6 of
        // that at the ends.
        assert!((r.width - (81.0 + 2.0 * 0.6 * 7.75)).abs() < 0.5, "{r:?}");
        assert!((r.height - (11.0 + 2.0 * 7.75)).abs() < 0.5, "{r:?}");
    }

    /// A map with `bars` text bars under a field of more than a thousand noise specks.
    fn specks_then_bars(bars: usize) -> (Vec<f32>, usize, usize) {
        let (w, h) = (200, 70 + 20 * bars);
        let mut prob = vec![0.0f32; w * h];
        // Single pixels three apart: apart even after the 2 × 2 dilation, each too small to
        // be a box.
        for y in (0..60).step_by(3) {
            for x in (0..198).step_by(3) {
                prob[y * w + x] = 0.9;
            }
        }
        for b in 0..bars {
            for y in 70 + 20 * b..80 + 20 * b {
                for x in 10..190 {
                    prob[y * w + x] = 0.9;
                }
            }
        }
        (prob, w, h)
    }

    #[test]
    fn noise_specks_above_the_text_do_not_use_up_the_candidates() {
        let (prob, w, h) = specks_then_bars(1);
        let found = boxes_from_map(&prob, w, h, &DetectOptions::default());
        assert_eq!(found.boxes.len(), 1, "{found:?}");
        assert!(!found.cut_off);
    }

    #[test]
    fn a_page_with_more_boxes_than_the_limit_says_it_was_cut_off() {
        let (prob, w, h) = specks_then_bars(3);
        let opts = DetectOptions {
            max_candidates: 2,
            ..Default::default()
        };
        let found = boxes_from_map(&prob, w, h, &opts);
        assert_eq!(found.boxes.len(), 2, "{found:?}");
        assert!(found.cut_off);
        // Exactly at the limit nothing is cut off.
        let opts = DetectOptions {
            max_candidates: 3,
            ..Default::default()
        };
        let found = boxes_from_map(&prob, w, h, &opts);
        assert_eq!(found.boxes.len(), 3, "{found:?}");
        assert!(!found.cut_off);
    }
}
