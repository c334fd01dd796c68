//! veil-core benchmarks.

fn main() {}
