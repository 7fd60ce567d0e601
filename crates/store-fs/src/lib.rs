//! file:// backend (in progress)
