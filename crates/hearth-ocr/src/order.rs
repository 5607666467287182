//! Reading order. Sorting lines by their top edge mixes the columns of a two-column page line
//! by line; here columns are found first and read one after the other, then the lines within
//! each.
//!
//! A region is cut recursively. First down a vertical gap that no line crosses (a gutter), into
//! columns read left to right. Failing that, across the horizontal gaps into bands read top to
//! bottom; but consecutive bands are first merged while their union still has a gutter, so the
//! paragraphs of two columns whose breaks happen to line up stay one two-column block instead
//! of being read band by band. A region with no cut left is read in rows: lines that share a
//! height, left to right.

use crate::geometry::Rect;

/// A group of lines read as one piece (a column or a paragraph band), in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Rows of line indices; lines in one row share a height and read left to right.
    pub rows: Vec<Vec<usize>>,
}

/// The lines of `boxes` as blocks in reading order.
pub fn reading_order(boxes: &[Rect]) -> Vec<Block> {
    if boxes.is_empty() {
        return Vec::new();
    }
    let mut heights: Vec<f32> = boxes.iter().map(|b| b.height().max(1.0)).collect();
    heights.sort_by(f32::total_cmp);
    let line_h = heights[heights.len() / 2];
    let ctx = Ctx { boxes, line_h };
    let mut out = Vec::new();
    ctx.cut((0..boxes.len()).collect(), &mut out, 0);
    out
}

struct Ctx<'a> {
    boxes: &'a [Rect],
    /// The median line height: the unit gaps are measured in.
    line_h: f32,
}

impl Ctx<'_> {
    fn cut(&self, idx: Vec<usize>, out: &mut Vec<Block>, depth: usize) {
        if idx.len() <= 1 || depth > 64 {
            out.push(self.rows(idx));
            return;
        }
        if let Some(cols) = self.columns(&idx) {
            for c in cols {
                self.cut(c, out, depth + 1);
            }
            return;
        }
        let bands = self.bands(&idx);
        if bands.len() <= 1 {
            out.push(self.rows(idx));
            return;
        }
        // Merge consecutive bands while a gutter runs through their union. Any gutter, not yet
        // real columns: a section's first bands can be one-sided (a heading beside the other
        // column's first lines, a line of one column beside the other's paragraph break), and
        // whether the whole is columns is judged once it is whole.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for band in bands {
            if let Some(last) = groups.last_mut() {
                let mut joined = last.clone();
                joined.extend(&band);
                if self.gutters(&joined).len() >= 2 {
                    *last = joined;
                    continue;
                }
            }
            groups.push(band);
        }
        if groups.len() == 1 {
            // Gutters, but not columns (a date set right above a greeting, labels beside
            // values): read in rows.
            out.push(self.rows(groups.pop().unwrap_or_default()));
            return;
        }
        for g in groups {
            self.cut(g, out, depth + 1);
        }
    }

    /// Splits `idx` at vertical gaps no line crosses, if that gives real columns: each at least
    /// two lines and a fifth of the region wide (so a form's narrow labels, or a date line set
    /// to the right above a greeting, are not read as columns).
    fn columns(&self, idx: &[usize]) -> Option<Vec<Vec<usize>>> {
        let parts = self.gutters(idx);
        if parts.len() < 2 {
            return None;
        }
        let region = bounds(self.boxes, idx);
        let ok = parts.iter().all(|p| {
            let b = bounds(self.boxes, p);
            p.len() >= 2 && b.width() >= 0.2 * region.width()
        });
        ok.then_some(parts)
    }

    /// Splits `idx` at vertical gaps no line crosses, half a line height wide or more.
    fn gutters(&self, idx: &[usize]) -> Vec<Vec<usize>> {
        split(
            idx,
            |i| (self.boxes[i].x0, self.boxes[i].x1),
            0.5 * self.line_h,
        )
    }

    /// Splits `idx` at horizontal gaps (any height: a band is a run of lines whose vertical
    /// extents chain together).
    fn bands(&self, idx: &[usize]) -> Vec<Vec<usize>> {
        // Lines of one row touch; a gap of a fifth of a line separates rows of running text.
        let min_gap = 0.05 * self.line_h;
        split(idx, |i| (self.boxes[i].y0, self.boxes[i].y1), min_gap)
    }

    /// A region that cannot be cut, in rows: sorted by centre height; a line joins the current
    /// row when it overlaps the row's height by half of the smaller of the two.
    fn rows(&self, mut idx: Vec<usize>) -> Block {
        idx.sort_by(|&a, &b| {
            self.boxes[a]
                .center_y()
                .total_cmp(&self.boxes[b].center_y())
        });
        let mut rows: Vec<Vec<usize>> = Vec::new();
        let mut span: Option<Rect> = None;
        for i in idx {
            let b = self.boxes[i];
            let joins = span.is_some_and(|s| {
                let overlap = s.y1.min(b.y1) - s.y0.max(b.y0);
                overlap >= 0.5 * s.height().min(b.height())
            });
            match (joins, rows.last_mut()) {
                (true, Some(row)) => {
                    row.push(i);
                    span = span.map(|s| s.union(&b));
                }
                _ => {
                    rows.push(vec![i]);
                    span = Some(b);
                }
            }
        }
        for row in &mut rows {
            row.sort_by(|&a, &b| self.boxes[a].x0.total_cmp(&self.boxes[b].x0));
        }
        Block { rows }
    }
}

