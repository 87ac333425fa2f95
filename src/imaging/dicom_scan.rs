//! A structural check of DICOM bytes before dicom-rs parses them. dicom-rs allocates, and
//! zeroes, each element's claimed length before it reads the value, and recurses into nested
//! sequences: a 1 KB file claiming a 4 GB element, or nesting sequences ten thousand deep,
//! would cost gigabytes or the stack. This walks every element header (inflating a deflated
//! data set, capped), checks each defined length against the bytes that remain, bounds the
//! nesting, and checks what dicom-rs's codecs trust: the RLE segment tables, and that a JPEG
//! frame's size is the one the header declares (a JPEG claiming 65535 × 65535 would be
//! decoded into gigabytes before anything compares it with Rows and Columns).

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

/// Sequences may nest this deep (real files rarely pass 5).
pub const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = u32::MAX;
const ITEM: u16 = 0xE000;
const ITEM_END: u16 = 0xE00D;
const SEQUENCE_END: u16 = 0xE0DD;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// The JPEG syntaxes dicom-rs decodes (its "jpeg" feature): baseline, extended, lossless.
const JPEG_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];

/// What encapsulated pixel data is checked against.
#[derive(Clone, PartialEq)]
enum Codec {
    Rle,
    Jpeg,
    /// Native pixel data: no fragments expected.
    Native,
    /// An encapsulated syntax this check does not know: refused, named.
    Unchecked(String),
}

/// Every value representation of PS3.5 6.2; dicom-rs reads others in ways of its own.
const KNOWN_VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];

type Checked<T> = std::result::Result<T, String>;

/// Checks the file meta group and the data set of `bytes` (preamble and "DICM" included, as
/// `is_dicom` recognises them); `inflated_limit` caps a deflated data set's size.
pub fn check_structure(bytes: &[u8], inflated_limit: u64) -> Checked<()> {
    let mut meta = Scanner {
        data: bytes,
        pos: 132,
        explicit: true,
        big_endian: false,
        codec: Codec::Native,
        image: [0; 4],
    };
    // The group's length comes first; its elements fill exactly that many bytes.
    let Header { tag, length, .. } = meta.header()?;
    if tag != (0x0002, 0x0000) || length != 4 {
        return Err("its file meta group does not start with its length".to_string());
    }
    meta.defined(tag, length)?;
    let group_end = (meta.pos + 4)
        .checked_add(meta.u32_at(meta.pos) as usize)
        .filter(|&end| end <= bytes.len())
        .ok_or("its file meta group claims more bytes than the file holds")?;
    meta.pos += 4;
    let mut syntax = String::new();
    while meta.pos < group_end {
        let Header { tag, length, .. } = meta.header()?;
        let room = group_end.checked_sub(meta.pos);
        if tag.0 != 0x0002 || room.is_none_or(|room| length as usize > room) {
            return Err(format!(
                "element ({:04X},{:04X}) does not fit in the file meta group",
                tag.0, tag.1
            ));
        }
        if tag == (0x0002, 0x0010) {
            let value = &meta.data[meta.pos..meta.pos + length as usize];
            // Padding (NUL, space, or whatever whitespace a writer left) is not part of the
            // UID, for dicom-rs either.
            syntax = String::from_utf8_lossy(value)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string();
        }
        meta.pos += length as usize;
    }
    let rest = &bytes[meta.pos..];
    let inflated;
    let (data, explicit, big_endian) = match syntax.as_str() {
        "1.2.840.10008.1.2" => (rest, false, false),
        "1.2.840.10008.1.2.2" => (rest, true, true),
        "1.2.840.10008.1.2.1.99" => {
            inflated = inflate(rest, inflated_limit)?;
            (inflated.as_slice(), true, false)
        }
        _ => (rest, true, false),
    };
    let codec = match syntax.as_str() {
        RLE_LOSSLESS => Codec::Rle,
        s if JPEG_SYNTAXES.contains(&s) => Codec::Jpeg,
        s => match TransferSyntaxRegistry.get(s) {
            Some(ts) if !ts.is_encapsulated_pixel_data() => Codec::Native,
            Some(ts) => Codec::Unchecked(format!("{}, {s}", ts.name())),
            None => Codec::Unchecked(format!("an unknown transfer syntax, {s:?}")),
        },
    };
    let mut scanner = Scanner {
        data,
        pos: 0,
        explicit,
        big_endian,
        codec,
        image: [0; 4],
    };
    scanner.elements(data.len(), 0, false)
}

