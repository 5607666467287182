//! Plane geometry the pipeline needs: convex hulls, minimum-area rectangles, axis-aligned boxes,
//! and sampling a rotated rectangle of an image into an upright strip.

use image::{Rgb, RgbImage};

/// A point in image coordinates (x right, y down), in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box: `x0 <= x1`, `y0 <= y1`, in pixels of the page image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }

    pub fn center_y(&self) -> f32 {
        (self.y0 + self.y1) * 0.5
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        Rect {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }
}

/// A rectangle at any angle: `u = (cos a, sin a)` runs along `width`, `v = (-sin a, cos a)` along
/// `height`. The angle is kept within ±45°, so `width` is the side nearer horizontal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    pub cx: f32,
    pub cy: f32,
    pub width: f32,
    pub height: f32,
    pub angle: f32,
}

impl RotatedRect {
    pub fn axes(&self) -> (Point, Point) {
        let (s, c) = self.angle.sin_cos();
        (Point { x: c, y: s }, Point { x: -s, y: c })
    }

    /// Corners in the order top-left, top-right, bottom-right, bottom-left (relative to `u`, `v`).
    pub fn corners(&self) -> [Point; 4] {
        let (u, v) = self.axes();
        let (hw, hh) = (self.width * 0.5, self.height * 0.5);
        let at = |a: f32, b: f32| Point {
            x: self.cx + u.x * a + v.x * b,
            y: self.cy + u.y * a + v.y * b,
        };
        [at(-hw, -hh), at(hw, -hh), at(hw, hh), at(-hw, hh)]
    }

    pub fn bounds(&self) -> Rect {
        let c = self.corners();
        let mut r = Rect {
            x0: c[0].x,
            y0: c[0].y,
            x1: c[0].x,
            y1: c[0].y,
        };
        for p in &c[1..] {
            r.x0 = r.x0.min(p.x);
            r.y0 = r.y0.min(p.y);
            r.x1 = r.x1.max(p.x);
            r.y1 = r.y1.max(p.y);
        }
        r
    }

    /// Whether `p` lies inside.
    pub fn contains(&self, p: Point) -> bool {
        let (u, v) = self.axes();
        let (dx, dy) = (p.x - self.cx, p.y - self.cy);
        (dx * u.x + dy * u.y).abs() <= self.width * 0.5
            && (dx * v.x + dy * v.y).abs() <= self.height * 0.5
    }

    /// The same rectangle with the other side called `width` when the angle left ±45°.
    fn normalized(mut self) -> RotatedRect {
        use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};
        // Bring the angle into (-90°, 90°]: a rectangle turned by 180° is itself.
        while self.angle > FRAC_PI_2 {
            self.angle -= PI;
        }
        while self.angle <= -FRAC_PI_2 {
            self.angle += PI;
        }
        if self.angle > FRAC_PI_4 {
            self.angle -= FRAC_PI_2;
            std::mem::swap(&mut self.width, &mut self.height);
        } else if self.angle <= -FRAC_PI_4 {
            self.angle += FRAC_PI_2;
            std::mem::swap(&mut self.width, &mut self.height);
        }
        self
    }
}

fn cross(o: Point, a: Point, b: Point) -> f32 {
    (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
}

/// The convex hull (Andrew's monotone chain), counter-clockwise, without repeated points.
pub fn convex_hull(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let mut hull: Vec<Point> = Vec::with_capacity(points.len() * 2);
    for &p in &points {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    let lower = hull.len() + 1;
    for &p in points.iter().rev().skip(1) {
        while hull.len() >= lower && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
    hull
}

/// The rectangle of least area around `points` (rotating calipers over the hull's edges: one of
/// them always lies on a side of the best rectangle).
pub fn min_area_rect(points: Vec<Point>) -> Option<RotatedRect> {
    let hull = convex_hull(points);
    if hull.is_empty() {
        return None;
    }
    if hull.len() == 1 {
        return Some(RotatedRect {
            cx: hull[0].x,
            cy: hull[0].y,
            width: 0.0,
            height: 0.0,
            angle: 0.0,
        });
    }
    let mut best: Option<(f32, RotatedRect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            continue;
        }
        let u = Point {
            x: dx / len,
            y: dy / len,
        };
        let v = Point { x: -u.y, y: u.x };
        let (mut umin, mut umax, mut vmin, mut vmax) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in &hull {
            let pu = p.x * u.x + p.y * u.y;
            let pv = p.x * v.x + p.y * v.y;
            umin = umin.min(pu);
            umax = umax.max(pu);
            vmin = vmin.min(pv);
            vmax = vmax.max(pv);
        }
        let area = (umax - umin) * (vmax - vmin);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cv) = ((umin + umax) * 0.5, (vmin + vmax) * 0.5);
            let rect = RotatedRect {
                cx: cu * u.x + cv * v.x,
                cy: cu * u.y + cv * v.y,
                width: umax - umin,
                height: vmax - vmin,
                angle: u.y.atan2(u.x),
            };
            best = Some((area, rect));
        }
    }
    best.map(|(_, r)| r.normalized())
}

