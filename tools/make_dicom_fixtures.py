"""Small DICOM files for tests/dicom.rs, written with pydicom, and what each should decode to.

No patient data: every image is a formula. Each case is one file in tests/fixtures/dicom/;
expected.json gives, per file, the frame to read and the planes it must decode to in [0, 1],
computed by pydicom's own modality rescale and VOI windowing (pydicom.pixels.apply_rescale,
apply_windowing, whose output range [y_min, y_max] is mapped to [0, 1]) — or the phrase its
error must contain.

    python -m venv /tmp/pyd && /tmp/pyd/bin/pip install pydicom numpy pillow
    /tmp/pyd/bin/python tools/make_dicom_fixtures.py
"""

import io
import json
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_rescale, apply_windowing
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dicom"
ROWS, COLUMNS = 7, 9


def base(rows=ROWS, columns=COLUMNS):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["gradlens", str(rows)])
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Phantom^Formula"
    ds.PatientID = "GL-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate, ds.StudyTime = "20261207", "101500"
    ds.AccessionNumber = "ACC-7781"
    ds.StudyID = "ST-42"
    ds.ReferringPhysicianName = "Referrer^Doctor"
    ds.BurnedInAnnotation = "NO"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["gradlens-study"])
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, columns
    return ds


def monochrome(ds, values, bits_stored, signed, photometric="MONOCHROME2", big_endian=False):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = np.dtype({(8, 0): "u1", (8, 1): "i1", (16, 0): "u2", (16, 1): "i2"}[(ds.BitsAllocated, int(signed))])
    # pydicom writes the bytes as given: a big-endian file needs big-endian samples.
    dtype = dtype.newbyteorder(">" if big_endian else "<")
    ds.PixelData = np.asarray(values).astype(dtype).tobytes()
    return ds


def rgb(ds, values, planar, bits=8):
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    array = np.asarray(values, dtype=np.uint8 if bits == 8 else "<u2")  # rows, columns, 3
    ds.PixelData = (array.transpose(2, 0, 1) if planar else array).tobytes()
    return ds


def encapsulated_gray8(fragment):
    """An 8-bit MONOCHROME2 image whose pixel data is `fragment`, encapsulated."""
    ds = base()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    return ds


def save(ds, name, syntax):
    ds.file_meta.TransferSyntaxUID = syntax
    path = OUT / name
    ds.save_as(path, enforce_file_format=True)
    return path


def windowed(ds, stored):
    """What the stored values of one frame become: pydicom's rescale and window, mapped from
    its output range to [0, 1] (the range stretched where the file has no window)."""
    values = apply_rescale(np.asarray(stored, dtype=np.float64), ds)
    if "WindowCenter" not in ds:
        low, high = values.min(), values.max()
        out = (values - low) / (high - low)
    else:
        bits = ds.BitsStored
        signed = ds.PixelRepresentation == 1
        y_min, y_max = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
        out = (apply_windowing(values, ds) - y_min) / (y_max - y_min)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return out


