//! Image decoding: EXIF orientation honoured, the pixel cap checked before decoding, formats
//! sniffed from the bytes.

use hearth_ocr::{decode_image, Error};
use image::{ImageEncoder, Rgb, RgbImage};

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    let mut crc_in = kind.to_vec();
    crc_in.extend(data);
    out.extend(crc32(&crc_in).to_be_bytes());
    out
}

/// A PNG of `img` with extra chunks placed right after the header chunk.
fn png_with(img: &RgbImage, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            img,
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    // Signature (8) + IHDR chunk (4 + 4 + 13 + 4).
    let split = 8 + 25;
    let mut out = png[..split].to_vec();
    for c in extra {
        out.extend(c);
    }
    out.extend(&png[split..]);
    out
}

#[test]
fn exif_orientation_turns_the_photo_upright() {
    // Two pixels side by side, red then blue, stored as a camera held sideways stores them:
    // orientation 6 says "turn 90° clockwise to view".
    let mut img = RgbImage::new(2, 1);
    img.put_pixel(0, 0, Rgb([255, 0, 0]));
    img.put_pixel(1, 0, Rgb([0, 0, 255]));
    // A big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let exif: Vec<u8> = vec![
        b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
    ];
    let bytes = png_with(&img, &[chunk(b"eXIf", &exif)]);
    let out = decode_image(&bytes, 1000).unwrap();
    assert_eq!((out.width(), out.height()), (1, 2));
    assert_eq!(out.get_pixel(0, 0), &Rgb([255, 0, 0]));
    assert_eq!(out.get_pixel(0, 1), &Rgb([0, 0, 255]));
}

#[test]
fn a_png_declaring_30000_squared_pixels_is_refused_before_decoding() {
    let img = RgbImage::new(1, 1);
    let mut bytes = png_with(&img, &[]);
    // Rewrite the header's size to 30000 × 30000 and its checksum; the pixel data stays one
    // pixel, so only the declared size can be what refuses it.
    bytes[16..20].copy_from_slice(&30000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&30000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    match decode_image(&bytes, hearth_ocr::DEFAULT_MAX_PIXELS) {
        Err(Error::TooManyPixels { width, height, .. }) => {
            assert_eq!((width, height), (30000, 30000))
        }
        other => panic!("expected TooManyPixels, got {other:?}"),
    }
}

#[test]
fn files_that_are_not_images_say_so() {
    let err = decode_image(b"%PDF-1.7\n...", 1000).unwrap_err();
    assert!(matches!(err, Error::UnsupportedImage(_)), "{err:?}");
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    let err = decode_image(gif, 1000).unwrap_err();
    assert!(err.to_string().contains("JPEG, PNG, WebP or TIFF"), "{err}");
    // A PNG cut short is an error, not a panic.
    let mut png = png_with(&RgbImage::new(4, 4), &[]);
    png.truncate(40);
    assert!(decode_image(&png, 1000).is_err());
}
