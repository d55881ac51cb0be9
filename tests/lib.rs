//! Test-only package: the end-to-end scenarios live in `scenarios/`.
