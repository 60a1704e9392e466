//! The command-line surface: clap derive types only.
