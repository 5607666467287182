//! Reading text from page images, offline: PaddleOCR's PP-OCR networks (detection, line
//! orientation, recognition) run on rten, a pure-Rust ONNX runtime; everything around them is
//! here: detection post-processing, line crops at any angle, upright correction, CTC decoding
//! with the dictionary from the recognition network's metadata, and a reading order that reads
//! a multi-column page column by column.
//!
//! ```no_run
//! # fn main() -> Result<(), hearth_ocr::Error> {
//! let home = hearth_fetch::Home::from_env()?;
//! let ocr = hearth_ocr::Ocr::load(&hearth_ocr::ensure_models(&home, &hearth_fetch::Lines)?)?;
//! let bytes = std::fs::read("scan.jpg").unwrap();
//! let image = hearth_ocr::decode_image(&bytes, hearth_ocr::DEFAULT_MAX_PIXELS)?;
//! println!("{}", ocr.read_image(&image)?.text_in_reading_order);
//! # Ok(()) }
//! ```

mod decode;
mod detect;
mod fetch;
pub mod geometry;
pub mod order;
mod recognize;
pub mod score;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use rten::{Model, RunOptions, ThreadPool, Value};

pub use decode::{decode_image, DEFAULT_MAX_PIXELS};
pub use detect::DetectOptions;
pub use fetch::{ensure_models, models_dir, test_models, PACKAGE, VERSION};
pub use geometry::{Point, Rect, RotatedRect};

use recognize::LINE_HEIGHT;

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not load the OCR network {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("the OCR network {network} failed: {message}")]
    Run {
        network: &'static str,
        message: String,
    },
    #[error("the recognition network's dictionary: {0}")]
    Dictionary(String),
    #[error("{0}")]
    UnsupportedImage(String),
    #[error("the image could not be read: {0}")]
    Image(String),
    #[error(
        "the image is {width} × {height} pixels, more than the {max} pixels Hearth reads \
         (scan at 300 dpi, or shrink the photo)"
    )]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error(transparent)]
    Fetch(#[from] hearth_fetch::Error),
    #[error("{0}")]
    Io(String),
}

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct Options {
    /// The page is shrunk so its longer side is at most this for detection (text of a 300-dpi
    /// page stays well above the network's smallest readable size).
    pub det_max_side: u32,
    /// ... and its shorter side grown towards this, but never so far that the longer side
    /// passes `det_max_side` (a long thin strip is not blown up by its short side).
    pub det_min_side: u32,
    pub detect: DetectOptions,
    /// Lines recognised with a mean character probability below this are dropped as noise.
    pub min_confidence: f32,
    /// Threads for the networks: `None` uses rten's pool (one per physical core).
    pub threads: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            det_max_side: 2000,
            det_min_side: 736,
            detect: DetectOptions::default(),
            min_confidence: 0.5,
            threads: None,
        }
    }
}

/// One text line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub text: String,
    /// The line's axis-aligned box in the upright page (see [`Page::rotation`]), in pixels.
    pub bbox: Rect,
    /// The line's rectangle at its own angle, corners top-left, top-right, bottom-right,
    /// bottom-left as the text reads, same coordinates as `bbox`.
    pub quad: [Point; 4],
    /// Mean probability of the line's characters (0..1).
    pub confidence: f32,
}

/// What was read from one page image.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Lines in reading order.
    pub lines: Vec<Line>,
    /// The text in reading order, a line per row (lines side by side on one row joined by a
    /// space).
    pub text_in_reading_order: String,
    /// How far the decoded image was turned clockwise (0, 90, 180 or 270 degrees) to stand the
    /// page upright; boxes are in the turned image's pixels.
    pub rotation: u16,
    /// The upright page's size in pixels.
    pub width: u32,
    pub height: u32,
    /// The page held more text boxes than [`DetectOptions::max_candidates`] (or regions too
    /// costly to score), so detection stopped early: text below the last line read may be
    /// missing, and whoever shows the text should say so.
    pub cut_off: bool,
}

/// The loaded networks.
pub struct Ocr {
    det: Model,
    cls: Model,
    rec: Model,
    charset: Vec<String>,
    opts: Options,
    pool: Option<Arc<ThreadPool>>,
}

