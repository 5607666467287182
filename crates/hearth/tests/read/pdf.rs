//! Building PDFs for the tests: a minimal writer (objects, cross-reference table, trailer),
//! standard-14 font text pages, and the RC4 standard security handler (revision 2) so a locked
//! PDF can be made here rather than fetched.

/// A PDF under construction: object `n` is `objects[n - 1]`.
#[derive(Default)]
pub struct Pdf {
    pub objects: Vec<Vec<u8>>,
    /// Extra trailer entries (`/Encrypt 9 0 R /ID [...]`).
    pub trailer: String,
}

impl Pdf {
    pub fn add(&mut self, body: impl Into<Vec<u8>>) -> usize {
        self.objects.push(body.into());
        self.objects.len()
    }

    pub fn set(&mut self, n: usize, body: impl Into<Vec<u8>>) {
        self.objects[n - 1] = body.into();
    }

    /// The file, with object 1 as the catalog.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in self.objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", self.objects.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R {} >>\nstartxref\n{xref}\n%%EOF\n",
                self.objects.len() + 1,
                self.trailer
            )
            .as_bytes(),
        );
        out
    }
}

/// A stream object's body.
pub fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< /Length {} {dict} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A PDF string literal with `(`, `)` and `\` escaped.
pub fn literal(text: &str) -> String {
    let mut s = String::from("(");
    for c in text.chars() {
        if matches!(c, '(' | ')' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push(')');
    s
}

/// Content drawing `lines` in Helvetica from the top of a Letter page.
pub fn text_content(lines: &[&str]) -> Vec<u8> {
    let mut c = String::from("BT /F1 12 Tf 14 TL 72 720 Td\n");
    for line in lines {
        c.push_str(&format!("{} Tj T*\n", literal(line)));
    }
    c.push_str("ET\n");
    c.into_bytes()
}

/// A document whose pages each draw the given content (objects: 1 catalog, 2 pages, 3 font,
/// then page and content pairs).
pub fn with_pages(contents: &[Vec<u8>]) -> Pdf {
    let mut pdf = Pdf::default();
    pdf.add("<< /Type /Catalog /Pages 2 0 R >>");
    pdf.add(""); // the page tree, once the kids are known
    pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
    let mut kids = Vec::new();
    for content in contents {
        let page = pdf.add("");
        let c = pdf.add(stream("", content));
        pdf.set(
            page,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {c} 0 R >>"
            ),
        );
        kids.push(format!("{page} 0 R"));
    }
    pdf.set(
        2,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        ),
    );
    pdf
}

pub fn text_pdf(pages: &[&[&str]]) -> Vec<u8> {
    let contents: Vec<Vec<u8>> = pages.iter().map(|lines| text_content(lines)).collect();
    with_pages(&contents).bytes()
}

// --- The standard security handler, revision 2 (RC4, 40-bit key), as the PDF specification
// (ISO 32000-1, 7.6.3) defines it.

const PAD: [u8; 32] = [
    0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08,
    0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
];

fn padded(password: &str) -> Vec<u8> {
    let mut p: Vec<u8> = password.bytes().take(32).collect();
    p.extend_from_slice(&PAD[..32 - p.len()]);
    p
}

pub fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s: Vec<u8> = (0..=255).collect();
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, j as usize);
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|&b| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[i as usize]);
            s.swap(i as usize, j as usize);
            b ^ s[(s[i as usize].wrapping_add(s[j as usize])) as usize]
        })
        .collect()
}

/// MD5 (RFC 1321), which the handler's key derivation is built on.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (h[0], h[1], h[2], h[3]);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A one-page text PDF locked with `user` (and `owner`): its content stream encrypted with RC4.
pub fn encrypted_pdf(lines: &[&str], user: &str, owner: &str) -> Vec<u8> {
    let id = b"hearth-test-id-0";
    let p: i32 = -4;
    let owner_key = &md5(&padded(owner))[..5];
    let o = rc4(owner_key, &padded(user));
    let mut seed = padded(user);
    seed.extend_from_slice(&o);
    seed.extend_from_slice(&p.to_le_bytes());
    seed.extend_from_slice(id);
    let key = md5(&seed)[..5].to_vec();
    let u = rc4(&key, &PAD);

    let mut pdf = with_pages(&[text_content(lines)]);
    // Objects 4 and 5 are the page and its content; the content is object 5, generation 0.
    let mut obj_key = key.clone();
    obj_key.extend_from_slice(&[5, 0, 0, 0, 0]);
    let content_key = &md5(&obj_key)[..10];
    let sealed = rc4(content_key, &text_content(lines));
    pdf.set(5, stream("", &sealed));
    let enc = pdf.add(format!(
        "<< /Filter /Standard /V 1 /R 2 /O <{}> /U <{}> /P {p} >>",
        hex(&o),
        hex(&u)
    ));
    pdf.trailer = format!("/Encrypt {enc} 0 R /ID [<{0}> <{0}>]", hex(id));
    pdf.bytes()
}

#[test]
fn md5_matches_rfc_1321() {
    assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        hex(&md5(b"The quick brown fox jumps over the lazy dog")),
        "9e107d9d372bb6826bd81d3542a419d6"
    );
}
