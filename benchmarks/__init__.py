"""Side-by-side ratio benchmarks, run from the project root: python -m benchmarks.<name> [--quick].

Each module rewrites its own section of benchmarks/RESULTS.md; common holds what they share."""
