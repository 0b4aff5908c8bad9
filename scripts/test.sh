#!/usr/bin/env bash
# Runs the test suite (xunit.v3; the test project is its own runner). Extra arguments go to the runner,
# e.g.  scripts/test.sh -class Mamba4.Tests.TensorTests   or   scripts/test.sh -trait "Category=Cuda"
set -uo pipefail
cd "$(dirname "$0")/.."
build=(); if [ "${1:-}" = "--no-build" ]; then build=(--no-build); shift; fi
exec dotnet run --project tests/Mamba4.Tests -c Release "${build[@]}" -- "$@"