fn bounds(boxes: &[Rect], idx: &[usize]) -> Rect {
    idx.iter()
        .map(|&i| boxes[i])
        .reduce(|a, b| a.union(&b))
        .unwrap_or(Rect {
            x0: 0.0,
            y0: 0.0,
            x1: 0.0,
            y1: 0.0,
        })
}

/// Groups `idx` by the projection `extent` onto one axis: sorted by start, a new group begins
/// where the next start lies at least `min_gap` past the furthest end so far.
fn split(idx: &[usize], extent: impl Fn(usize) -> (f32, f32), min_gap: f32) -> Vec<Vec<usize>> {
    let mut sorted = idx.to_vec();
    sorted.sort_by(|&a, &b| extent(a).0.total_cmp(&extent(b).0));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut end = f32::MIN;
    for i in sorted {
        let (s, e) = extent(i);
        if groups.is_empty() || s - end >= min_gap {
            groups.push(vec![i]);
            end = e;
        } else {
            if let Some(g) = groups.last_mut() {
                g.push(i);
            }
            end = end.max(e);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x0: f32, y0: f32, x1: f32, y1: f32) -> Rect {
        Rect { x0, y0, x1, y1 }
    }

    fn flat(blocks: &[Block]) -> Vec<usize> {
        blocks
            .iter()
            .flat_map(|b| b.rows.iter().flatten().copied())
            .collect()
    }

    #[test]
    fn two_columns_under_a_title_are_read_column_by_column() {
        // 0: title across the page; left column 1, 2, (paragraph break) 3; right column 4, 5,
        // (break at the same height) 6. Lines of the two columns sit at the same heights.
        let boxes = [
            r(100.0, 50.0, 900.0, 80.0),
            r(100.0, 120.0, 480.0, 140.0),
            r(100.0, 150.0, 480.0, 170.0),
            r(100.0, 220.0, 480.0, 240.0),
            r(520.0, 120.0, 900.0, 140.0),
            r(520.0, 150.0, 900.0, 170.0),
            r(520.0, 220.0, 900.0, 240.0),
        ];
        assert_eq!(flat(&reading_order(&boxes)), vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_section_that_starts_one_sided_is_still_read_column_by_column() {
        // Under a title across the page (0), a heading (1) beside the right column's first
        // line, then a right-only line, then both columns: 1, 4, 6 left; 2, 3, 5, 7 right.
        let boxes = [
            r(100.0, 50.0, 900.0, 70.0),
            r(150.0, 100.0, 300.0, 120.0),
            r(520.0, 100.0, 900.0, 120.0),
            r(520.0, 130.0, 900.0, 150.0),
            r(100.0, 160.0, 480.0, 180.0),
            r(520.0, 160.0, 900.0, 180.0),
            r(100.0, 190.0, 480.0, 210.0),
            r(520.0, 190.0, 900.0, 210.0),
        ];
        assert_eq!(flat(&reading_order(&boxes)), vec![0, 1, 4, 6, 2, 3, 5, 7]);
    }

    #[test]
    fn a_single_column_letter_reads_top_to_bottom_with_rows_left_to_right() {
        // A date set to the right, a greeting at the left, then a paragraph; a label and its
        // value detected as two boxes on one row.
        let boxes = [
            r(600.0, 50.0, 900.0, 70.0),
            r(100.0, 100.0, 260.0, 120.0),
            r(100.0, 130.0, 900.0, 150.0),
            r(100.0, 160.0, 900.0, 180.0),
            r(100.0, 200.0, 200.0, 220.0),
            r(400.0, 201.0, 700.0, 221.0),
        ];
        assert_eq!(flat(&reading_order(&boxes)), vec![0, 1, 2, 3, 4, 5]);
    }
}
