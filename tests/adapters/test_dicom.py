"""DICOM header reading (portal.records.ingest.dicom) against pydicom's bundled test files."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from portal.records.ingest.dicom import HEADER_KEYWORDS, iter_dicom_files, read_study_header
from portal.records.ingest.payloads import AdapterError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about odd test files


def bundled(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not bundled with pydicom"
    return path


def to_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def ct_bytes() -> bytes:
    """CT_small.dcm made complete: accession, body part, priority, referring physician, offset."""
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    ds.AccessionNumber = "ACC-CT-1"
    ds.BodyPartExamined = "CHEST"
    ds.StudyDescription = "CT CHEST W/O"
    ds.ReferringPhysicianName = "Welby^Marcus"
    ds.RequestedProcedurePriority = "HIGH"
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.PatientBirthDate = "19700215"
    ds.PatientSex = "F"
    return to_bytes(ds)


def header_only(**fields: str) -> bytes:
    """A small DICOM file built from scratch, without pixel data (like an SR document)."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    defaults = {
        "PatientID": "MRN0042",
        "PatientName": "Doe^Jane",
        "StudyInstanceUID": "1.2.3.4.5.6",
        "AccessionNumber": "ACC-SR-1",
        "Modality": "MR",
        "StudyDescription": "MR BRAIN",
        "StudyDate": "20240301",
        "StudyTime": "093000",
    }
    for keyword, value in {**defaults, **fields}.items():
        if value is not None:
            setattr(ds, keyword, value)
    return to_bytes(ds)


def refused(source, **kwargs) -> AdapterError:
    with pytest.raises(AdapterError) as err:
        read_study_header(source, **kwargs)
    return err.value


# --- success ------------------------------------------------------------------------------------
def test_it_maps_a_complete_ct_header(ct_bytes):
    study = read_study_header(ct_bytes)

    assert study.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert study.accession_number == "ACC-CT-1"
    assert study.patient.mrn == "1CT1"
    assert (study.patient.family_name, study.patient.given_name) == ("CompressedSamples", "CT1")
    assert (study.patient.birth_date, study.patient.sex) == (date(1970, 2, 15), "F")
    assert (study.modality, study.body_part, study.specialty) == ("CT", "CHEST", "chest")
    assert study.study_datetime == datetime(2004, 1, 19, 6, 27, 30, tzinfo=UTC)  # 07:27:30 +0100
    assert study.description == "CT CHEST W/O"
    assert study.priority == "urgent"
    assert study.referring_physician == "Welby, Marcus"


