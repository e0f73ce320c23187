"""parity pytest plugin (filled in by the CI-checks feature)."""
