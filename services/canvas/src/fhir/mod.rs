//! Canvas Medical's FHIR R4 API: the client and the resources the mesh reads.

mod client;
pub mod model;

pub use client::{id_from_location, FhirClient, FhirError, FhirResult, Page};
