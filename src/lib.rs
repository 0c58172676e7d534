pub mod error;
pub mod policy;
pub mod room;
pub mod token;
