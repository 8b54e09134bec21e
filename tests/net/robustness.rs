//! Bad input and connection cuts.