/// Bilinear sample of `img` at `(x, y)` (pixel centres at half-integers), edges clamped.
pub fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let fx = x - 0.5;
    let fy = y - 0.5;
    let x0 = fx.floor();
    let y0 = fy.floor();
    let (ax, ay) = (fx - x0, fy - y0);
    let clamp = |v: i64, n: i64| v.clamp(0, n - 1) as u32;
    let (xi, yi) = (x0 as i64, y0 as i64);
    let px = |xx: i64, yy: i64| -> &Rgb<u8> { img.get_pixel(clamp(xx, w), clamp(yy, h)) };
    let (p00, p10, p01, p11) = (
        px(xi, yi),
        px(xi + 1, yi),
        px(xi, yi + 1),
        px(xi + 1, yi + 1),
    );
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = p00[c] as f32 * (1.0 - ax) + p10[c] as f32 * ax;
        let bottom = p01[c] as f32 * (1.0 - ax) + p11[c] as f32 * ax;
        *o = top * (1.0 - ay) + bottom * ay;
    }
    out
}

/// Samples the parallelogram `origin + s * along + t * across` (`s`, `t` in 0..1) of `img` into
/// an image `out_w` × `out_h`. Box-filters by supersampling when shrinking a lot, so small print
/// is not aliased away.
pub fn warp(
    img: &RgbImage,
    origin: Point,
    along: Point,
    across: Point,
    out_w: u32,
    out_h: u32,
) -> RgbImage {
    let len_along = (along.x * along.x + along.y * along.y).sqrt();
    let len_across = (across.x * across.x + across.y * across.y).sqrt();
    // Source pixels per output pixel, per axis; supersample up to 4×4 when shrinking.
    let sa = ((len_along / out_w.max(1) as f32).ceil() as u32).clamp(1, 4);
    let sb = ((len_across / out_h.max(1) as f32).ceil() as u32).clamp(1, 4);
    let n = (sa * sb) as f32;
    let mut out = RgbImage::new(out_w.max(1), out_h.max(1));
    for j in 0..out_h.max(1) {
        for i in 0..out_w.max(1) {
            let mut acc = [0.0f32; 3];
            for b in 0..sb {
                let t = (j as f32 + (b as f32 + 0.5) / sb as f32) / out_h.max(1) as f32;
                for a in 0..sa {
                    let s = (i as f32 + (a as f32 + 0.5) / sa as f32) / out_w.max(1) as f32;
                    let x = origin.x + s * along.x + t * across.x;
                    let y = origin.y + s * along.y + t * across.y;
                    let p = sample(img, x, y);
                    for c in 0..3 {
                        acc[c] += p[c];
                    }
                }
            }
            out.put_pixel(
                i,
                j,
                Rgb([
                    (acc[0] / n).round() as u8,
                    (acc[1] / n).round() as u8,
                    (acc[2] / n).round() as u8,
                ]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    #[test]
    fn min_area_rect_of_a_tilted_rectangle_finds_its_sides() {
        // A 40 × 10 rectangle turned by 30°, sampled on its edges.
        let (s, c) = 30f32.to_radians().sin_cos();
        let mut pts = Vec::new();
        for i in 0..=40 {
            for j in [0, 10] {
                let (a, b) = (i as f32 - 20.0, j as f32 - 5.0);
                pts.push(p(100.0 + a * c - b * s, 50.0 + a * s + b * c));
            }
        }
        let r = min_area_rect(pts).unwrap();
        assert!((r.width - 40.0).abs() < 0.01, "{r:?}");
        assert!((r.height - 10.0).abs() < 0.01, "{r:?}");
        assert!((r.angle.to_degrees() - 30.0).abs() < 0.01, "{r:?}");
        assert!((r.cx - 100.0).abs() < 0.01 && (r.cy - 50.0).abs() < 0.01);
    }

    #[test]
    fn a_tall_rectangle_keeps_its_long_side_as_height() {
        let pts = vec![p(0.0, 0.0), p(10.0, 0.0), p(10.0, 60.0), p(0.0, 60.0)];
        let r = min_area_rect(pts).unwrap();
        assert!(r.angle.abs() < 1e-4, "{r:?}");
        assert!(
            (r.width - 10.0).abs() < 1e-3 && (r.height - 60.0).abs() < 1e-3,
            "{r:?}"
        );
    }
}
