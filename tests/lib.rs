//! Placeholder-free test-only package: the scenarios live in scenarios/.
