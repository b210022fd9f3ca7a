"""Each synthetic study writes as a small valid DICOM file that reads back with the same header."""

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from portal.demo.synthetic import write_dicom


def test_it_round_trips_the_header(small_department, tmp_path):
    for study in small_department.studies[:10]:
        path = tmp_path / f"{study.accession_number}.dcm"
        write_dicom(study, study.patient, path)
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == SecondaryCaptureImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == study.sop_instance_uid
        for keyword, value in study.dicom_header().items():
            assert str(ds[keyword].value) == value, keyword
        assert (ds.Rows, ds.Columns, len(ds.PixelData)) == (8, 8, 64)


def test_it_writes_the_same_bytes_every_time(small_department, tmp_path):
    study = small_department.studies[3]
    write_dicom(study, study.patient, tmp_path / "a.dcm")
    write_dicom(study, study.patient, tmp_path / "b.dcm")
    assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()
    assert (tmp_path / "a.dcm").read_bytes()[128:132] == b"DICM"


def test_it_refuses_another_patients_study(small_department, tmp_path):
    study = small_department.studies[0]
    stranger = next(p for p in small_department.patients if p.mrn != study.patient_mrn)
    with pytest.raises(ValueError):
        write_dicom(study, stranger, tmp_path / "x.dcm")
