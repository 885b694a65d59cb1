//! Raw multi-coil MRI k-space (issue 18): fastMRI and ISMRMRD HDF5, Siemens twix.

pub mod twix;

/// Where a `RawKspace` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KspaceFormat {
    FastMri,
    Ismrmrd,
    Twix,
}

impl std::fmt::Display for KspaceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KspaceFormat::FastMri => "fastMRI HDF5",
            KspaceFormat::Ismrmrd => "ISMRMRD HDF5",
            KspaceFormat::Twix => "Siemens twix",
        })
    }
}

/// Multi-coil Cartesian k-space as read from a raw-data file.
pub struct RawKspace {
    /// [slices, coils, rows, cols] complex64, centred k-space (DC at index (rows/2, cols/2)) so coil c's image is
    /// fftshift(ifft2(ifftshift(k), norm="ortho")). Readout along rows, phase encoding along cols (last axis), as fastMRI stores it.
    pub kspace: ndarray::Array4<num_complex::Complex32>,
    /// [rows, cols], 1.0 = acquired, shared by slices and coils; None = fully sampled.
    pub mask: Option<ndarray::Array2<f32>>,
    pub reference: Option<(String, ndarray::Array3<f32>)>,
    pub format: KspaceFormat,
    pub recon_matrix: Option<[usize; 2]>,
    pub fov_mm: Option<[f64; 3]>,
}
