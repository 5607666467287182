//! Text-line images to tensors, and the recognition network's output to text (greedy CTC).

use image::RgbImage;

/// Height of every line image fed to the recognition and orientation networks.
pub const LINE_HEIGHT: u32 = 48;

/// Line images (each [`LINE_HEIGHT`] high) packed into one NCHW batch `width` wide: BGR, scaled
/// to -1..1, each image left-aligned and the rest zero (mid-grey), as PaddleOCR pads.
/// Images wider than `width` are squeezed to it.
pub fn batch_tensor(lines: &[&RgbImage], width: u32) -> Vec<f32> {
    let h = LINE_HEIGHT as usize;
    let w = width as usize;
    let plane = h * w;
    let mut out = vec![0.0f32; lines.len() * 3 * plane];
    for (n, img) in lines.iter().enumerate() {
        let squeezed;
        let img: &RgbImage = if img.width() > width || img.height() != LINE_HEIGHT {
            let new_w = img.width().min(width);
            squeezed = image::imageops::resize(
                *img,
                new_w,
                LINE_HEIGHT,
                image::imageops::FilterType::Triangle,
            );
            &squeezed
        } else {
            img
        };
        let base = n * 3 * plane;
        for (x, y, px) in img.enumerate_pixels() {
            let i = y as usize * w + x as usize;
            for c in 0..3 {
                out[base + (2 - c) * plane + i] = px[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    out
}

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// Mean probability of the characters kept (0 for an empty line).
    pub confidence: f32,
    /// For each dictionary entry appended to `text`: its byte offset in `text` and the step
    /// where it was read (steps are evenly spaced across the network's input).
    pub steps: Vec<(usize, usize)>,
}

/// Greedy CTC decoding of one line: the best class at every step, repeats merged, blanks
/// (class 0) dropped. `probs` is `steps × classes`.
pub fn ctc_greedy(probs: &[f32], classes: usize, charset: &[String]) -> Decoded {
    let mut text = String::new();
    let mut steps = Vec::new();
    let (mut sum, mut n) = (0.0f32, 0usize);
    let mut prev = usize::MAX;
    for (t, step) in probs.chunks_exact(classes).enumerate() {
        let (best, p) = step
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
            );
        if best != 0 && best != prev {
            if let Some(ch) = charset.get(best) {
                steps.push((text.len(), t));
                text.push_str(ch);
                sum += p;
                n += 1;
            }
        }
        prev = best;
    }
    let confidence = if n == 0 { 0.0 } else { sum / n as f32 };
    Decoded {
        text,
        confidence,
        steps,
    }
}

/// Where a line should be cut in two: the gaps between consecutive characters (spaces aside)
/// of at least `min_gap` steps. Returns, for each cut, the byte offset in the text where the
/// right part starts and the step midway through the gap.
///
/// Detection joins two lines facing each other across a narrow gutter into one box; the
/// network still reads the gutter as a long run of nothing, much longer than a word space.
pub fn wide_gaps(d: &Decoded, min_gap: usize) -> Vec<(usize, usize)> {
    let visible: Vec<(usize, usize)> = d
        .steps
        .iter()
        .copied()
        .filter(|&(at, _)| !d.text[at..].starts_with(' '))
        .collect();
    visible
        .windows(2)
        .filter(|w| w[1].1 - w[0].1 >= min_gap)
        .map(|w| (w[1].0, (w[0].1 + w[1].1) / 2))
        .collect()
}

/// The classes of the recognition network from the dictionary in its metadata (one character
/// a line): class 0 is the CTC blank, then the dictionary, then a space if the network has one
/// class more.
pub fn charset(dictionary: &str, classes: usize) -> Result<Vec<String>, String> {
    let mut set = vec![String::new()];
    set.extend(
        dictionary
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()),
    );
    // A trailing newline leaves one empty entry that is not a character.
    if set.last().is_some_and(|s| s.is_empty()) && set.len() > 1 {
        set.pop();
    }
    if set.len() + 1 == classes {
        set.push(" ".to_string());
    }
    if set.len() != classes {
        return Err(format!(
            "the dictionary has {} characters but the network has {classes} classes",
            set.len() - 1
        ));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let charset: Vec<String> = ["", "a", "b", " "].iter().map(|s| s.to_string()).collect();
        // a a blank a b b space b
        let steps = [1, 1, 0, 1, 2, 2, 3, 2];
        let mut probs = vec![0.0f32; steps.len() * 4];
        for (t, &c) in steps.iter().enumerate() {
            probs[t * 4 + c] = 0.9;
        }
        let d = ctc_greedy(&probs, 4, &charset);
        assert_eq!(d.text, "aab b");
        assert!((d.confidence - 0.9).abs() < 1e-6);
        assert_eq!(d.steps, vec![(0, 0), (1, 3), (2, 4), (3, 6), (4, 7)]);
    }

    #[test]
    fn a_long_run_of_nothing_cuts_a_line() {
        let charset: Vec<String> = ["", "a", "b", " "].iter().map(|s| s.to_string()).collect();
        // "ab a" then twelve blank steps, a space, then "b".
        let mut steps = vec![1, 2, 3, 1];
        steps.extend([0; 12]);
        steps.extend([3, 2]);
        let mut probs = vec![0.0f32; steps.len() * 4];
        for (t, &c) in steps.iter().enumerate() {
            probs[t * 4 + c] = 0.9;
        }
        let d = ctc_greedy(&probs, 4, &charset);
        assert_eq!(d.text, "ab a b");
        // The word space (one step) does not cut; the run of 13 steps does, before "b".
        assert_eq!(wide_gaps(&d, 6), vec![(5, 10)]);
    }

    #[test]
    fn charset_adds_the_space_class_when_the_network_has_one() {
        let set = charset("a\nb\n", 4).unwrap();
        assert_eq!(set, vec!["", "a", "b", " "]);
        assert!(charset("a\nb", 7).is_err());
    }
}