fn inflate(deflated: &[u8], limit: u64) -> Checked<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("its deflated data set does not inflate: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "its deflated data set inflates beyond {limit} bytes"
        ));
    }
    Ok(out)
}

/// An element or item header.
struct Header {
    tag: (u16, u16),
    length: u32,
    /// Whether it holds a sequence (SQ, or an undefined length in implicit VR or UN).
    sequence: bool,
    /// The size of one value: a defined length must be a whole number of them.
    unit: u32,
}

impl Header {
    fn new(tag: (u16, u16), length: u32, sequence: bool, unit: u32) -> Self {
        Self {
            tag,
            length,
            sequence,
            unit,
        }
    }
}

/// The size of one value of a binary VR, 1 for text and bytes. dicom-rs reads whole values and
/// skips the rest of an uneven length, falling out of step with the file, so such a length is
/// refused.
fn unit_of(vr: &[u8; 2]) -> u32 {
    match vr {
        b"US" | b"SS" | b"OW" => 2,
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"OV" | b"SV" | b"UV" => 8,
        _ => 1,
    }
}

struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
    explicit: bool,
    big_endian: bool,
    codec: Codec,
    /// Rows, Columns, Samples per Pixel and Bits Allocated of the top-level data set, as
    /// they pass.
    image: [u32; 4],
}

