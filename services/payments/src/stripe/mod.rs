//! Stripe's v1 API: the client and the objects the service uses.

mod client;
pub mod types;

pub use client::{Params, StripeClient, StripeResult};
pub use types::{StripeError, StripeErrorKind};
