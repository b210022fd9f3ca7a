"""Writing a synthetic study as a small, valid DICOM Part-10 file (Secondary Capture, 8x8 pixels)."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from .generate import UID_ROOT
from .models import PatientRecord, StudyRecord

# Identifies the writer of the file meta; under the synthetic root like every other UID here.
IMPLEMENTATION_CLASS_UID = f"{UID_ROOT}0.1"
IMPLEMENTATION_VERSION_NAME = "CONCORDANCE_SYN"


def build_dataset(study: StudyRecord, patient: PatientRecord) -> Dataset:
    """The dataset :func:`write_dicom` saves: the header subset plus a tiny grey gradient image."""
    if patient.mrn != study.patient_mrn:
        raise ValueError(f"patient {patient.mrn} is not the patient of study {study.accession_number}")
    header = study.dicom_header()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = header["SOPInstanceUID"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = header["SOPClassUID"]
    ds.SOPInstanceUID = header["SOPInstanceUID"]
    ds.StudyDate = header["StudyDate"]
    ds.StudyTime = header["StudyTime"]
    ds.AccessionNumber = header["AccessionNumber"]
    ds.Modality = header["Modality"]
    # Secondary Capture requires ConversionType; WSD = workstation, the honest answer for a synthetic image.
    ds.ConversionType = "WSD"
    ds.InstitutionName = header["InstitutionName"]
    ds.ReferringPhysicianName = header["ReferringPhysicianName"]
    ds.StudyDescription = header["StudyDescription"]
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.mrn
    ds.PatientBirthDate = patient.birth_date.replace("-", "")
    ds.PatientSex = patient.sex
    ds.BodyPartExamined = header["BodyPartExamined"]
    ds.StudyInstanceUID = header["StudyInstanceUID"]
    ds.SeriesInstanceUID = header["SeriesInstanceUID"]
    ds.StudyID = study.accession_number[-6:]
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 8
    ds.Columns = 8
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((row * 8 + col) * 4 for row in range(8) for col in range(8))
    return ds


def write_dicom(study: StudyRecord, patient: PatientRecord, path: Path) -> None:
    """Write ``study`` as a DICOM Part-10 file at ``path`` (explicit VR little endian).

    The file carries the keywords of :meth:`StudyRecord.dicom_header` and reads back with
    ``pydicom.dcmread``. Same inputs give the same bytes: nothing time-dependent is written.
    """
    build_dataset(study, patient).save_as(Path(path), enforce_file_format=True)