def grid(rows=ROWS, columns=COLUMNS):
    y, x = np.mgrid[0:rows, 0:columns]
    return y, x


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []

    written = {}

    def expect(path, planes, frame=0, tolerance=1e-5, stored=None):
        if stored is not None:
            written[path.name] = np.asarray(stored)
        planes = np.asarray(planes, dtype=np.float64)
        cases.append({
            "file": path.name,
            "frame": frame,
            "planes": int(planes.shape[0]),
            "rows": int(planes.shape[1]),
            "columns": int(planes.shape[2]),
            "values": [round(float(v), 7) for v in planes.ravel()],
            "tolerance": tolerance,
        })

    y, x = grid()
    # 8-bit, no window: the values' own range.
    stored = (y * 29 + x * 7) % 251
    ds = monochrome(base(), stored, 8, False)
    expect(save(ds, "mono8_explicit_le.dcm", ExplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # 12 bits in 16, rescaled, with the file's window; implicit VR.
    stored = (y * 523 + x * 211) % 4096
    ds = monochrome(base(), stored, 12, False)
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-100"
    ds.WindowCenter, ds.WindowWidth = "3000", "4000"
    expect(save(ds, "mono12_window_implicit_le.dcm", ImplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # CT: 16-bit signed, Hounsfield units by intercept −1024, a soft-tissue window; big endian.
    stored = ((y * 331 + x * 97) % 2400) - 200
    ds = monochrome(base(), stored, 16, True, big_endian=True)
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.WindowCenter, ds.WindowWidth = "-900", "400"
    expect(save(ds, "ct16_signed_big_endian.dcm", ExplicitVRBigEndian), [windowed(ds, stored)], stored=stored)

    # MONOCHROME1 with LINEAR_EXACT windowing: inverted.
    stored = (y * 31 + x * 11) % 256
    ds = monochrome(base(), stored, 8, False, "MONOCHROME1")
    ds.WindowCenter, ds.WindowWidth = "128", "200"
    ds.VOILUTFunction = "LINEAR_EXACT"
    expect(save(ds, "mono1_linear_exact.dcm", ExplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # RGB, interleaved and plane by plane.
    colour = np.stack([(y * 37) % 256, (x * 29) % 256, ((y + x) * 17) % 256], axis=-1)
    for planar in (0, 1):
        ds = rgb(base(), colour, planar)
        path = save(ds, f"rgb8_planar{planar}.dcm", ExplicitVRLittleEndian)
        expect(path, colour.transpose(2, 0, 1) / 255.0, stored=colour)

    # Three frames of 16-bit unsigned; frame 2 is read.
    frames = np.stack([(y * 1000 + x * 300 + f * 5000) % 65536 for f in range(3)])
    ds = monochrome(base(), frames, 16, False)
    ds.NumberOfFrames = 3
    ds.WindowCenter, ds.WindowWidth = "12000", "8000"
    expect(save(ds, "multiframe16.dcm", ExplicitVRLittleEndian), [windowed(ds, frames[2])], frame=2, stored=frames)

    # Deflated explicit VR little endian.
    stored = (y * 13 + x * 5) % 200
    ds = monochrome(base(), stored, 8, False)
    expect(save(ds, "mono8_deflated.dcm", DeflatedExplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # RLE lossless, 16-bit, windowed.
    stored = (y * 700 + x * 450) % 4096
    ds = monochrome(base(), stored, 12, False)
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    ds.compress(RLELossless, np.asarray(stored, dtype=np.uint16), encoding_plugin="pydicom", generate_instance_uid=False)
    expect(save(ds, "mono12_rle.dcm", RLELossless), [windowed(ds, stored)], stored=stored)

    # Baseline JPEG (8-bit gray, lossy): the expectation is Pillow's decoding of the same
    # stream, windowed; decoders may differ by a level or two.
    smooth = np.clip(128 + 100 * np.sin(y / 2.0) * np.cos(x / 3.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(smooth, mode="L").save(buffer, format="JPEG", quality=95)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    ds = encapsulated_gray8(buffer.getvalue())
    ds.WindowCenter, ds.WindowWidth = "128", "256"
    path = save(ds, "mono8_jpeg_baseline.dcm", JPEGBaseline8Bit)
    expect(path, [windowed(ds, decoded)], tolerance=3 / 255)

    # Signed 8-bit, windowed around 0.
    stored = ((y * 37 + x * 23) % 201) - 100
    ds = monochrome(base(), stored, 8, True)
    ds.WindowCenter, ds.WindowWidth = "0", "200"
    expect(save(ds, "mono8_signed.dcm", ExplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # Signed 12 bits in 16, not sign-extended and with stray bits above the high bit: only
    # the 12 stored bits count, as two's complement.
    stored = ((y * 613 + x * 389) % 4096) - 2048
    ds = monochrome(base(), stored, 16, True)
    ds.BitsStored, ds.HighBit = 12, 11
    raw = (np.asarray(stored) & 0x0FFF) | 0xA000
    ds.PixelData = raw.astype("<u2").tobytes()
    ds.WindowCenter, ds.WindowWidth = "0", "3000"
    expect(save(ds, "mono12_signed_unextended.dcm", ExplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # SIGMOID windowing, 16-bit unsigned.
    stored = (y * 3001 + x * 1777) % 65536
    ds = monochrome(base(), stored, 16, False)
    ds.WindowCenter, ds.WindowWidth = "30000", "20000"
    ds.VOILUTFunction = "SIGMOID"
    expect(save(ds, "mono16_sigmoid.dcm", ExplicitVRLittleEndian), [windowed(ds, stored)], stored=stored)

    # 16-bit RGB, and 8-bit RGB under RLE.
    deep = np.stack([(y * 9001) % 65536, (x * 7001) % 65536, ((y + x) * 3001) % 65536], axis=-1)
    ds = rgb(base(), deep, 0, bits=16)
    expect(save(ds, "rgb16.dcm", ExplicitVRLittleEndian), deep.transpose(2, 0, 1) / 65535.0, stored=deep)
    ds = rgb(base(), colour, 0)
    ds.compress(RLELossless, np.asarray(colour, dtype=np.uint8), encoding_plugin="pydicom", generate_instance_uid=False)
    expect(save(ds, "rgb8_rle.dcm", RLELossless), colour.transpose(2, 0, 1) / 255.0, stored=colour)

    # A transfer syntax gradlens does not decode: one line naming it.
    ds = encapsulated_gray8(b"\xff\x4f\xff\x51" + bytes(60))
    path = save(ds, "jpeg2000_unsupported.dcm", JPEG2000Lossless)
    cases.append({"file": path.name, "frame": 0, "error": "JPEG 2000"})

    # Hostile headers: dimensions far beyond the limits over a few bytes of pixel data, and
    # pixel data shorter than the image it claims.
    ds = monochrome(base(), np.zeros((2, 2)), 16, False)
    ds.Rows, ds.Columns = 65535, 65535
    path = save(ds, "absurd_dimensions.dcm", ExplicitVRLittleEndian)
    cases.append({"file": path.name, "frame": 0, "error": "beyond 16384 pixels a side"})
    ds = monochrome(base(), np.zeros((3, 3)), 16, False)
    path = save(ds, "short_pixel_data.dcm", ExplicitVRLittleEndian)
    cases.append({"file": path.name, "frame": 0, "error": "holds 18 bytes where 1 frame(s) of 9×7 need 126"})
    # An element claiming 4 GB in a file of a few hundred bytes (dicom-rs would allocate it).
    ds = monochrome(base(), stored % 256, 8, False)
    ds.add_new(0x00091010, "OB", b"MARKERXX")
    path = save(ds, "huge_length.dcm", ExplicitVRLittleEndian)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"MARKERXX")
    raw[at - 4:at] = (0xF0000000).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    cases.append({"file": path.name, "frame": 0, "error": "claims 4026531840 bytes"})
    # Sequences nested 200 deep (dicom-rs would recurse through all of them).
    ds = monochrome(base(), stored % 256, 8, False)
    inner = Dataset()
    inner.CodeValue = "leaf"
    for _ in range(200):
        outer = Dataset()
        outer.ConceptNameCodeSequence = [inner]
        inner = outer
    ds.ContentSequence = [inner]
    path = save(ds, "nested_sequences.dcm", ImplicitVRLittleEndian)
    cases.append({"file": path.name, "frame": 0, "error": "nest deeper than 32"})
    ds = monochrome(base(), stored % 256, 8, False)
    path = save(ds, "one_frame.dcm", ExplicitVRLittleEndian)
    cases.append({"file": path.name, "frame": 1, "error": "frame 1 asked of a file with 1 frame"})

    # Each lossless file read back by pydicom gives the stored values it was written from.
    for name, stored in written.items():
        read = pydicom.dcmread(OUT / name).pixel_array
        assert np.array_equal(read, stored), f"{name} reads back as other values"
    (OUT / "expected.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases in {OUT} (pydicom {pydicom.__version__})")


if __name__ == "__main__":
    main()
