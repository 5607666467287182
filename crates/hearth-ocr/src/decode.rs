//! Photos and scans to pixels: the format sniffed from the bytes (never the file name), the
//! declared size checked against a pixel cap before anything is decoded (a small file can
//! declare a huge image), and the EXIF orientation applied so the page is upright as the camera
//! saw it.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::Error;

/// The default pixel cap: 60 megapixels holds a 600-dpi A4 or Letter page (about 35 MP) and
/// any phone photo, while its RGB buffer stays near 180 MB.
pub const DEFAULT_MAX_PIXELS: u64 = 60_000_000;

/// Decodes a JPEG, PNG, WebP or TIFF image, honouring its EXIF orientation, refusing images of
/// more than `max_pixels` pixels before decoding them.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, Error> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Tiff) => {}
        Some(other) => {
            return Err(Error::UnsupportedImage(format!(
                "{other:?} images are not read; use JPEG, PNG, WebP or TIFF"
            )))
        }
        None => {
            return Err(Error::UnsupportedImage(
                "the file is not a JPEG, PNG, WebP or TIFF image".into(),
            ))
        }
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    // The decoder's own buffers: the image at up to 16 bits × 4 channels, plus slack.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| Error::Image(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > max_pixels {
        return Err(Error::TooManyPixels {
            width: w,
            height: h,
            max: max_pixels,
        });
    }
    if w == 0 || h == 0 {
        return Err(Error::Image("the image is empty (0 pixels)".into()));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| Error::Image(e.to_string()))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| Error::Image(e.to_string()))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}