/// Lines in a batch through the recognition and orientation networks.
const BATCH: usize = 8;
/// Lines the orientation vote looks at.
const CLS_SAMPLE: usize = 16;
/// Width of the orientation network's input.
const CLS_WIDTH: u32 = 192;
/// Narrowest recognition input; shorter lines are padded to it. PaddleOCR pads to 320: 160
/// reads the bench pages word for word the same, and a short line costs half as much.
const REC_MIN_WIDTH: u32 = 160;
/// Widest line image: a line longer than 100 heights is squeezed rather than grown without end.
const REC_MAX_WIDTH: u32 = LINE_HEIGHT * 100;

fn load_model(dir: &Path, name: &str) -> Result<Model, Error> {
    let path = dir.join(name);
    Model::load_file(&path).map_err(|e| Error::Load {
        path,
        message: e.to_string(),
    })
}

impl Ocr {
    /// Loads the networks from a models directory (see [`ensure_models`]).
    pub fn load(dir: &Path) -> Result<Ocr, Error> {
        Ocr::load_with(dir, Options::default())
    }

    pub fn load_with(dir: &Path, opts: Options) -> Result<Ocr, Error> {
        let det = load_model(dir, fetch::DET)?;
        let cls = load_model(dir, fetch::CLS)?;
        let rec = load_model(dir, fetch::REC)?;
        let dictionary = rec.metadata().get("character").ok_or_else(|| {
            Error::Dictionary("the network's metadata has no `character` entry".into())
        })?;
        let classes = rec
            .node_info(rec.output_ids()[0])
            .and_then(|info| info.shape())
            .and_then(|shape| match shape.last() {
                Some(rten::Dimension::Fixed(n)) => Some(*n),
                _ => None,
            })
            .ok_or_else(|| Error::Dictionary("the network's class count is not fixed".into()))?;
        let charset = recognize::charset(dictionary, classes).map_err(Error::Dictionary)?;
        let pool = opts
            .threads
            .map(|n| Arc::new(ThreadPool::with_num_threads(n.max(1))));
        Ok(Ocr {
            det,
            cls,
            rec,
            charset,
            opts,
            pool,
        })
    }

    fn run(&self, model: &Model, network: &'static str, input: Value) -> Result<Value, Error> {
        let mut opts = RunOptions::default();
        opts.thread_pool = self.pool.clone();
        model
            .run_one(input.into(), Some(opts))
            .map_err(|e| Error::Run {
                network,
                message: e.to_string(),
            })
    }

    /// Text-line rectangles of `img`, in its pixels, and whether detection was cut off before
    /// the end of the image.
    fn detect(&self, img: &RgbImage) -> Result<(Vec<RotatedRect>, bool), Error> {
        let (w, h) = detect::input_size(
            img.width(),
            img.height(),
            self.opts.det_max_side,
            self.opts.det_min_side,
        );
        let input = detect::to_input(img, w, h);
        let input = Value::from_shape([1, 3, h as usize, w as usize], input)
            .map_err(|e| run_err("detection", e))?;
        let out = self.run(&self.det, "detection", input)?;
        let (shape, prob) = out
            .into_shape_vec::<f32, 4>()
            .map_err(|e| run_err("detection", e))?;
        let (mh, mw) = (shape[2], shape[3]);
        let (sx, sy) = (
            img.width() as f32 / mw as f32,
            img.height() as f32 / mh as f32,
        );
        let found = detect::boxes_from_map(&prob, mw, mh, &self.opts.detect);
        let rects = found
            .boxes
            .into_iter()
            .map(|(r, _)| scale_rect(r, sx, sy))
            .collect();
        Ok((rects, found.cut_off))
    }

