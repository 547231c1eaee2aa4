"""Synthetic DICOM for the tests: a CT series written slice by slice with pydicom, whose headers carry the
synthetic patient identifiers of IDENTIFIERS (the outputs must never show them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# synthetic identifiers written into every header; tests grep every output file for them
IDENTIFIERS = {"PatientName": "Zzyzx^Quintessa", "PatientBirthDate": "19230417", "AccessionNumber": "ACC98765XQ",
               "InstitutionName": "Saint Eulalia Infirmary", "PatientID": "MRN-55501234"}


def uid(seed: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[seed])


def write_series(folder: Path, volume: np.ndarray, *, spacing=(1.0, 1.0, 2.0), origin=(-20.0, -20.0, -10.0), seed="s1",
                 modality="CT", description="AXIAL", thickness=None, orientation=(1, 0, 0, 0, 1, 0), skip=(),
                 tilted=(), for_uid=None, manufacturer="Acme Medical", kvp=120.0, kernel="B30f") -> dict:
    """Write `volume` [z, y, x] (int16) as one slice file per z. Returns the UIDs {study, series, for, sops}.
    `skip`: slice indices left out (a gap); `tilted`: slices written with another orientation."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

    folder.mkdir(parents=True, exist_ok=True)
    ids = {"study": uid(seed + "study"), "series": uid(seed + "series"), "for": for_uid or uid(seed + "for"), "sops": []}
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    for k in range(volume.shape[0]):
        if k in skip:
            continue
        sop = uid(f"{seed}sop{k}")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = ids["study"], ids["series"], ids["for"]
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = modality, description, 1, k + 1
        ds.StudyDate, ds.SeriesDate, ds.StudyTime, ds.SeriesTime, ds.StudyID = "20240102", "20240102", "101500", "101500", "S1"
        ds.PatientSex, ds.ReferringPhysicianName = "O", ""
        for name, value in IDENTIFIERS.items():
            setattr(ds, name, value)
        ds.Manufacturer, ds.ManufacturerModelName, ds.ConvolutionKernel = manufacturer, "Model 9", kernel
        if modality == "CT":
            ds.KVP = kvp
        else:
            ds.MagneticFieldStrength = 3.0
        o = (0, 1, 0, -1, 0, 0) if k in tilted else orientation
        ds.ImageOrientationPatient = [float(v) for v in o]
        ds.ImagePositionPatient = [float(v) for v in np.array(origin) + k * spacing[2] * normal]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(thickness if thickness is not None else spacing[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = volume[k].astype("<i2").tobytes()
        pydicom.dcmwrite(folder / f"{seed}_{k:03d}.dcm", ds, enforce_file_format=True)
        ids["sops"].append(sop)
    return ids


def sphere(shape=(16, 64, 64), centre=None, radius=(5.0, 22.0, 22.0)) -> np.ndarray:
    """A smooth ellipsoid mask [z, y, x] (radii in voxels)."""
    z, y, x = np.indices(shape)
    c = centre or [(s - 1) / 2 for s in shape]
    return ((z - c[0]) / radius[0]) ** 2 + ((y - c[1]) / radius[1]) ** 2 + ((x - c[2]) / radius[2]) ** 2 <= 1.0


def phantom_volume(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.where(mask, 60, 20) + rng.normal(0, 10, mask.shape)).round().astype(np.int16)
