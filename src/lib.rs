pub mod error;
pub mod token;