    /// Reads one page image.
    pub fn read_image(&self, img: &RgbImage) -> Result<Page, Error> {
        let (mut rects, mut cut_off) = self.detect(img)?;
        // A photo taken sideways: most lines stand upright. Turn the page a quarter and detect
        // again, so lines and columns are found in the page's own frame; whether it was a
        // quarter turn the other way shows below as lines that read upside down.
        let tall = |r: &RotatedRect| r.height >= 1.5 * r.width;
        let turned;
        let page: &RgbImage =
            if rects.len() >= 3 && rects.iter().filter(|r| tall(r)).count() * 2 > rects.len() {
                turned = image::imageops::rotate90(img);
                (rects, cut_off) = self.detect(&turned)?;
                &turned
            } else {
                img
            };
        let mut rotation: u16 = if std::ptr::eq(page, img) { 0 } else { 90 };

        let mut plans: Vec<LinePlan> = rects.iter().map(plan_line).collect();
        // Upside down is decided for the page, by the orientation network's vote over its
        // longest lines: alone, it misjudges a few lines of a page (bold runs, short words),
        // and one line read upside down is garbage.
        let upside_down = self.page_upside_down(page, &plans)?;
        let (pw, ph) = (page.width() as f32, page.height() as f32);
        if upside_down {
            rotation += 180;
            for plan in plans.iter_mut() {
                // Corners in reading order, then into the turned page's frame.
                plan.quad.rotate_left(2);
                plan.quad = plan.quad.map(|p| Point {
                    x: pw - p.x,
                    y: ph - p.y,
                });
            }
        }
        let widths: Vec<u32> = plans.iter().map(|p| p.out_w).collect();
        let texts = in_batches(
            &widths,
            |i| {
                let mut img = plans[i].crop(page);
                if upside_down {
                    image::imageops::rotate180_in_place(&mut img);
                }
                img
            },
            |imgs| self.recognize_batch(imgs),
        )?;
        let mut lines = Vec::new();
        for (plan, (decoded, step_px)) in plans.into_iter().zip(texts) {
            let (quad, line_w) = (plan.quad, plan.out_w as f32);
            if decoded.confidence < self.opts.min_confidence {
                continue;
            }
            // Cut where the line holds a gap of a line height or more (two columns' lines
            // joined across a narrow gutter); each piece keeps its share of the box.
            let min_gap = (LINE_HEIGHT as f32 / step_px).ceil().max(1.0) as usize;
            let mut cuts: Vec<(usize, f32)> = recognize::wide_gaps(&decoded, min_gap)
                .into_iter()
                .map(|(at, step)| (at, (step as f32 + 0.5) * step_px / line_w))
                .collect();
            cuts.push((decoded.text.len(), 1.0));
            let (mut from, mut f0) = (0usize, 0.0f32);
            let frac = |step: usize| step as f32 * step_px / line_w;
            for (to, f1) in cuts {
                let text = decoded.text[from..to].trim();
                // The box is narrowed to the characters read: detection's box can reach into
                // the gutter, and columns are told apart by the gaps between boxes.
                let read: Vec<usize> = decoded
                    .steps
                    .iter()
                    .filter(|&&(at, _)| {
                        at >= from && at < to && !decoded.text[at..].starts_with(' ')
                    })
                    .map(|&(_, step)| step)
                    .collect();
                if let (false, Some(&first), Some(&last)) =
                    (text.is_empty(), read.first(), read.last())
                {
                    // A character's spike lies inside its glyph; a step each way holds the glyph.
                    let a = f0.max(frac(first.saturating_sub(1)));
                    let b = f1.min(frac(last + 2)).min(1.0);
                    let quad = sub_quad(&quad, a, b.max(a));
                    lines.push(Line {
                        text: text.to_string(),
                        bbox: bounds_of(&quad),
                        quad,
                        confidence: decoded.confidence,
                    });
                }
                (from, f0) = (to, f1);
            }
        }
        let mut page = arrange(lines, rotation, page.width(), page.height());
        page.cut_off = cut_off;
        Ok(page)
    }