def test_the_header_is_json_safe_whitelisted_and_free_of_patient_data(ct_bytes):
    header = read_study_header(ct_bytes).dicom_header

    assert set(header) <= {*HEADER_KEYWORDS, "TransferSyntaxUID"}
    assert header["Modality"] == "CT"
    assert header["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert header["Rows"] == 128 and isinstance(header["Rows"], int)
    assert header["PixelSpacing"] == [0.661468, 0.661468]
    assert header["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    for private in ("PatientName", "PatientID", "PatientBirthDate", "ReferringPhysicianName", "PixelData"):
        assert private not in header
    assert all(isinstance(v, str | int | float | list) for v in header.values())


@pytest.mark.parametrize("kind", ["bytes", "path", "str", "file", "stream"])
def test_it_reads_bytes_paths_and_file_objects(tmp_path, ct_bytes, kind):
    path = tmp_path / "ct.dcm"
    path.write_bytes(ct_bytes)

    class Unseekable(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            return self._inner.readinto(buffer)

    source = {
        "bytes": ct_bytes,
        "path": path,
        "str": str(path),
        "file": io.BytesIO(ct_bytes),
        "stream": io.BufferedReader(Unseekable(ct_bytes)),
    }[kind]
    assert read_study_header(source).accession_number == "ACC-CT-1"


def test_a_file_object_is_left_where_it_was(ct_bytes):
    fp = io.BytesIO(b"prefix" + ct_bytes)
    fp.seek(6)
    read_study_header(fp)
    assert fp.tell() == 6


def test_a_file_without_pixel_data_is_fine_and_naive_times_are_utc():
    study = read_study_header(header_only())
    assert (study.modality, study.body_part, study.specialty) == ("MR", "BRAIN", "neuro")
    assert study.study_datetime == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    assert (study.priority, study.referring_physician, study.patient.sex) == ("routine", "", "U")


@pytest.mark.parametrize(
    ("fields", "specialty"),
    [
        ({"Modality": "MG", "StudyDescription": "SCREENING"}, "breast"),
        ({"Modality": "CR", "BodyPartExamined": "KNEE"}, "musculoskeletal"),
        ({"Modality": "CT", "BodyPartExamined": "ABDOMEN"}, "abdominal"),
        ({"Modality": "US", "StudyDescription": "US THYROID"}, None),
    ],
)
def test_specialty_is_inferred(fields, specialty):
    assert read_study_header(header_only(**fields)).specialty == specialty


def test_broken_dates_give_no_time_rather_than_a_refusal():
    assert read_study_header(header_only(StudyDate="2024-13-45")).study_datetime is None
    assert read_study_header(header_only(TimezoneOffsetFromUTC="+9999")).study_datetime is None
    assert read_study_header(header_only(StudyTime="")).study_datetime == datetime(2024, 3, 1, tzinfo=UTC)


def test_stat_priority():
    assert read_study_header(header_only(RequestedProcedurePriority="STAT")).priority == "stat"


def test_an_encapsulated_file_reads_and_its_truncation_is_caught():
    ds = pydicom.dcmread(bundled("JPEG2000.dcm"))
    ds.AccessionNumber = "ACC-J2K"
    data = to_bytes(ds)
    assert read_study_header(data).accession_number == "ACC-J2K"
    assert refused(data[:-100]).code == "malformed"


# --- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "uid"),
    [
        ("CT_small.dcm", "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"),
        ("MR_small.dcm", "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"),
        ("rtplan.dcm", "1.22.333.4.555555.6.7777777777777777777777777777"),
    ],
)
def test_pydicom_samples_without_an_accession_number_are_kept_under_their_study_uid(name, uid):
    study = read_study_header(bundled(name))
    assert (study.accession_number, study.study_instance_uid) == ("", uid)


def test_missing_study_uid_and_patient_id():
    error = refused(header_only(StudyInstanceUID=None))
    assert (error.code, error.location) == ("missing_field", "(0020,000D) StudyInstanceUID")
    error = refused(header_only(PatientID=None))
    assert (error.code, error.location) == ("missing_field", "(0010,0020) PatientID")


def test_a_malformed_study_uid():
    assert refused(header_only(StudyInstanceUID="1.2.abc")).code == "malformed"


def test_a_file_without_preamble_is_not_dicom():
    error = refused(bundled("no_meta.dcm"))
    assert (error.code, error.message) == ("malformed", "not a DICOM file (no DICM preamble)")


def test_a_truncated_file_is_malformed():
    assert refused(bundled("MR_truncated.dcm")).code == "malformed"


def test_cutting_a_file_anywhere_never_passes_for_complete(ct_bytes):
    fp = io.BytesIO(ct_bytes)
    pydicom.dcmread(fp, stop_before_pixels=True)
    pixel_start = fp.tell()
    pixel_end = pixel_start + 12 + 128 * 128 * 2  # explicit VR OW header + 128x128 16-bit pixels
    cuts = [
        *range(0, pixel_start, 11),
        *range(pixel_start - 20, pixel_start + 40),
        *range(pixel_start, pixel_end, 997),
    ]
    for cut in cuts:
        try:
            study = read_study_header(ct_bytes[:cut])
        except AdapterError as exc:
            assert exc.code in ("malformed", "missing_field")
        else:
            # A cut exactly between two header elements leaves a shorter but well-formed file;
            # it can pass only when it also dropped the image description (Rows, Columns).
            assert cut < pixel_start
            assert "Rows" not in study.dicom_header
    assert read_study_header(ct_bytes[:pixel_end]).accession_number == "ACC-CT-1"


@pytest.mark.parametrize(
    "content", [b"", b"just some text\n", b"\x00" * 128 + b"DICM", b"MSH|^~\\&|not dicom", b"\x00" * 200]
)
def test_files_that_are_not_dicom(tmp_path, content):
    path = tmp_path / "file.dcm"
    path.write_bytes(content)
    assert refused(path).code == "malformed"
    assert refused(content).code == "malformed"


def test_size_limits(tmp_path, ct_bytes):
    path = tmp_path / "ct.dcm"
    path.write_bytes(ct_bytes)
    for source in (ct_bytes, path, io.BytesIO(ct_bytes)):
        assert refused(source, max_bytes=1000).code == "too_large"


def test_odd_sources(tmp_path):
    assert refused(tmp_path).code == "malformed"  # a directory
    assert refused(tmp_path / "missing.dcm").code == "malformed"
    assert refused(12345).code == "malformed"
    assert refused(io.StringIO("text mode")).code == "malformed"


# --- directories --------------------------------------------------------------------------------
def test_iter_dicom_files_finds_part10_files_in_order(tmp_path, ct_bytes):
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "2.dcm").write_bytes(ct_bytes)
    (tmp_path / "a" / "deep" / "1").write_bytes(ct_bytes)  # no extension: content decides
    (tmp_path / "a" / "notes.txt").write_text("not dicom")
    (tmp_path / ".hidden" / "3.dcm").write_bytes(ct_bytes)
    (tmp_path / "DICOMDIR").write_bytes(ct_bytes)
    (tmp_path / "no_meta.dcm").write_bytes(open(bundled("no_meta.dcm"), "rb").read())

    found = [p.relative_to(tmp_path).as_posix() for p in iter_dicom_files(tmp_path)]
    assert found == ["a/deep/1", "b/2.dcm"]


# --- properties ---------------------------------------------------------------------------------
@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=1000))
def test_read_study_header_raises_only_adapter_errors_on_bytes(data):
    try:
        read_study_header(data)
    except AdapterError:
        pass


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=1000))
def test_read_study_header_raises_only_adapter_errors_behind_a_preamble(data):
    try:
        read_study_header(b"\x00" * 128 + b"DICM" + data)
    except AdapterError:
        pass


@settings(max_examples=200, deadline=2000)
@given(st.integers(min_value=0, max_value=5000), st.binary(min_size=1, max_size=8))
def test_corrupting_a_real_file_raises_only_adapter_errors(offset, garbage):
    data = bytearray(open(bundled("CT_small.dcm"), "rb").read())
    offset = 132 + offset % (len(data) - 140)
    data[offset : offset + len(garbage)] = garbage
    try:
        read_study_header(bytes(data))
    except AdapterError:
        pass