impl Scanner<'_> {
    fn u16_at(&self, at: usize) -> u16 {
        let b = [self.data[at], self.data[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.data[at],
            self.data[at + 1],
            self.data[at + 2],
            self.data[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn need(&self, bytes: usize) -> Checked<()> {
        match self.data.len() - self.pos >= bytes {
            true => Ok(()),
            false => Err(format!(
                "it is cut short within an element header at byte {}",
                self.pos
            )),
        }
    }

    /// Reads an element or item header.
    fn header(&mut self) -> Checked<Header> {
        self.need(8)?;
        let tag = (self.u16_at(self.pos), self.u16_at(self.pos + 2));
        if tag.0 == 0xFFFE || !self.explicit {
            let length = self.u32_at(self.pos + 4);
            self.pos += 8;
            if tag.0 == 0xFFFE {
                return Ok(Header::new(tag, length, false, 1));
            }
            let (sequence, unit) = dictionary_vr(tag);
            return Ok(Header::new(
                tag,
                length,
                length == UNDEFINED || sequence,
                unit,
            ));
        }
        let vr = [self.data[self.pos + 4], self.data[self.pos + 5]];
        if !KNOWN_VRS.contains(&&vr) {
            return Err(format!(
                "element ({:04X},{:04X}) has no known value representation",
                tag.0, tag.1
            ));
        }
        let long = matches!(
            &vr,
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"SV"
                | b"UV"
        );
        if long {
            self.need(12)?;
            let length = self.u32_at(self.pos + 8);
            self.pos += 12;
            let sequence = &vr == b"SQ" || (length == UNDEFINED && &vr == b"UN");
            Ok(Header::new(tag, length, sequence, unit_of(&vr)))
        } else {
            let length = u32::from(self.u16_at(self.pos + 6));
            self.pos += 8;
            Ok(Header::new(tag, length, false, unit_of(&vr)))
        }
    }

    /// A defined length must fit in what remains.
    fn defined(&self, tag: (u16, u16), length: u32) -> Checked<()> {
        let remain = self.data.len() - self.pos;
        if length == UNDEFINED || length as usize > remain {
            return Err(format!(
                "element ({:04X},{:04X}) claims {} bytes where {remain} remain",
                tag.0,
                tag.1,
                if length == UNDEFINED {
                    "undefined".to_string()
                } else {
                    length.to_string()
                }
            ));
        }
        Ok(())
    }

    /// Data elements up to `end`, or up to an item delimiter when `in_item` (consumed).
    fn elements(&mut self, end: usize, depth: usize, in_item: bool) -> Checked<()> {
        while self.pos < end {
            let Header {
                tag,
                length,
                sequence,
                unit,
            } = self.header()?;
            if tag == (0xFFFE, ITEM_END) && in_item {
                return Ok(());
            }
            if tag == PIXEL_DATA && length == UNDEFINED {
                self.fragments(depth)?;
            } else if sequence {
                if depth + 1 > MAX_DEPTH {
                    return Err(format!("its sequences nest deeper than {MAX_DEPTH}"));
                }
                match length {
                    UNDEFINED => self.items(None, depth + 1)?,
                    _ => {
                        self.defined(tag, length)?;
                        let end = self.pos + length as usize;
                        self.items(Some(end), depth + 1)?;
                    }
                }
            } else {
                self.defined(tag, length)?;
                if length % unit != 0 {
                    return Err(format!(
                        "element ({:04X},{:04X}) holds {length} bytes, not whole values of {unit}",
                        tag.0, tag.1
                    ));
                }
                let slot = match tag {
                    (0x0028, 0x0010) => Some(0),
                    (0x0028, 0x0011) => Some(1),
                    (0x0028, 0x0002) => Some(2),
                    (0x0028, 0x0100) => Some(3),
                    _ => None,
                };
                if let Some(slot) = slot.filter(|_| depth == 0 && length == 2) {
                    self.image[slot] = u32::from(self.u16_at(self.pos));
                }
                self.pos += length as usize;
            }
        }
        match in_item {
            true => Err("an item of undefined length has no end".to_string()),
            false => Ok(()),
        }
    }

    /// A sequence's items: up to `end`, or up to the sequence delimiter when undefined.
    fn items(&mut self, end: Option<usize>, depth: usize) -> Checked<()> {
        loop {
            if end.is_some_and(|end| self.pos >= end) {
                return Ok(());
            }
            let Header { tag, length, .. } = self.header()?;
            match tag {
                (0xFFFE, SEQUENCE_END) if end.is_none() => return Ok(()),
                (0xFFFE, ITEM) if length == UNDEFINED => {
                    self.elements(self.data.len(), depth, true)?;
                }
                (0xFFFE, ITEM) => {
                    self.defined(tag, length)?;
                    let item_end = self.pos + length as usize;
                    self.elements(item_end, depth, false)?;
                }
                _ => {
                    return Err(format!(
                        "({:04X},{:04X}) stands where a sequence item should",
                        tag.0, tag.1
                    ));
                }
            }
        }
    }

    /// Encapsulated pixel data: the offset table, then fragments of defined length, up to the
    /// sequence delimiter. The image's own (at depth 0; icons nested in sequences are never
    /// decoded) is checked as dicom-rs's codecs need: each RLE frame's segment table and
    /// lengths, each JPEG frame's size.
    fn fragments(&mut self, depth: usize) -> Checked<()> {
        let mut fragments: Vec<&[u8]> = Vec::new();
        loop {
            let Header { tag, length, .. } = self.header()?;
            match tag {
                (0xFFFE, SEQUENCE_END) => break,
                (0xFFFE, ITEM) => {
                    self.defined(tag, length)?;
                    fragments.push(&self.data[self.pos..self.pos + length as usize]);
                    self.pos += length as usize;
                }
                _ => return Err("its encapsulated pixel data holds a non-item".to_string()),
            }
        }
        if depth > 0 {
            return Ok(());
        }
        // The first item is the basic offset table.
        let frames = fragments.get(1..).unwrap_or_default();
        match &self.codec {
            Codec::Unchecked(syntax) => Err(format!(
                "its pixel data's transfer syntax ({syntax}) is not one gradlens decodes"
            )),
            Codec::Native => Err("its pixel data is encapsulated in a native syntax".to_string()),
            Codec::Rle | Codec::Jpeg if self.image.contains(&0) => Err(
                "its compressed pixel data comes without Rows, Columns, Samples per Pixel and \
                 Bits Allocated before it"
                    .to_string(),
            ),
            Codec::Rle => frames
                .iter()
                .try_for_each(|fragment| check_rle_frame(fragment, self.image)),
            Codec::Jpeg => {
                // A frame may span fragments: each one that opens a JPEG stream is checked on
                // the bytes from there on, joined as dicom-rs joins them.
                if frames
                    .first()
                    .is_some_and(|first| !first.starts_with(&[0xFF, 0xD8]))
                {
                    return Err("its JPEG pixel data does not start with a JPEG stream".into());
                }
                let [rows, columns, samples, _] = self.image;
                let opens = |fragment: &&[u8]| fragment.starts_with(&[0xFF, 0xD8]);
                for (at, _) in frames.iter().enumerate().filter(|(_, f)| opens(f)) {
                    let next = frames[at + 1..]
                        .iter()
                        .position(opens)
                        .map_or(frames.len(), |n| at + 1 + n);
                    check_jpeg_frame(&frames[at..next].concat(), [rows, columns, samples])?;
                }
                Ok(())
            }
        }
    }
}

/// What the standard dictionary says of `tag` (implicit VR has no VR field): whether it holds a
/// sequence, and the size of one value (2 for the VRs that depend on the pixel data).
fn dictionary_vr((group, element): (u16, u16)) -> (bool, u32) {
    match StandardDataDictionary
        .by_tag(Tag(group, element))
        .map(|entry| entry.vr())
    {
        Some(VirtualVr::Exact(vr)) => (
            vr == VR::SQ,
            unit_of(&vr.to_string().as_bytes().try_into().unwrap_or(*b"UN")),
        ),
        Some(_) => (false, 2),
        None => (false, 1),
    }
}

/// An RLE frame starts with 16 little-endian u32s: the segment count, one segment per byte of
/// each sample (Samples per Pixel × Bits Allocated / 8), then each segment's offset, rising
/// and within the fragment after the 64-byte header; and each segment must PackBits-decode to
/// at least Rows × Columns bytes (dicom-rs indexes past a shorter one).
fn check_rle_frame(fragment: &[u8], [rows, columns, samples, bits]: [u32; 4]) -> Checked<()> {
    let word = |i: usize| u32::from_le_bytes(fragment[4 * i..4 * i + 4].try_into().unwrap());
    if fragment.len() < 64 {
        return Err(format!(
            "an RLE fragment of {} bytes has no header",
            fragment.len()
        ));
    }
    let segments = word(0) as usize;
    let expected = (samples * bits.div_ceil(8)) as usize;
    if segments != expected || !(1..=15).contains(&segments) {
        return Err(format!(
            "an RLE fragment holds {segments} segments where the image needs {expected}"
        ));
    }
    let mut starts: Vec<usize> = (1..=segments).map(|i| word(i) as usize).collect();
    if starts[0] != 64
        || starts.windows(2).any(|w| w[1] <= w[0])
        || starts[segments - 1] >= fragment.len()
    {
        return Err("an RLE fragment's segment offsets do not rise within it".to_string());
    }
    starts.push(fragment.len());
    let needed = rows as usize * columns as usize;
    for range in starts.windows(2) {
        let decoded = packbits_length(&fragment[range[0]..range[1]], needed);
        if decoded < needed {
            return Err(format!(
                "an RLE segment decodes to {decoded} bytes where the image needs {needed}"
            ));
        }
    }
    Ok(())
}

/// How many bytes a PackBits segment decodes to (counting whole runs only), up to `enough`.
fn packbits_length(segment: &[u8], enough: usize) -> usize {
    let (mut at, mut length) = (0, 0);
    while at < segment.len() && length < enough {
        let header = segment[at] as i8;
        at += 1;
        match header {
            0..=127 => {
                let run = header as usize + 1;
                if at + run > segment.len() {
                    break;
                }
                at += run;
                length += run;
            }
            -127..=-1 => {
                if at >= segment.len() {
                    break;
                }
                at += 1;
                length += (1 - header as isize) as usize;
            }
            -128 => {}
        }
    }
    length
}

/// A JPEG stream's frame header (SOF) must declare Rows × Columns and Samples per Pixel
/// components, `[rows, columns, samples]`.
fn check_jpeg_frame(stream: &[u8], [rows, columns, samples]: [u32; 3]) -> Checked<()> {
    let short = || "a JPEG stream is cut short before its frame header".to_string();
    let byte = |at: usize| stream.get(at).copied().ok_or_else(short);
    let word =
        |at: usize| -> Checked<u32> { Ok(u32::from(byte(at)?) << 8 | u32::from(byte(at + 1)?)) };
    let mut at = 2;
    loop {
        if byte(at)? != 0xFF {
            return Err(format!("a JPEG stream has no marker at byte {at}"));
        }
        while byte(at + 1)? == 0xFF {
            at += 1;
        }
        let marker = byte(at + 1)?;
        match marker {
            0x01 | 0xD0..=0xD8 => at += 2,
            0xDA => return Err("a JPEG stream's scan comes before its frame header".to_string()),
            0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker) => {
                let declared = [word(at + 5)?, word(at + 7)?, u32::from(byte(at + 9)?)];
                if declared != [rows, columns, samples] {
                    return Err(format!(
                        "a JPEG frame of {}×{} with {} component(s) where the header says \
                         {columns}×{rows} with {samples}",
                        declared[1], declared[0], declared[2]
                    ));
                }
                return Ok(());
            }
            _ => at += 2 + word(at + 2)? as usize,
        }
    }
}