    /// Whether the page reads upside down: the mean of the orientation network's "180°"
    /// probability over the page's longest lines (at most [`CLS_SAMPLE`], the only ones cut
    /// out for it) is above one half.
    fn page_upside_down(&self, page: &RgbImage, plans: &[LinePlan]) -> Result<bool, Error> {
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(plans[i].out_w));
        order.truncate(CLS_SAMPLE);
        if order.is_empty() {
            return Ok(false);
        }
        let crops: Vec<RgbImage> = order.iter().map(|&i| plans[i].crop(page)).collect();
        let longest: Vec<&RgbImage> = crops.iter().collect();
        let (mut sum, mut n) = (0.0f32, 0usize);
        for chunk in longest.chunks(BATCH) {
            let input = recognize::batch_tensor(chunk, CLS_WIDTH);
            let input = Value::from_shape(
                [chunk.len(), 3, LINE_HEIGHT as usize, CLS_WIDTH as usize],
                input,
            )
            .map_err(|e| run_err("orientation", e))?;
            let probs = self.run(&self.cls, "orientation", input)?;
            let (_, probs) = probs
                .into_shape_vec::<f32, 2>()
                .map_err(|e| run_err("orientation", e))?;
            for p in probs.chunks_exact(2) {
                sum += p[1] / (p[0] + p[1]).max(f32::MIN_POSITIVE);
                n += 1;
            }
        }
        Ok(sum / n as f32 > 0.5)
    }

    /// One batch of line images decoded, with the width in line-image pixels of one decoding
    /// step.
    fn recognize_batch(&self, imgs: &[RgbImage]) -> Result<Vec<(recognize::Decoded, f32)>, Error> {
        let imgs: Vec<&RgbImage> = imgs.iter().collect();
        let widest = imgs.iter().map(|i| i.width()).max().unwrap_or(1);
        let width = widest.clamp(REC_MIN_WIDTH, REC_MAX_WIDTH);
        let input = recognize::batch_tensor(&imgs, width);
        let input = Value::from_shape([imgs.len(), 3, LINE_HEIGHT as usize, width as usize], input)
            .map_err(|e| run_err("recognition", e))?;
        let probs = self.run(&self.rec, "recognition", input)?;
        let (shape, probs) = probs
            .into_shape_vec::<f32, 3>()
            .map_err(|e| run_err("recognition", e))?;
        let per_line = shape[1] * shape[2];
        let step_px = width as f32 / shape[1].max(1) as f32;
        Ok((0..imgs.len())
            .map(|k| {
                let line = &probs[k * per_line..(k + 1) * per_line];
                (
                    recognize::ctc_greedy(line, shape[2], &self.charset),
                    step_px,
                )
            })
            .collect())
    }
}

