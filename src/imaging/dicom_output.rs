//! An overlay as a DICOM Secondary Capture (SC Image Storage, RGB, 8 bits, explicit VR little
//! endian) that a PACS files with the study it came from: the source's patient and study
//! attributes are copied, a new series and instance are made, and the source image is
//! referenced. With `anonymise`, the patient and study identifiers are left empty, the study
//! gets a new UID, no source is referenced, and the file says the identity was removed; a
//! source not marked free of burned-in annotation is refused, since its pixels are kept.

use std::io::Cursor;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::OpenFileOptions;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::MAX_FILE_BYTES;
use super::dicom::is_dicom;
use super::dicom_scan::check_structure;
use super::one_line;
use crate::error::{Error, Result};

/// What the capture says about how it was made.
pub struct Derivation<'a> {
    /// The series description and derivation text, e.g. "gradlens saliency: gradcam, class 1".
    pub description: &'a str,
    /// Leave the patient and study identifiers out.
    pub anonymise: bool,
    /// Bytes that make this capture's UIDs its own (the output's path and the time, say).
    pub uid_salt: &'a [u8],
}

/// The patient and study attributes a capture copies from its source (type 2 in the SC IOD's
/// Patient and General Study modules, so an anonymised capture keeps them, empty).
const IDENTIFYING: [(Tag, VR); 9] = [
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::STUDY_DATE, VR::DA),
    (tags::STUDY_TIME, VR::TM),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::STUDY_ID, VR::SH),
    (tags::ACCESSION_NUMBER, VR::SH),
];

/// The Secondary Capture file of `rgb` (height × width × 3 bytes, row by row) derived from the
/// DICOM file `source`; `name` names the source in errors.
pub fn secondary_capture(
    source: &[u8],
    name: &str,
    rgb: &[u8],
    [height, width]: [usize; 2],
    derivation: &Derivation,
) -> Result<Vec<u8>> {
    let fail = |message: String| Error::Image {
        path: name.to_string(),
        message: one_line(&message),
    };
    if rgb.len() != height * width * 3 || height == 0 || width == 0 {
        return Err(fail(format!(
            "an overlay of {} bytes for {width}×{height} RGB pixels",
            rgb.len()
        )));
    }
    let (rows, columns) = match (u16::try_from(height), u16::try_from(width)) {
        (Ok(rows), Ok(columns)) => (rows, columns),
        _ => {
            return Err(fail(format!(
                "a {width}×{height} overlay is too large for DICOM"
            )));
        }
    };
    if !is_dicom(source) {
        return Err(fail("the source is not a DICOM file".into()));
    }
    check_structure(source, MAX_FILE_BYTES).map_err(fail)?;
    let original = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(Cursor::new(source))
        .map_err(|e| fail(format!("not a readable DICOM file: {e}")))?;
    let text = |tag: Tag| -> String {
        original
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|element| element.to_str().ok())
            .map(|value| value.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    // The pixels are the source's: anonymising the header leaves text burned into them.
    let burned_in = text(tags::BURNED_IN_ANNOTATION);
    if derivation.anonymise && burned_in != "NO" {
        return Err(fail(format!(
            "its Burned In Annotation is {:?}, not \"NO\": its pixels may show identifiers, so \
             it is not anonymised",
            burned_in
        )));
    }
    let uid = |part: &str| derived_uid(&[derivation.uid_salt, part.as_bytes()]);
    let mut capture = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: &str| {
        capture.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    };
    for (tag, vr) in IDENTIFYING {
        let value = if derivation.anonymise {
            String::new()
        } else {
            text(tag)
        };
        put(tag, vr, &value);
    }
    let study = match derivation.anonymise {
        true => uid("study"),
        false => Some(text(tags::STUDY_INSTANCE_UID))
            .filter(|study| !study.is_empty())
            .unwrap_or_else(|| uid("study")),
    };
    let instance = uid("instance");
    put(tags::STUDY_INSTANCE_UID, VR::UI, &study);
    put(tags::SERIES_INSTANCE_UID, VR::UI, &uid("series"));
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, &instance);
    put(tags::MODALITY, VR::CS, "OT");
    put(tags::CONVERSION_TYPE, VR::CS, "WSD");
    put(tags::SERIES_NUMBER, VR::IS, "900");
    put(tags::INSTANCE_NUMBER, VR::IS, "1");
    put(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    put(tags::SERIES_DESCRIPTION, VR::LO, derivation.description);
    put(tags::DERIVATION_DESCRIPTION, VR::ST, derivation.description);
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    if derivation.anonymise {
        put(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES");
        put(
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            "gradlens --anonymise: patient and study identifiers removed",
        );
    } else {
        let (class, instance) = (text(tags::SOP_CLASS_UID), text(tags::SOP_INSTANCE_UID));
        if !class.is_empty() && !instance.is_empty() {
            let mut reference = InMemDicomObject::new_empty();
            reference.put(DataElement::new(
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(class),
            ));
            reference.put(DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(instance),
            ));
            capture.put(DataElement::new(
                tags::SOURCE_IMAGE_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![reference]),
            ));
        }
    }
    let us = |value: u16| PrimitiveValue::from(value);
    capture.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(3)));
    capture.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(0)));
    capture.put(DataElement::new(tags::ROWS, VR::US, us(rows)));
    capture.put(DataElement::new(tags::COLUMNS, VR::US, us(columns)));
    capture.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(8)));
    capture.put(DataElement::new(tags::BITS_STORED, VR::US, us(8)));
    capture.put(DataElement::new(tags::HIGH_BIT, VR::US, us(7)));
    capture.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    capture.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(rgb.to_vec()),
    ));
    let file = capture
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(derived_uid(&[b"gradlens"]).as_str())
                .implementation_version_name("GRADLENS"),
        )
        .map_err(|e| fail(format!("cannot build the capture: {e}")))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| fail(format!("cannot write the capture: {e}")))?;
    Ok(bytes)
}

/// A UID under the 2.25 root (ISO/IEC 9834-8: a 128-bit number as decimal) from a 128-bit
/// FNV-1a hash of the parts.
fn derived_uid(parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash = (hash ^ u128::from(byte)).wrapping_mul(PRIME);
        }
    }
    format!("2.25.{hash}")
}
