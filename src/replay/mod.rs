//! The copy side: address rewriting, packet sinks and the capture → session → send pipeline.

pub mod control;
pub mod rewrite;
pub mod sink;