/// `run` over the lines `0..widths.len()` in batches of at most [`BATCH`], lines of similar
/// width together (so little of a batch is padding), each line's image made by `make` only
/// when its batch runs, so at most [`BATCH`] are held at once; the results come back in line
/// order.
fn in_batches<I, T, E>(
    widths: &[u32],
    mut make: impl FnMut(usize) -> I,
    mut run: impl FnMut(&[I]) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, E> {
    let mut order: Vec<usize> = (0..widths.len()).collect();
    order.sort_by_key(|&i| widths[i]);
    let mut out: Vec<Option<T>> = (0..widths.len()).map(|_| None).collect();
    for chunk in order.chunks(BATCH) {
        // Made here and dropped at the end of the batch: one batch's images alive at a time.
        let imgs: Vec<I> = chunk.iter().map(|&i| make(i)).collect();
        let results = run(&imgs)?;
        debug_assert_eq!(results.len(), chunk.len(), "one result per line");
        for (&i, t) in chunk.iter().zip(results) {
            out[i] = Some(t);
        }
    }
    Ok(out.into_iter().flatten().collect())
}

fn run_err(network: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Run {
        network,
        message: e.to_string(),
    }
}

fn scale_rect(r: RotatedRect, sx: f32, sy: f32) -> RotatedRect {
    // Scale the corners and take their rectangle again: with sx ≠ sy a tilted rectangle's
    // angle changes (the two scales differ by well under a percent after rounding to 32).
    let pts: Vec<Point> = r
        .corners()
        .iter()
        .map(|p| Point {
            x: p.x * sx,
            y: p.y * sy,
        })
        .collect();
    geometry::min_area_rect(pts).unwrap_or(r)
}

/// The part of a line's quad from `f0` to `f1` of the way along the text.
fn sub_quad(q: &[Point; 4], f0: f32, f1: f32) -> [Point; 4] {
    let lerp = |a: Point, b: Point, f: f32| Point {
        x: a.x + (b.x - a.x) * f,
        y: a.y + (b.y - a.y) * f,
    };
    [
        lerp(q[0], q[1], f0),
        lerp(q[0], q[1], f1),
        lerp(q[3], q[2], f1),
        lerp(q[3], q[2], f0),
    ]
}

fn bounds_of(quad: &[Point; 4]) -> Rect {
    let mut r = Rect {
        x0: quad[0].x,
        y0: quad[0].y,
        x1: quad[0].x,
        y1: quad[0].y,
    };
    for p in &quad[1..] {
        r.x0 = r.x0.min(p.x);
        r.y0 = r.y0.min(p.y);
        r.x1 = r.x1.max(p.x);
        r.y1 = r.y1.max(p.y);
    }
    r
}

/// Where a line's image comes from, before it is cut out: cutting every line of a page at
/// once would hold up to a thousand line images (hundreds of MB), so each is cut only when its
/// batch runs.
struct LinePlan {
    origin: Point,
    along: Point,
    across: Point,
    /// The line image's width ([`LINE_HEIGHT`] high).
    out_w: u32,
    /// Corners in reading order, in the page's pixels.
    quad: [Point; 4],
}

impl LinePlan {
    fn crop(&self, page: &RgbImage) -> RgbImage {
        geometry::warp(
            page,
            self.origin,
            self.along,
            self.across,
            self.out_w,
            LINE_HEIGHT,
        )
    }
}

/// The line image of `r`, upright as far as its shape tells, [`LINE_HEIGHT`] high, with its
/// corners in reading order. A line much taller than wide is read top to bottom (turned a
/// quarter counter-clockwise, as PaddleOCR does); the orientation network settles the rest.
fn plan_line(r: &RotatedRect) -> LinePlan {
    let (u, v) = r.axes();
    let c = r.corners();
    let scale = |p: Point, k: f32| Point {
        x: p.x * k,
        y: p.y * k,
    };
    let (origin, along, across, len, thick, quad) = if r.height >= 1.5 * r.width {
        (
            c[1],
            scale(v, r.height),
            scale(u, -r.width),
            r.height,
            r.width,
            [c[1], c[2], c[3], c[0]],
        )
    } else {
        (
            c[0],
            scale(u, r.width),
            scale(v, r.height),
            r.width,
            r.height,
            c,
        )
    };
    let out_w =
        ((LINE_HEIGHT as f32 * len / thick.max(1.0)).round() as u32).clamp(1, REC_MAX_WIDTH);
    LinePlan {
        origin,
        along,
        across,
        out_w,
        quad,
    }
}

/// Lines into reading order, and the page's text.
fn arrange(lines: Vec<Line>, rotation: u16, width: u32, height: u32) -> Page {
    let boxes: Vec<Rect> = lines.iter().map(|l| l.bbox).collect();
    let blocks = order::reading_order(&boxes);
    let mut ordered = Vec::with_capacity(lines.len());
    let mut text = String::new();
    let mut slots: Vec<Option<Line>> = lines.into_iter().map(Some).collect();
    for block in blocks {
        for row in block.rows {
            let mut first = true;
            for i in row {
                let Some(line) = slots[i].take() else {
                    continue;
                };
                if !first {
                    text.push(' ');
                }
                first = false;
                text.push_str(&line.text);
                ordered.push(line);
            }
            text.push('\n');
        }
    }
    Page {
        lines: ordered,
        text_in_reading_order: text,
        rotation,
        width,
        height,
        cut_off: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A line image that counts how many of its kind are alive.
    struct Counted(Rc<Cell<usize>>, usize);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    #[test]
    fn a_page_of_many_lines_holds_one_batch_of_line_images_at_a_time() {
        let live = Rc::new(Cell::new(0usize));
        let peak = Cell::new(0usize);
        let widths: Vec<u32> = (0..1000u32).map(|i| (i * 7919) % 4800 + 1).collect();
        let out = in_batches(
            &widths,
            |i| {
                live.set(live.get() + 1);
                peak.set(peak.get().max(live.get()));
                Counted(live.clone(), i)
            },
            |imgs: &[Counted]| {
                assert!(imgs.len() <= BATCH);
                // Similar widths share a batch.
                let w: Vec<u32> = imgs.iter().map(|c| widths[c.1]).collect();
                assert!(w.windows(2).all(|p| p[0] <= p[1]), "{w:?}");
                Ok::<_, ()>(imgs.iter().map(|c| c.1).collect())
            },
        )
        .unwrap();
        // Every line's result, in line order.
        assert_eq!(out, (0..1000).collect::<Vec<usize>>());
        assert!(
            peak.get() <= BATCH,
            "{} line images alive at once",
            peak.get()
        );
        assert_eq!(live.get(), 0);
    }
}
