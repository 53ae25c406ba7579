//! The carriers the pharmacies ship with, as far as the clinic tracks them: FedEx's Track API.

pub mod fedex;
